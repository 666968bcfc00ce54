// Package k8stest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver, built by `make k8s-tools` into bin/k8s/, inside a network
// namespace of their own.
//
// Start creates the namespace (with podnet/netnstest), adds the API
// server's address to its loopback device; StartIn instead uses a namespace
// the test made (a host on its underlay, so that nodes reach the API server)
// and an address it already has. Both generate a CA, a serving
// certificate and an admin client certificate (crypto/x509), starts etcd on
// the namespace's loopback and kube-apiserver on the address, waits until
// /readyz answers and returns the kubeconfig of the admin. Nothing listens
// or is configured in the root namespace: clients run inside the namespace
// (Cluster.Kubectl, Cluster.Dial) or in namespaces the test connects to it.
// The processes and the namespace go away in t.Cleanup.
//
// Tests skip (Start calls t.Skip) when the binaries are missing, so plain
// `make test` runs without them.
package k8stest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/taprouter/taprouter/internal/inns"
	"github.com/taprouter/taprouter/internal/kubecluster"
	"github.com/taprouter/taprouter/internal/kubepki"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// Address is the API server's address, on the loopback device of its
// namespace (TEST-NET-1: never routed anywhere).
var Address = netip.MustParseAddr("192.0.2.1")

const (
	apiPort = 6443
	// ServiceCIDR is the API server's --service-cluster-ip-range; the
	// kubernetes Service gets its first address, 10.96.0.1.
	ServiceCIDR = "10.96.0.0/16"
	// ReadyTimeout bounds the wait for etcd and /readyz; a cold API
	// server on a loaded 2-core machine needs several seconds.
	ReadyTimeout = 90 * time.Second
)

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	NSName     string // the namespace's name, for ip netns exec
	NSPath     string // its bind mount, /var/run/netns/<name>
	Address    netip.Addr
	Kubeconfig string // path of the admin's kubeconfig
	Server     string // https://<Address>:6443
	BinDir     string // where kubectl and the other binaries are
	dir        string
	tls        *tls.Config
	pki        *pki
	apiArgs    []string
	api        *process
}

// BinDir returns the directory with the binaries of make k8s-tools:
// $TAPROUTER_K8S_BIN, else bin/k8s/ of the module root (found from the
// working directory, which go test sets to the package's directory).
func BinDir() (string, error) {
	if d := os.Getenv("TAPROUTER_K8S_BIN"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "bin", "k8s"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs etcd and kube-apiserver for t in a namespace of their own,
// with the API server on Address; see the package comment. It skips t when
// the binaries are missing or t does not run as root.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := binDir(t)
	ns := netnstest.New(t, "k8s")
	ns.IP("addr", "add", Address.String()+"/32", "dev", "lo")
	return start(t, bin, ns.Name, Address)
}

// StartIn runs etcd and kube-apiserver for t inside the existing namespace
// nsName (which t owns and deletes), the API server listening on addr, an
// address the namespace already has: a host on the test's underlay, so that
// node namespaces reach it. It skips t like Start.
func StartIn(t testing.TB, nsName string, addr netip.Addr) *Cluster {
	t.Helper()
	return start(t, binDir(t), nsName, addr)
}

// binDir returns BinDir, skipping t when a binary is missing.
func binDir(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the control plane in a network namespace")
	}
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Skipf("%s not found (run make k8s-tools): %v", name, err)
		}
	}
	return bin
}

