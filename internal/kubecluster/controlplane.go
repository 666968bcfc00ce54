package kubecluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/taprouter/taprouter/internal/kubepki"
)

// apiServerNames are the in-cluster names of the kubernetes Service.
var apiServerNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

// startControlPlane writes the PKI and starts etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in the control plane's
// namespace, and waits until the API server is ready.
func (c *Cluster) startControlPlane(ctx context.Context) error {
	ca, err := kubepki.NewCA(c.Name + "-ca")
	if err != nil {
		return err
	}
	sa, err := ca.Key("service-accounts")
	if err != nil {
		return err
	}
	c.pki = &clusterPKI{ca: ca, sa: sa}
	c.Server = fmt.Sprintf("https://%s", net.JoinHostPort(APIServerAddr.String(), "6443"))
	caCrt, caKey, err := c.writePair("ca", ca)
	if err != nil {
		return err
	}
	_, saKey, err := c.writePair("sa", sa)
	if err != nil {
		return err
	}
	serving, err := ca.Serving("kube-apiserver", apiServerNames, []net.IP{APIServerAddr.AsSlice(), net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)})
	if err != nil {
		return err
	}
	apiCrt, apiKey, err := c.writePair("apiserver", serving)
	if err != nil {
		return err
	}
	// What the API server presents to kubelets (logs, exec, port-forward):
	// system:masters, which kubelet's webhook authorization allows.
	kc, err := ca.Client("kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return err
	}
	kcCrt, kcKey, err := c.writePair("apiserver-kubelet-client", kc)
	if err != nil {
		return err
	}
	if c.Kubeconfig, err = c.writeKubeconfig("admin", "admin", "system:masters"); err != nil {
		return err
	}
	cmKubeconfig, err := c.writeKubeconfig("controller-manager", "system:kube-controller-manager")
	if err != nil {
		return err
	}
	schedKubeconfig, err := c.writeKubeconfig("scheduler", "system:kube-scheduler")
	if err != nil {
		return err
	}
	w := where{netns: c.ControlPlane}
	bin := func(name string) string { return filepath.Join(c.BinDir, name) }

	// etcd only on the namespace's loopback, without TLS: only the API
	// server, in the same namespace, reaches it.
	etcd, err := c.start("etcd", w, nil, append([]string{bin("etcd")}, EtcdArgs(filepath.Join(c.Dir, "etcd"))...)...)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, w, etcd, "http://127.0.0.1:2379/readyz", false); err != nil {
		return err
	}
	api, err := c.start("kube-apiserver", w, nil, bin("kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", APIServerAddr.String(),
		// Not loopback: the kubernetes Service's endpoint, which pods reach.
		"--advertise-address", APIServerAddr.String(),
		"--secure-port", "6443",
		"--tls-cert-file", apiCrt, "--tls-private-key-file", apiKey,
		"--client-ca-file", caCrt,
		"--kubelet-client-certificate", kcCrt, "--kubelet-client-key", kcKey,
		// Nodes have no DNS names: reach kubelets at their InternalIP.
		"--kubelet-preferred-address-types", "InternalIP,Hostname",
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range", ServiceCIDR.String(),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey,
		"--cert-dir", filepath.Join(c.Dir, "apiserver-certs"),
	)
	if err != nil {
		return err
	}
	if err := c.waitHTTP(ctx, w, api, c.Server+"/readyz", true); err != nil {
		return err
	}
	if _, err := c.start("kube-controller-manager", w, nil, bin("kube-controller-manager"),
		"--kubeconfig", cmKubeconfig,
		"--authentication-kubeconfig", cmKubeconfig,
		"--authorization-kubeconfig", cmKubeconfig,
		"--bind-address", "127.0.0.1",
		"--leader-elect=false",
		// Node IPAM: every Node gets a /24 of the cluster range.
		"--allocate-node-cidrs=true",
		"--cluster-cidr", ClusterCIDR.String(),
		"--node-cidr-mask-size", "24",
		"--service-cluster-ip-range", ServiceCIDR.String(),
		"--service-account-private-key-file", saKey,
		"--root-ca-file", caCrt,
		"--cluster-signing-cert-file", caCrt, "--cluster-signing-key-file", caKey,
		"--use-service-account-credentials=true",
		"--controllers", "*,bootstrapsigner,tokencleaner",
	); err != nil {
		return err
	}
	if _, err := c.start("kube-scheduler", w, nil, bin("kube-scheduler"),
		"--kubeconfig", schedKubeconfig,
		"--authentication-kubeconfig", schedKubeconfig,
		"--authorization-kubeconfig", schedKubeconfig,
		"--bind-address", "127.0.0.1",
		"--leader-elect=false",
	); err != nil {
		return err
	}
	return nil
}

// waitHTTP polls url with curl from inside w until it answers 200 (with the
// admin's client certificate when auth), failing when p exits first.
func (c *Cluster) waitHTTP(ctx context.Context, w where, p *proc, url string, auth bool) error {
	argv := []string{"curl", "-fsS", "-o", "/dev/null", "--max-time", "5"}
	if auth {
		argv = append(argv, "--cacert", filepath.Join(c.Dir, "pki", "ca.crt"))
		adminCrt, adminKey, err := c.adminPair()
		if err != nil {
			return err
		}
		argv = append(argv, "--cert", adminCrt, "--key", adminKey)
	}
	argv = append(argv, url)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for {
		if _, err := w.run(ctx, nil, argv...); err == nil {
			return nil
		} else {
			last = err
		}
		if exited, err := p.exited(); exited {
			return fmt.Errorf("%s exited before %s answered: %v\n%s", p.name, url, err, TailFile(p.log, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer: %v\n%s", p.name, url, last, TailFile(p.log, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// adminPair writes (once) the admin's client certificate for curl.
func (c *Cluster) adminPair() (crt, key string, err error) {
	crt = filepath.Join(c.Dir, "pki", "admin.crt")
	key = filepath.Join(c.Dir, "pki", "admin.key")
	if _, err := os.Stat(key); err == nil {
		return crt, key, nil
	}
	kp, err := c.pki.ca.Client("admin", "system:masters")
	if err != nil {
		return "", "", err
	}
	return c.writePair("admin", kp)
}

// waitFor polls f every 500 ms until it returns true, an error, or ctx or
// timeout ends; what says why it waited.
func waitFor(ctx context.Context, timeout time.Duration, what string, f func() (bool, string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		ok, status, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		last = status
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not after %v: %s", what, timeout, strings.TrimSpace(last))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// EtcdArgs are the flags of a test etcd with its data in dataDir: one
// member, on its namespace's loopback only (127.0.0.1:2379), without TLS
// (only the API server, in the same namespace, reaches it) and without
// fsync (a throwaway store: durability only costs time). internal/k8stest
// runs etcd with them too.
func EtcdArgs(dataDir string) []string {
	return []string{
		"--name", "default",
		"--data-dir", dataDir,
		"--listen-client-urls", "http://127.0.0.1:2379",
		"--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380",
		"--unsafe-no-fsync",
	}
}
