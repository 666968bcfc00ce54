package peers

import (
	"net/netip"
	"slices"

	"github.com/taprouter/taprouter/link"
)

// Peer is another node, as a source describes it.
type Peer struct {
	// Node is the node's name: the peer's identity, unique in a set.
	Node string
	// Addr is the node's underlay IPv4 address (Kubernetes: InternalIP).
	Addr netip.Addr
	// PodCIDRs are the node's pod ranges (Kubernetes: spec.podCIDRs).
	PodCIDRs []netip.Prefix
	// Backend is the encapsulation the node speaks ("vxlan", "udp",
	// "direct"); empty means the same as this node's.
	Backend string
	// VTEPMAC is the node's VTEP MAC for vxlan (Kubernetes: the annotation
	// it publishes, or flannel's backend-data); zero means derived from
	// Addr, what a taprouter node uses.
	VTEPMAC link.HardwareAddr
	// ID is the router's stable ID for the peer (tunnel.Peer.ID) in what
	// Reconciler.Peers returns; sources leave it zero, Apply ignores it.
	ID uint32
}

// Local is this node, as Validate checks peers against it.
type Local struct {
	Node     string
	Addr     netip.Addr     // the underlay address
	PodCIDRs []netip.Prefix // this node's pod ranges
	Backend  string         // this node's backend
	// Reserved are ranges that no peer's pod range may overlap: the
	// underlay's subnets, whose routes a node route would shadow.
	Reserved []netip.Prefix
}

// equal reports whether p and q describe the same peer the same way (ID
// aside).
func (p Peer) equal(q Peer) bool {
	return p.Node == q.Node && p.Addr == q.Addr && p.Backend == q.Backend && p.VTEPMAC == q.VTEPMAC && slices.Equal(p.PodCIDRs, q.PodCIDRs)
}
