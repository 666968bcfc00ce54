package kubecluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// nodePrivate are the directories every node mounts its own copy over
// (see the package comment); /run is a fresh tmpfs, and /etc an overlay
// of the machine's, so that the node's /etc/cni is its own without a
// mount point made on the machine.
var nodePrivate = []string{"/var/lib", "/var/log", "/opt"}

// startNode makes node n's mount and UTS namespaces and cgroups, and starts
// its containerd (importing the images), kube-proxy and kubelet.
func (c *Cluster) startNode(ctx context.Context, n *Node) error {
	n.dir = filepath.Join(c.Dir, n.Name)
	n.cg = "/" + c.Name + "-" + n.Name
	if err := c.nodeNamespaces(ctx, n); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := c.nodeCgroups(n); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := c.startContainerd(ctx, n); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := c.startKubeProxy(n); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := c.startKubelet(n); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	return nil
}

// nodeNamespaces creates n's mount and UTS namespaces, bound to files in a
// private mount under <Dir>/ns so they outlive their processes, with the
// node-private directories mounted in and the hostname set.
func (c *Cluster) nodeNamespaces(ctx context.Context, n *Node) error {
	nsDir := filepath.Join(c.Dir, "ns") // made by Up (makeNSDir)
	mnt, uts := filepath.Join(nsDir, n.Name+".mnt"), filepath.Join(nsDir, n.Name+".uts")
	for _, f := range []string{mnt, uts} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			return err
		}
	}
	if err := c.state.update(func(s *state) {
		s.NSFiles = append(s.NSFiles, mnt, uts)
		s.Nodes = append(s.Nodes, nodeState{Name: n.Name, Netns: n.Netns, Mnt: mnt, UTS: uts})
	}); err != nil {
		return err
	}
	// The mount points of the node-private directories must exist on the
	// machine: Up makes none (another cluster's Down would remove it under
	// this one's nodes).
	for _, d := range nodePrivate {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("%s must be a directory on this machine, for nodes to mount theirs over: %v", d, err)
		}
	}
	var script strings.Builder
	fmt.Fprintf(&script, "set -e\nhostname %s\nmount -t tmpfs -o mode=755 tmpfs /run\nmkdir -p /run/netns /run/lock\n", n.Name)
	for _, d := range nodePrivate {
		own := filepath.Join(n.dir, "root", d)
		if err := os.MkdirAll(own, 0o755); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", own, d)
	}
	// kubelet sets kernel-wide sysctls it wants (kernel.panic=10,
	// panic_on_oops=1, vm.overcommit_memory=1, ...) when they differ:
	// those are the machine's, not the node's. The node sees read-only
	// files with the values it wants, so kubelet finds them set and writes
	// nothing.
	for _, kt := range kubeletTunables {
		f := filepath.Join(n.dir, "sysctl", strings.ReplaceAll(kt.path, "/", "."))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, []byte(kt.value+"\n"), 0o444); err != nil {
			return err
		}
		fmt.Fprintf(&script, "mount --bind -o ro %s /proc/sys/%s\n", f, kt.path)
	}
	upper, work := filepath.Join(n.dir, "root", "etc-upper"), filepath.Join(n.dir, "root", "etc-work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	fmt.Fprintf(&script, "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc\n", upper, work)
	// Shared, so that containers asking for HostToContainer propagation
	// (the DaemonSet's /run/netns) see mounts made after they started.
	script.WriteString("mount --make-rshared /\n")
	// unshare in the node's network namespace: the tmpfs and sysfs views
	// are then the node's.
	w := where{netns: n.Netns}
	// One node at a time: a new mount namespace copies the machine's, and
	// with it the other nodes' namespace files being bound.
	nsMu.Lock()
	defer nsMu.Unlock()
	if _, err := w.run(ctx, nil, "unshare", "--mount="+mnt, "--uts="+uts, "--propagation", "private", "sh", "-c", script.String()); err != nil {
		return err
	}
	// unshare binds the files from a child of its own, which may finish
	// after unshare's command has (seen under load: the UTS file was still
	// an empty file when containerd was started in it).
	if err := waitFor(ctx, 10*time.Second, n.Name+": namespace files bound", func() (bool, string, error) {
		return nsInode(mnt) != 0 && nsInode(uts) != 0, "not yet namespaces: " + mnt + ", " + uts, nil
	}); err != nil {
		return err
	}
	n.w = where{netns: n.Netns, mnt: mnt, uts: uts}
	return nil
}

// nsMu serializes making the nodes' mount namespaces.
var nsMu sync.Mutex

