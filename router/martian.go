package router

import "net/netip"

// peerCheck is what the tunnel ingress checks about one peer node: the
// inner source of its packets is in its pod range or is its own address.
type peerCheck struct {
	podCIDR netip.Prefix
	addr    netip.Addr
}

// peerHistory is how many generations of peer checks a snapshot keeps.
const peerHistory = 8

// peerChecks is one generation of the peer checks, with the ones before it.
//
// The tunnel names a packet's peer by its index in the tunnel's own peer
// snapshot, which SetPeers replaces separately: a packet decapsulated under
// the old peer list and checked against the new one would be checked
// against whichever peer now has its index (a forged datagram from node2
// with a source in node3's range passes once the list is reordered). So the
// tunnel worker loads the checks before each Recv (c1) and after it (c2):
// the tunnel used a generation from c1's (or the one before, if c1 was
// pending) to c2's, and checkTunnel decides among them. Without a SetPeers
// during the Recv that is exactly one generation. If more than peerHistory
// SetPeers came during one Recv, its packets are dropped as
// drop_tunnel_spoofed: who sent them cannot be told.
type peerChecks struct {
	gen uint64
	// pending: the tunnel may still hold generation gen-1's peers.
	pending bool
	// hist[j] are the checks of generation gen-j.
	hist [peerHistory][]peerCheck
}

// candidates returns the generations (as c2.hist[:n]) the tunnel may have
// used for a Recv between loading c1 and c2, or ok false if some of them are
// older than c2 keeps.
func candidates(c1, c2 *peerChecks) (n int, ok bool) {
	if c1 == c2 && !c1.pending {
		return 1, true
	}
	lo := c1.gen
	if c1.pending && lo > 0 {
		lo--
	}
	n = int(c2.gen-lo) + 1
	return n, n <= peerHistory
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
// own address, a destination outside this node's pod range and gateway.
//
// gens are the peer-check generations the tunnel may have named the peer
// by, newest first (see peerChecks). One without the packet's index cannot
// have been used. If all that have it name the same peer node (the same
// underlay address), the newest one's checks apply: its pod range is the
// current one. If they name different nodes, the sender is ambiguous and the
// source must pass the checks of each.
func (r *Router) checkTunnel(pk *Packet, gens [][]peerCheck) DropReason {
	h := pk.buf[pk.start:pk.end]
	src, dst := [4]byte(h[12:16]), [4]byte(h[16:20])
	if isMartian(src) || r.isMartianDst(dst) {
		return DropMartian
	}
	s := netip.AddrFrom4(src)
	var newest *peerCheck
	ambiguous := false
	for _, peers := range gens {
		if int(pk.Peer) >= len(peers) {
			continue
		}
		pc := &peers[pk.Peer]
		if newest == nil {
			newest = pc
		} else if pc.addr != newest.addr {
			ambiguous = true
		}
	}
	if newest == nil || !newest.accepts(s) {
		return DropTunnelSpoofed
	}
	for _, peers := range gens {
		if ambiguous && int(pk.Peer) < len(peers) && !peers[pk.Peer].accepts(s) {
			return DropTunnelSpoofed
		}
	}
	if d := netip.AddrFrom4(dst); !r.cfg.PodCIDR.Contains(d) && d != r.cfg.Gateway {
		return DropTunnelDst
	}
	return DropNone
}

// accepts reports whether the peer may send from src.
func (pc *peerCheck) accepts(src netip.Addr) bool {
	return pc.podCIDR.Contains(src) || src == pc.addr
}
