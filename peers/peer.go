package peers

import (
	"net/netip"

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
}