// kubeletTunables are the machine-wide sysctls kubelet sets (its
// setupKernelTunables, v1.37), with the values it wants.
var kubeletTunables = []struct{ path, value string }{
	{"vm/overcommit_memory", "1"},
	{"vm/panic_on_oom", "0"},
	{"kernel/panic", "10"},
	{"kernel/panic_on_oops", "1"},
	{"kernel/keys/root_maxkeys", "1000000"},
	{"kernel/keys/root_maxbytes", "25000000"},
}

// makeNSDir makes <Dir>/ns a private bind mount: a namespace file can only
// be bound onto a mount that does not propagate.
func (c *Cluster) makeNSDir(ctx context.Context, nsDir string) error {
	if err := os.MkdirAll(nsDir, 0o700); err != nil {
		return err
	}
	if err := c.state.update(func(s *state) { s.NSDir = nsDir }); err != nil {
		return err
	}
	if _, err := runHost(ctx, "mount", "--bind", nsDir, nsDir); err != nil {
		return err
	}
	_, err := runHost(ctx, "mount", "--make-private", nsDir)
	return err
}

// allCgroupMounts returns the mount points of every cgroup hierarchy, v1
// and v2.
func allCgroupMounts() ([]string, error) {
	v1, err := cgroupMounts("cgroup")
	if err != nil {
		return nil, err
	}
	v2, err := cgroupMounts("cgroup2")
	return append(v1, v2...), err
}

// cgroupMounts returns the mount points of the cgroup hierarchies of
// fstype: cgroup (v1) or cgroup2.
func cgroupMounts(fstype string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == fstype {
				mounts = append(mounts, fields[4])
			}
		}
	}
	return mounts, sc.Err()
}

