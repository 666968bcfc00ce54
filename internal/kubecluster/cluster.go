package kubecluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/taprouter/taprouter/internal/kubepki"
)

// Cluster is a running cluster.
type Cluster struct {
	Config
	// Kubeconfig is the admin's kubeconfig (system:masters); the API
	// server at Server is reachable from the control plane's and the
	// nodes' namespaces only.
	Kubeconfig string
	Server     string
	// ControlPlane is the control plane's network namespace.
	ControlPlane string
	Nodes        []*Node

	state   *state
	pki     *clusterPKI
	procsMu sync.Mutex
	procs   []*proc
}

// Node is one node of the cluster.
type Node struct {
	Name string
	Addr net.IP
	// Netns is its network namespace's name (ip netns).
	Netns string
	// PodCIDR is its pod range, from kube-controller-manager's node IPAM.
	PodCIDR string
	w       where
	dir     string // its directory under Dir
	cg      string // its cgroup root, "/<cluster>-<node>"
}

// Up creates and starts a cluster and waits until its nodes are Ready
// (when Manifests install a CNI) and kube-system's pods run. On error it
// removes what it made.
func Up(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	for _, masked := range []string{"/run/", "/var/run/", "/var/lib/", "/var/log/", "/opt/"} {
		if strings.HasPrefix(dir+"/", masked) {
			return nil, fmt.Errorf("kubecluster: Dir %s is under %s, which every node mounts over", dir, masked)
		}
	}
	// Dir is made here, or must be empty: Down removes it, and only what
	// Up put in it.
	if dir == "/" {
		return nil, fmt.Errorf("kubecluster: Dir / refused")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		entries, rerr := os.ReadDir(dir)
		if !os.IsExist(err) || rerr != nil || len(entries) > 0 {
			return nil, fmt.Errorf("kubecluster: Dir %s must not exist or be empty: %v", dir, err)
		}
	}
	if err := checkOwnDir(dir); err != nil {
		return nil, err
	}
	for _, p := range []*string{&cfg.BinDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	for _, list := range [][]string{cfg.Images, cfg.Manifests} {
		for i := range list {
			if list[i], err = filepath.Abs(list[i]); err != nil {
				return nil, err
			}
			if _, err := os.Stat(list[i]); err != nil {
				return nil, fmt.Errorf("kubecluster: %w", err)
			}
		}
	}
	if err := nameFree(cfg.Name); err != nil {
		return nil, err
	}
	c = &Cluster{Config: cfg, state: newState(dir, cfg.Name), ControlPlane: cfg.Name + "-cp"}
	// O_EXCL: of two Ups on one Dir, one fails here.
	f, err := os.OpenFile(filepath.Join(dir, stateFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubecluster: %s holds a cluster already (taprouter-cluster down --dir %s): %w", dir, dir, err)
	}
	f.Close()
	if err := c.state.update(func(s *state) { s.BinDir = cfg.BinDir }); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && !cfg.KeepOnFailure {
			if derr := Down(dir); derr != nil {
				err = fmt.Errorf("%w (and tearing down: %v)", err, derr)
			}
		}
	}()
	t0 := time.Now()
	if err := c.network(ctx); err != nil {
		return nil, err
	}
	if err := c.makeNSDir(ctx, filepath.Join(dir, "ns")); err != nil {
		return nil, err
	}
	if err := c.startControlPlane(ctx); err != nil {
		return nil, err
	}
	cfg.Logf("control plane ready (%.1f s)", time.Since(t0).Seconds())
	var wg sync.WaitGroup
	nodeErrs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodeErrs[i] = c.startNode(ctx, n)
		}()
	}
	wg.Wait()
	for _, err := range nodeErrs {
		if err != nil {
			return nil, err
		}
	}
	cfg.Logf("%d nodes started (%.1f s)", len(c.Nodes), time.Since(t0).Seconds())
	if err := c.waitNodesRegistered(ctx); err != nil {
		return nil, err
	}
	if err := c.routeControlPlane(ctx); err != nil {
		return nil, err
	}
	if err := c.applyAddons(ctx); err != nil {
		return nil, err
	}
	if len(cfg.Manifests) > 0 {
		if err := c.applyManifests(ctx); err != nil {
			return nil, err
		}
		if err := c.WaitReady(ctx); err != nil {
			return nil, err
		}
		cfg.Logf("cluster ready: %d nodes Ready, kube-system running (%.1f s)", len(c.Nodes), time.Since(t0).Seconds())
	}
	return c, nil
}

