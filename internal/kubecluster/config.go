package kubecluster

import (
	"fmt"
	"net/netip"
	"regexp"
)

// The cluster's addresses. The underlay is TEST-NET-like private space that
// exists only in the cluster's namespaces.
var (
	// Underlay is the nodes' and the control plane's subnet.
	Underlay = netip.MustParsePrefix("192.168.49.0/24")
	// Gateway is the switch namespace's address on the underlay, the
	// default route of every host; that namespace forwards nothing.
	Gateway = netip.MustParseAddr("192.168.49.1")
	// APIServerAddr is the control plane's address.
	APIServerAddr = netip.MustParseAddr("192.168.49.250")
	// ClusterCIDR is kube-controller-manager's --cluster-cidr (each Node's
	// podCIDR is a /24 of it), kube-proxy's and deploy/'s cluster-cidr.
	ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	// ServiceCIDR is the API server's --service-cluster-ip-range.
	ServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	// DNSServiceIP is CoreDNS's Service address, kubelet's clusterDNS.
	DNSServiceIP = netip.MustParseAddr("10.96.0.10")
)

// Images the cluster's own pods run, by the names the nodes' containerd
// knows them: containerd's sandbox image is e2e's pause (e2e.test names
// registry.k8s.io/pause:3.10.2, so one image serves both).
const (
	PauseImage   = "registry.k8s.io/pause:3.10.2"
	CoreDNSImage = "registry.k8s.io/coredns/coredns:v1.14.7"
)

// NodeAddr is the underlay address of node i (0-based): .2, .3, ...
func NodeAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, 49, byte(2 + i)})
}

// Config describes a cluster.
type Config struct {
	// Dir holds everything of the cluster: state.json, certificates,
	// kubeconfigs, configuration, logs, containerd's and kubelet's
	// directories. It must not be under /run, /var/lib, /var/log or /opt,
	// which nodes mount over. Created if missing.
	Dir string
	// Name prefixes the cluster's network namespaces and cgroups; unique
	// among the clusters that run at once: 1-10 of [a-z0-9].
	Name string
	// Nodes is the number of nodes, 1 to 200.
	Nodes int
	// BinDir holds the binaries of make k8s-tools (bin/k8s).
	BinDir string
	// Images are image tarballs (docker-archive or OCI) imported into
	// every node's containerd before kubelet starts. One of them must be
	// PauseImage, the sandbox of every pod; CoreDNSImage for CoreDNS.
	Images []string
	// Manifests are files or directories kubectl applies once the nodes
	// are registered (deploy/): the CNI is installed by them. Empty: the
	// nodes stay NotReady until something installs a CNI config.
	Manifests []string
	// Backend, if set, replaces the backend in taprouter's ConfigMap
	// (taprouterd.yaml's "backend: vxlan") when the manifests are applied.
	Backend string
	// KeepOnFailure leaves what Up made when it fails, for a look at the
	// logs; Down removes it.
	KeepOnFailure bool
	// Logf, if set, reports progress.
	Logf func(format string, args ...any)
}

var nameRE = regexp.MustCompile(`^[a-z0-9]{1,10}$`)

func (cfg *Config) validate() error {
	if cfg.Dir == "" {
		return fmt.Errorf("kubecluster: no Dir")
	}
	if !nameRE.MatchString(cfg.Name) {
		return fmt.Errorf("kubecluster: name %q: want 1-10 of a-z and 0-9", cfg.Name)
	}
	if cfg.Nodes < 1 || cfg.Nodes > 200 {
		return fmt.Errorf("kubecluster: %d nodes: want 1 to 200", cfg.Nodes)
	}
	switch cfg.Backend {
	case "", "vxlan", "udp", "direct":
	default:
		return fmt.Errorf("kubecluster: backend %q: want vxlan, udp or direct", cfg.Backend)
	}
	return nil
}
