package tunnel

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// Backend names, as they appear in configuration and in Tunnel.Name.
const (
	NameVXLAN  = "vxlan"
	NameUDP    = "udp"
	NameDirect = "direct"
)

// Per-backend overhead on an IPv4 underlay: the bytes the underlay carries
// beyond the inner IP packet. Pod MTU = underlay MTU - overhead.
const (
	// OverheadVXLAN is outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
	OverheadVXLAN = 50
	// OverheadUDP is outer IPv4 (20) + UDP (8).
	OverheadUDP = 28
	// OverheadDirect is zero: the inner packet is the underlay packet.
	OverheadDirect = 0
)

// Peer is another node reachable through the tunnel.
type Peer struct {
	// ID names the peer in Send and Recv and in the FIB's next hops: its
	// slot (PeerSlot) and the slot's generation. The router assigns it; an
	// ID is never given to another peer while packets may still carry it.
	ID   uint32
	Node string     // node name, for logs and stats
	Addr netip.Addr // the peer node's underlay IPv4 address
	// PodCIDRs are the peer's pod ranges. The FIB routes to them; the
	// direct backend also tells a frame's peer by its inner source.
	PodCIDRs []netip.Prefix
	// VTEPMAC is the peer's VTEP MAC, the inner destination MAC of vxlan
	// frames. Zero means VTEPMAC(Addr), what a taprouter peer uses. Other
	// backends ignore it.
	VTEPMAC link.HardwareAddr
}

// Tunnel is one encapsulation together with its underlay transport.
//
// Send and Recv are the hot path: they do not allocate in steady state, and
// Send takes no locks. Send may be called concurrently with itself and with
// every other method; Recv likewise, but Recv calls are serialised (the
// underlay's reads are, and the packets split from a super-packet are
// queued between calls; see the package doc). SetPeers, Tick and Stats are
// cheap and safe at any time.
type Tunnel interface {
	// Name is the backend name: "vxlan", "udp" or "direct".
	Name() string
	// Overhead is the number of bytes the underlay carries beyond the inner
	// IPv4 packet: pod MTU = underlay MTU - Overhead.
	Overhead() int
	// Headroom is the number of bytes Send writes in front of each inner
	// packet: the offset passed to Send must be at least this.
	Headroom() int
	// SetPeers replaces the peer set. Each peer is named by its ID (of two
	// with one slot, the first is kept). Send and Recv switch to the new
	// set atomically; a peer whose ID stays keeps its identity, whatever
	// else changed (a new address: packets for it go there).
	SetPeers(peers []Peer)
	// Send encapsulates bufs[i][offset:], an inner IPv4 packet, in place for
	// the peer with ID peers[i] and transmits the batch. A packet for an ID
	// not in the set (a peer removed, or its slot reused by a newer
	// generation) is dropped and counted in drop_unknown_peer: it is never
	// sent to another peer. The direct backend queues packets
	// whose peer MAC is still being resolved (they are not in the count
	// returned, and count in Stats.TxResolved when sent). It returns the
	// number of packets handed to the underlay and the underlay's error, if
	// any.
	Send(bufs [][]byte, peers []uint32, offset int) (int, error)
	// Recv reads one batch of underlay datagrams or frames into
	// bufs[i][offset:] and decapsulates them in place. For each i < n,
	// sizes[i] == 0 means the datagram was dropped or consumed (and
	// counted); otherwise the inner IPv4 packet is
	// bufs[i][starts[i]:starts[i]+sizes[i]] and came from the peer with
	// ID peers[i]. sizes, starts and peers must be at least len(bufs) long.
	// A call may hand out packets split from a super-packet read by an
	// earlier call instead of reading the underlay.
	Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error)
	// Tick drives timers (the direct backend's underlay ARP). The router
	// calls it about every 100ms.
	Tick()
	// Stats returns a snapshot of the counters.
	Stats() Stats
	// Close closes the underlay transport; blocked Recv calls return.
	Close() error
}

// GSOTunnel is a Tunnel that moves super-frames (link.GSO) whole: the
// direct backend on a packet socket with PACKET_VNET_HDR, which writes
// them onto the underlay interface as they are (a veth passes them on
// whole, a NIC segments them) and reads them whole from it.
type GSOTunnel interface {
	Tunnel
	// GSO reports whether the methods below carry super-frames at all (the
	// underlay device moves them); if not, use Send and Recv.
	GSO() bool
	// SendsWhole reports whether a super-frame for the peer with ID peer
	// would leave whole now: the peer is known and, for the direct
	// backend, its MAC resolved. If not, the caller cuts it and sends the
	// segments, which may wait for ARP.
	SendsWhole(peer uint32) bool
	// SendGSO is Send where gso[i] describes bufs[i][offset:]; a
	// super-frame counts as its segments, in the result and in Stats.
	SendGSO(bufs [][]byte, gso []link.GSO, peers []uint32, offset int) (int, error)
	// RecvGSO is Recv that hands out a super-frame whole: gso[i] describes
	// slot i, and for a super-frame the inner packet is
	// SuperFrame()[starts[i]:starts[i]+sizes[i]], valid until the next
	// call; at most one per call, the last. gso must be at least len(bufs)
	// long.
	RecvGSO(bufs [][]byte, sizes, starts []int, peers []uint32, gso []link.GSO, offset int) (int, error)
	// SuperFrame is the buffer of the super-frame RecvGSO handed out.
	SuperFrame() []byte
}

// Overhead returns the overhead of the named backend (see Tunnel.Overhead)
// without building one, for config validation.
func Overhead(name string) (int, error) {
	switch name {
	case NameVXLAN:
		return OverheadVXLAN, nil
	case NameUDP:
		return OverheadUDP, nil
	case NameDirect:
		return OverheadDirect, nil
	}
	return 0, fmt.Errorf("tunnel: unknown backend %q: want %q, %q or %q", name, NameVXLAN, NameUDP, NameDirect)
}

// VTEPMAC is the VTEP MAC a taprouter node derives from its underlay address:
// 0a:58 followed by the four address bytes. Use it for VXLANConfig.LocalMAC
// so that taprouter peers need no MAC in their configuration.
func VTEPMAC(underlay netip.Addr) link.HardwareAddr {
	return link.DerivedMAC(0x0a, 0x58, underlay)
}

var errShortHeadroom = errors.New("tunnel: Send offset is smaller than Headroom()")