// Down removes the cluster whose state is in dir (see the package
// comment), and then dir. It goes on after errors and returns them all.
func Down(dir string) error {
	s, err := loadState(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var e errs
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inodes := map[uint64]bool{}
	for _, ns := range s.Netns {
		if ino := nsInode("/run/netns/" + ns); ino != 0 {
			inodes[ino] = true
		}
	}
	for _, f := range s.NSFiles {
		if ino := nsInode(f); ino != 0 {
			inodes[ino] = true
		}
	}
	// kubelets first, or they would recreate what is removed next; a pid
	// only if it is still in one of the cluster's namespaces (not reused).
	for name, pid := range s.Pids {
		if strings.HasPrefix(name, "kubelet-") && inodes[nsInode(fmt.Sprintf("/proc/%d/ns/net", pid))] {
			stopPid(pid, 10*time.Second)
		}
	}
	// Every pod's sandbox, so that the CNI DEL of each runs while the
	// network daemon (a pod itself) is still there: the others first.
	crictl := filepath.Join(s.BinDir, "crictl")
	if s.BinDir == "" || len(s.Nodes) == 0 {
		// No node got as far as a containerd.
	} else if err := trustedBinary(crictl); err != nil {
		e.add(fmt.Errorf("pod sandboxes not removed (their CNI DEL does not run): %w", err))
	} else {
		var wg sync.WaitGroup
		for _, n := range s.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				removeSandboxes(ctx, where{netns: n.Netns, mnt: n.Mnt, uts: n.UTS}, crictl)
			}()
		}
		wg.Wait()
	}
	e.add(killAll(inodes, s.Cgroups, 10*time.Second))
	// Every mount under dir, deepest first, also one stacked twice.
	e.add(unmountUnder(dir))
	e.add(removeCgroups(s.Cgroups))
	for i := len(s.Netns) - 1; i >= 0; i-- {
		if _, err := os.Stat("/run/netns/" + s.Netns[i]); err == nil {
			if out, err := runHost(ctx, "ip", "netns", "del", s.Netns[i]); err != nil {
				e.add(fmt.Errorf("ip netns del %s: %v: %s", s.Netns[i], err, out))
			}
		}
	}
	if err := e.err(); err != nil {
		return fmt.Errorf("kubecluster: down %s: %w", dir, err)
	}
	return removeOwnFiles(dir, s)
}

// removeOwnFiles removes what Up writes in dir, and then dir if that left
// it empty: never anything else someone put there.
func removeOwnFiles(dir string, s *state) error {
	var e errs
	names := []string{stateFile, stateFile + ".tmp", "logs", "pki", "ns", "etcd", "apiserver-certs"}
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	kubeconfigs, _ := filepath.Glob(filepath.Join(dir, "*.kubeconfig"))
	for _, k := range kubeconfigs {
		names = append(names, filepath.Base(k))
	}
	for _, n := range names {
		e.add(os.RemoveAll(filepath.Join(dir, n)))
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		e.add(fmt.Errorf("kubecluster: %s not removed: %w", dir, err))
	}
	return e.err()
}

// Down removes the cluster (the package's Down on its Dir).
func (c *Cluster) Down() error { return Down(c.Dir) }

// Kubectl runs kubectl as the admin inside the control plane's namespace
// with stdin (may be nil) and returns its standard output.
func (c *Cluster) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	w := where{netns: c.ControlPlane}
	return w.run(ctx, stdin, append([]string{filepath.Join(c.BinDir, "kubectl"), "--kubeconfig", c.Kubeconfig}, args...)...)
}

// OnNode runs a short command in node n's namespaces (network, mount, UTS).
func (c *Cluster) OnNode(ctx context.Context, n *Node, argv ...string) (string, error) {
	return n.w.run(ctx, nil, argv...)
}

// InControlPlane returns the argv that runs argv in the control plane's
// network namespace (for a long-running client such as e2e.test).
func (c *Cluster) InControlPlane(argv ...string) []string {
	return where{netns: c.ControlPlane}.nsenter(argv...)
}

// Logs returns the paths of the cluster's log files.
func (c *Cluster) Logs() []string {
	paths, _ := filepath.Glob(filepath.Join(c.Dir, "logs", "*.log"))
	return paths
}

// clusterPKI is the cluster's CA and the files written from it.
type clusterPKI struct {
	ca *kubepki.KeyPair
	sa *kubepki.KeyPair
}

// writeKubeconfig issues a client certificate for user in groups and writes
// a kubeconfig with it to <Dir>/<name>.kubeconfig.
func (c *Cluster) writeKubeconfig(name, user string, groups ...string) (string, error) {
	kp, err := c.pki.ca.Client(user, groups...)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, name+".kubeconfig")
	return path, os.WriteFile(path, kubepki.CertKubeconfig(c.Server, c.pki.ca.CertPEM, user, kp), 0o600)
}

// writePair writes a key pair as <Dir>/pki/<name>.{crt,key}.
func (c *Cluster) writePair(name string, kp *kubepki.KeyPair) (crt, key string, err error) {
	d := filepath.Join(c.Dir, "pki")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", "", err
	}
	crt, key = filepath.Join(d, name+".crt"), filepath.Join(d, name+".key")
	if err := os.WriteFile(crt, kp.CertPEM, 0o644); err != nil {
		return "", "", err
	}
	return crt, key, os.WriteFile(key, kp.KeyPEM, 0o600)
}