// nodeCgroups makes n's cgroup root in every cgroup v1 hierarchy (kubelet
// refuses a cgroupRoot missing from one), with cpuset's cpus and mems
// copied from the parent, which a new v1 cpuset does not inherit.
func (c *Cluster) nodeCgroups(n *Node) error {
	mounts, err := cgroupMounts("cgroup")
	if err != nil {
		return err
	}
	if len(mounts) == 0 {
		return fmt.Errorf("no cgroup v1 hierarchy mounted (cgroup v2 machines: not supported yet)")
	}
	// On a hybrid machine kubelet also makes n's root in the cgroup2
	// hierarchy (/sys/fs/cgroup/unified): recorded, for Down.
	v2, err := cgroupMounts("cgroup2")
	if err != nil {
		return err
	}
	for _, m := range v2 {
		d := filepath.Join(m, n.cg)
		if err := c.state.update(func(s *state) { s.Cgroups = append(s.Cgroups, d) }); err != nil {
			return err
		}
	}
	for _, m := range mounts {
		d := filepath.Join(m, n.cg)
		if err := c.state.update(func(s *state) { s.Cgroups = append(s.Cgroups, d) }); err != nil {
			return err
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(m, f)); err == nil {
				if err := os.WriteFile(filepath.Join(d, f), v, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// removeCgroups removes the cgroups and everything under them, deepest
// first, retrying while the last tasks leave.
func removeCgroups(cgroups []string) error {
	var e errs
	for _, cg := range cgroups {
		var dirs []string
		filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 50; try++ {
				if err = os.Remove(dirs[i]); err == nil || os.IsNotExist(err) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			e.add(err)
		}
	}
	return e.err()
}

const containerdSock = "/run/containerd/containerd.sock"

// containerdConfig is a node's containerd configuration (version 3, for
// containerd 2.x). Its root and state are node-private (/var/lib and /run
// are the node's).
func containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = [
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.nri.v1.nri",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = %q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q

[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # No AppArmor profile can be loaded here.
  disable_apparmor = true
  # The sandbox lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
  restrict_oom_score_adj = true
  # No hugetlb hierarchy on these machines.
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/opt/cni/bin"]
    conf_dir = "/etc/cni/net.d"
    # containerd brings up the pods' lo itself: no loopback plugin needed.
    use_internal_loopback = true
`, containerdSock, PauseImage)
}

// startContainerd starts n's containerd and imports the images into it.
func (c *Cluster) startContainerd(ctx context.Context, n *Node) error {
	cfg := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(containerdConfig()), 0o644); err != nil {
		return err
	}
	// The shim is found next to containerd and in PATH; runc is Debian's.
	env := []string{"PATH=" + c.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	p, err := c.start("containerd-"+n.Name, n.w, env, filepath.Join(c.BinDir, "containerd"), "--config", cfg)
	if err != nil {
		return err
	}
	ctr := []string{filepath.Join(c.BinDir, "ctr"), "--address", containerdSock, "-n", "k8s.io"}
	if err := waitFor(ctx, time.Minute, n.Name+": containerd", func() (bool, string, error) {
		if exited, err := p.exited(); exited {
			return false, "", fmt.Errorf("%s: containerd exited: %v\n%s", n.Name, err, TailFile(p.log, 30))
		}
		_, err := n.w.run(ctx, nil, append(ctr, "version")...)
		return err == nil, fmt.Sprint(err), nil
	}); err != nil {
		return err
	}
	for _, img := range c.Images {
		if _, err := n.w.run(ctx, nil, append(ctr, "images", "import", "--no-unpack=false", img)...); err != nil {
			return fmt.Errorf("%s: import %s: %w", n.Name, img, err)
		}
	}
	return nil
}

// startKubeProxy starts kube-proxy (iptables mode) on n.
func (c *Cluster) startKubeProxy(n *Node) error {
	kubeconfig, err := c.writeKubeconfig("kube-proxy-"+n.Name, "system:kube-proxy")
	if err != nil {
		return err
	}
	cfg := KubeProxyConfig(kubeconfig, n.Name, ClusterCIDR.String())
	path := filepath.Join(n.dir, "kube-proxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	_, err = c.start("kube-proxy-"+n.Name, n.w, nil, filepath.Join(c.BinDir, "kube-proxy"), "--config", path, "-v", "2")
	return err
}

// KubeProxyConfig is kube-proxy's configuration file for node (iptables
// mode) with the kubeconfig at path and the cluster's pod range; the e2e
// tests' kube-proxies use it too. conntrack maxPerCore 0: leave
// nf_conntrack_max alone, a knob of the whole machine that a namespace
// cannot set.
func KubeProxyConfig(kubeconfig, node, clusterCIDR string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
conntrack:
  maxPerCore: 0
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, kubeconfig, node, clusterCIDR)
}

// startKubelet starts n's kubelet.
func (c *Cluster) startKubelet(n *Node) error {
	kubeconfig, err := c.writeKubeconfig("kubelet-"+n.Name, "system:node:"+n.Name, "system:nodes")
	if err != nil {
		return err
	}
	serving, err := c.pki.ca.Serving("kubelet-"+n.Name, []string{n.Name}, []net.IP{n.Addr})
	if err != nil {
		return err
	}
	crt, key, err := c.writePair("kubelet-"+n.Name, serving)
	if err != nil {
		return err
	}
	// The pods' resolv.conf for dnsPolicy Default: the switch namespace,
	// which answers nothing (nothing leaves the cluster's namespaces).
	resolv := filepath.Join(n.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+Gateway.String()+"\n"), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %s
tlsPrivateKeyFile: %s
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
# These machines have cgroup v1 and swap settings kubelet would refuse.
failCgroupV1: false
failSwapOn: false
# The sandbox lacks CAP_SYS_RESOURCE: no negative oom_score_adj.
oomScoreAdj: 0
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: %s
# Imported images must never be collected: there is no registry.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
serializeImagePulls: false
registerNode: true
rotateCertificates: false
`, filepath.Join(c.Dir, "pki", "ca.crt"), n.Addr, crt, key, containerdSock, n.cg, DNSServiceIP, resolv)
	path := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	_, err = c.start("kubelet-"+n.Name, n.w, nil, filepath.Join(c.BinDir, "kubelet"),
		"--config", path,
		"--kubeconfig", kubeconfig,
		"--hostname-override", n.Name,
		"--node-ip", n.Addr.String(),
		"--root-dir", "/var/lib/kubelet",
		"-v", "2")
	return err
}

// removeSandboxes stops and removes every pod sandbox on a node through
// its containerd (crictl), so that the CNI DEL of each runs: first the
// pods that are not taprouter's (which serves the others' DEL), then the
// rest. Errors are ignored: containerd may be gone.
func removeSandboxes(ctx context.Context, w where, crictl string) {
	base := []string{crictl, "--runtime-endpoint", "unix://" + containerdSock, "--timeout", "20s"}
	ids := func(args ...string) []string {
		out, err := w.run(ctx, nil, append(append(base, "pods", "-q"), args...)...)
		if err != nil {
			return nil
		}
		return strings.Fields(out)
	}
	all := ids()
	if len(all) == 0 {
		return
	}
	network := map[string]bool{}
	for _, id := range ids("--label", "app.kubernetes.io/name=taprouter") {
		network[id] = true
	}
	for _, last := range []bool{false, true} {
		for _, id := range all {
			if network[id] == last {
				w.run(ctx, nil, append(base, "stopp", id)...)
				w.run(ctx, nil, append(base, "rmp", "-f", id)...)
			}
		}
	}
}