func start(t testing.TB, bin, nsName string, addr netip.Addr) *Cluster {
	t.Helper()
	dir := t.TempDir()
	p, err := newPKI([]net.IP{addr.AsSlice(), net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.crt": p.ca.CertPEM, "apiserver.crt": p.serving.CertPEM, "apiserver.key": p.serving.KeyPEM,
		"sa.key": p.serviceAccount.KeyPEM,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cluster{
		NSName:     nsName,
		NSPath:     "/var/run/netns/" + nsName,
		Address:    addr,
		Kubeconfig: filepath.Join(dir, "kubeconfig"),
		Server:     fmt.Sprintf("https://%s", net.JoinHostPort(addr.String(), fmt.Sprint(apiPort))),
		BinDir:     bin,
		dir:        dir,
		pki:        p,
	}
	if err := os.WriteFile(c.Kubeconfig, kubeconfig(c.Server, p), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	admin, err := tls.X509KeyPair(p.admin.CertPEM, p.admin.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c.tls = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{admin}}

	// etcd only on the namespace's loopback, without TLS: only the API
	// server, in the same namespace, can reach it.
	etcd := c.start(t, "etcd", kubecluster.EtcdArgs(filepath.Join(dir, "etcd"))...)
	c.waitReady(t, etcd, "http://127.0.0.1:2379/readyz")
	c.apiArgs = []string{
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", addr.String(),
		"--advertise-address", addr.String(),
		"--secure-port", fmt.Sprint(apiPort),
		"--tls-cert-file", filepath.Join(dir, "apiserver.crt"),
		"--tls-private-key-file", filepath.Join(dir, "apiserver.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"),
		"--authorization-mode", "Node,RBAC",
		"--service-cluster-ip-range", ServiceCIDR,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--cert-dir", filepath.Join(dir, "certs"),
	}
	c.StartAPIServer(t)
	return c
}

// StopAPIServer kills kube-apiserver (etcd keeps running) and waits until it
// has exited: clients see the outage of an API server that went away.
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	if c.api == nil {
		return
	}
	c.api.stop()
	c.api = nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer (Start
// calls it the first time) and waits until /readyz answers.
func (c *Cluster) StartAPIServer(t testing.TB) {
	t.Helper()
	if c.api != nil {
		return
	}
	c.api = c.start(t, "kube-apiserver", c.apiArgs...)
	c.waitReady(t, c.api, c.Server+"/readyz")
}

// process is a binary started by Cluster.start; done closes when it exits.
type process struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// stop kills the process and waits for it.
func (p *process) stop() {
	p.cmd.Process.Kill()
	<-p.done
}

// start runs bin/k8s/name inside the namespace with its output in a log
// file; t.Cleanup kills it (and waits for it) before the namespace goes,
// and prints the log's tail if the test failed.
func (c *Cluster) start(t testing.TB, name string, args ...string) *process {
	t.Helper()
	p := &process{name: name, log: filepath.Join(c.dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := c.Command(filepath.Join(c.BinDir, name), args...)
	p.cmd = cmd
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, kubecluster.TailFile(p.log, 40))
		}
	})
	return p
}

// waitReady polls url from inside the namespace until it answers 200 OK; it
// fails t when p exits first or after ReadyTimeout.
func (c *Cluster) waitReady(t testing.TB, p *process, url string) {
	t.Helper()
	client := c.HTTPClient()
	deadline := time.Now().Add(ReadyTimeout)
	var last string
	for {
		resp, err := client.Get(url)
		if err == nil {
			body := make([]byte, 512)
			n, _ := resp.Body.Read(body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body[:n])
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before %s was ready: %v\n%s", p.name, url, p.err, kubecluster.TailFile(p.log, 40))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %s", url, ReadyTimeout, last)
		}
	}
}

// HTTPClient returns a client that connects from inside the namespace and
// authenticates to the API server as the admin.
func (c *Cluster) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:     c.Dial,
			TLSClientConfig: c.tls,
		},
	}
}

// Dial opens a connection from inside the namespace: the socket is made on
// a thread that has entered it, and keeps working from any goroutine.
func (c *Cluster) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inns.DoPath(c.NSPath, func() (err error) {
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// RESTConfig returns a client-go configuration for the admin that dials
// from inside the namespace, for clients in the test process.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host: c.Server,
		Dial: c.Dial,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.ca.CertPEM,
			CertData: c.pki.admin.CertPEM,
			KeyData:  c.pki.admin.KeyPEM,
		},
		QPS:   1000,
		Burst: 2000,
	}
}

// Kubectl runs bin/k8s/kubectl --kubeconfig inside the namespace with stdin
// and returns its standard output; it fails t on error.
func (c *Cluster) Kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := c.Command(filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// Command returns a command that runs inside the control plane's namespace.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", c.NSName, name}, args...)...)
}

// kubeconfig is the admin's kubeconfig with the certificates embedded.
func kubeconfig(server string, p *pki) []byte {
	return kubepki.CertKubeconfig(server, p.ca.CertPEM, "admin", p.admin)
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// service account namespace/name with a token from the TokenRequest API
// (kubectl create token), valid for an hour, and returns its path: a
// client that runs with it has exactly the account's RBAC rights.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, namespace, name string) string {
	t.Helper()
	token := strings.TrimSpace(c.Kubectl(t, "", "-n", namespace, "create", "token", name, "--duration", "1h"))
	path := filepath.Join(c.dir, "kubeconfig-"+namespace+"-"+name)
	data := kubepki.Kubeconfig(c.Server, c.pki.ca.CertPEM, name, "    token: "+token+"\n")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
