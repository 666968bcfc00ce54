package testbed

import (
	"fmt"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// Backends are taprouter's underlay encapsulations.
var Backends = []string{"vxlan", "udp", "direct"}

// PodMTU is the pod MTU taprouterd gives a backend on a 1500-byte underlay.
func PodMTU(backend string) int {
	switch backend {
	case "vxlan":
		return UnderlayMTU - 50
	case "udp":
		return UnderlayMTU - 28
	}
	return UnderlayMTU
}

// CalicoGateway is the gateway address Calico gives every pod.
var CalicoGateway = netip.MustParseAddr("169.254.1.1")

// NodeSpec describes a node of a cluster.
type NodeSpec struct {
	Name    string
	Addr    netip.Addr   // underlay address
	PodCIDR netip.Prefix // the node's pod range
	Gateway netip.Addr   // the pods' gateway: podCIDR's .1, or CalicoGateway
	Pods    []PodSpec
}

// PodSpec describes a pod.
type PodSpec struct {
	Name string
	IP   netip.Addr
	MTU  int // zero: the backend's pod MTU
}

// Seed is the demo topology: node1 (192.168.49.2, pods pa 10.244.0.4 and
// pb 10.244.0.5) and node2 (192.168.49.3, pod pc 10.244.1.5), with
// kindnet-style gateways.
func Seed() []NodeSpec {
	return []NodeSpec{
		{
			Name: "node1", Addr: netip.MustParseAddr("192.168.49.2"),
			PodCIDR: netip.MustParsePrefix("10.244.0.0/24"), Gateway: netip.MustParseAddr("10.244.0.1"),
			Pods: []PodSpec{{Name: "pa", IP: netip.MustParseAddr("10.244.0.4")}, {Name: "pb", IP: netip.MustParseAddr("10.244.0.5")}},
		},
		{
			Name: "node2", Addr: netip.MustParseAddr("192.168.49.3"),
			PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.1"),
			Pods: []PodSpec{{Name: "pc", IP: netip.MustParseAddr("10.244.1.5")}},
		},
	}
}

// Cluster is a set of nodes and their (still empty) pod namespaces on one
// bed. Wire the pods with StartTaprouter or the kernel reference topologies.
type Cluster struct {
	Bed   *Bed
	Nodes []*ClusterNode
}

// ClusterNode is a node with its spec and pods.
type ClusterNode struct {
	*Node
	Spec NodeSpec
	Pods []*Pod

	flannelMAC link.HardwareAddr // flannel.1's MAC once WireKernelFlannel made it
}

// Pod is a pod namespace.
type Pod struct {
	*Netns
	Spec PodSpec
	// Node is the node the pod runs on.
	Node *ClusterNode
}

// Addr is the pod's address.
func (p *Pod) Addr() netip.Addr { return p.Spec.IP }

// AddCluster creates the nodes and pod namespaces of specs.
func (b *Bed) AddCluster(specs []NodeSpec) (*Cluster, error) {
	c := &Cluster{Bed: b}
	for _, s := range specs {
		n, err := b.AddNode(s.Name, s.Addr)
		if err != nil {
			return nil, err
		}
		cn := &ClusterNode{Node: n, Spec: s}
		for _, ps := range s.Pods {
			if !s.PodCIDR.Contains(ps.IP) {
				return nil, fmt.Errorf("testbed: pod %s: %s is outside node %s's podCIDR %s", ps.Name, ps.IP, s.Name, s.PodCIDR)
			}
			ns, err := b.AddNetns(ps.Name)
			if err != nil {
				return nil, err
			}
			cn.Pods = append(cn.Pods, &Pod{Netns: ns, Spec: ps, Node: cn})
		}
		c.Nodes = append(c.Nodes, cn)
	}
	return c, nil
}

// Node returns the node named name; it panics on a name the spec does not
// have, which is a bug in the test.
func (c *Cluster) Node(name string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	panic("testbed: no node " + name)
}

// Pod returns the pod named name; it panics on a name the spec does not have.
func (c *Cluster) Pod(name string) *Pod {
	for _, n := range c.Nodes {
		for _, p := range n.Pods {
			if p.Spec.Name == name {
				return p
			}
		}
	}
	panic("testbed: no pod " + name)
}

// VTEPMAC is the node's VTEP MAC: flannel.1's when the node runs the kernel
// flannel topology, else the one taprouterd derives, 0a:58:<address bytes>.
func (n *ClusterNode) VTEPMAC() link.HardwareAddr {
	if !n.flannelMAC.IsZero() {
		return n.flannelMAC
	}
	return TaprouterVTEPMAC(n.Addr)
}

// TaprouterVTEPMAC is the VTEP MAC taprouterd derives from an underlay
// address.
func TaprouterVTEPMAC(addr netip.Addr) link.HardwareAddr {
	return link.DerivedMAC(0x0a, 0x58, addr)
}

// DaemonConfig returns n's taprouterd configuration for backend: every pod of
// n as a port and every other node of the cluster as a peer (with its
// vtepMAC when it runs the kernel flannel topology).
func (c *Cluster) DaemonConfig(n *ClusterNode, backend string) DaemonConfig {
	cfg := DaemonConfig{
		Node:     n.Name,
		PodCIDR:  n.Spec.PodCIDR.String(),
		Gateway:  n.Spec.Gateway.String(),
		Backend:  backend,
		Underlay: UnderlayConfig{Interface: "eth0", Address: n.Addr.String()},
	}
	switch backend {
	case "vxlan":
		cfg.VXLAN = &VXLANConfig{VNI: 1, Port: 8472}
	case "udp":
		cfg.UDP = &UDPConfig{Port: 8285}
	}
	for _, peer := range c.Nodes {
		if peer == n {
			continue
		}
		pc := PeerConfig{Node: peer.Name, Address: peer.Addr.String(), PodCIDR: peer.Spec.PodCIDR.String()}
		if backend == "vxlan" && !peer.flannelMAC.IsZero() {
			pc.VTEPMAC = peer.flannelMAC.String()
		}
		cfg.Peers = append(cfg.Peers, pc)
	}
	for _, p := range n.Pods {
		cfg.Ports = append(cfg.Ports, PortConfig{Name: p.Spec.Name, Netns: p.Path(), IP: p.Spec.IP.String(), MTU: p.Spec.MTU})
	}
	return cfg
}

// StartTaprouter starts taprouterd with DaemonConfig(n, backend) on each of
// nodes (all nodes when none are given) and returns the daemons by node name.
func (c *Cluster) StartTaprouter(backend string, nodes ...*ClusterNode) (map[string]*Daemon, error) {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	daemons := map[string]*Daemon{}
	for _, n := range nodes {
		d, err := c.Bed.StartDaemon(n.Node, c.DaemonConfig(n, backend))
		if err != nil {
			return nil, err
		}
		daemons[n.Name] = d
	}
	return daemons, nil
}
