package router

import "net/netip"

// peerCheck is what the tunnel ingress checks about one peer node: the
// inner source of its packets is in its pod range or is its own address.
type peerCheck struct {
	podCIDR netip.Prefix
	addr    netip.Addr
}

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
// addresses, a source outside the peer's pod range that is not the peer's
// own address, a destination outside this node's pod range and gateway. It
// reads the peer snapshot without a lock.
func (r *Router) checkTunnel(pk *Packet) DropReason {
	h := pk.buf[pk.start:pk.end]
	src, dst := [4]byte(h[12:16]), [4]byte(h[16:20])
	if isMartian(src) || r.isMartianDst(dst) {
		return DropMartian
	}
	peers := *r.peers.Load()
	if int(pk.Peer) >= len(peers) {
		return DropTunnelSpoofed
	}
	pc := &peers[pk.Peer]
	if s := netip.AddrFrom4(src); !pc.podCIDR.Contains(s) && s != pc.addr {
		return DropTunnelSpoofed
	}
	if d := netip.AddrFrom4(dst); !r.cfg.PodCIDR.Contains(d) && d != r.cfg.Gateway {
		return DropTunnelDst
	}
	return DropNone
}
