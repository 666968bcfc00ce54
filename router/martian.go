package router

import (
	"encoding/binary"
	"net/netip"

	"github.com/taprouter/taprouter/fib"
)

// isMartian reports an address that is never a unicast host a router
// forwards to or from: 0.0.0.0/8 ("this network"), 127/8 (loopback),
// 224/4 (multicast) and 240/4 (class E and the limited broadcast).
func isMartian(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 224
}

// isMartianDst adds the pod subnet's directed broadcast to isMartian: the
// router delivers it to no pod, and Linux forwards no directed broadcast
// by default.
func (r *Router) isMartianDst(a [4]byte) bool {
	return isMartian(a) || (r.bcast.IsValid() && netip.AddrFrom4(a) == r.bcast)
}

// checkTunnel drops what a peer node has no business sending: martian inner
// addresses, a destination outside this node's pod range and gateway, and
// a source that fails the strict reverse-path check (the kernel's
// rp_filter=1): the FIB's route for the source must lead back to the very
// peer the packet came from (Packet.Peer, its ID), or the source must be
// that peer's own underlay address. IDs are never reused for another peer,
// so a packet decapsulated just before a peer change is judged by the peer
// that sent it or by none.
func (w *worker) checkTunnel(pk *Packet) DropReason {
	r := w.r
	h := pk.buf[pk.start:pk.end]
	src, dst := [4]byte(h[12:16]), [4]byte(h[16:20])
	if isMartian(src) || r.isMartianDst(dst) {
		return DropMartian
	}
	if nh, ok := w.routes.lookup(r.fib, binary.BigEndian.Uint32(src[:])); !(ok && nh.Kind == fib.Peer && nh.Peer == pk.Peer) && !r.isPeerAddr(pk.Peer, netip.AddrFrom4(src)) {
		return DropTunnelSpoofed
	}
	if d := netip.AddrFrom4(dst); !r.cfg.PodCIDR.Contains(d) && d != r.cfg.Gateway {
		return DropTunnelDst
	}
	return DropNone
}
