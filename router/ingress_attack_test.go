package router

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/tunnel"
)

// TestAttackTunnelCheckPeerIndexRace: the tunnel's Recv names each
// packet's peer by its index in the tunnel's peer snapshot; the router
// checks the inner source against its own copy of the peer list, indexed
// the same way but replaced separately by SetPeers. A packet Recv
// decapsulated under the old list and checked under the new one is checked
// against whichever peer now has its index. SetPeers' comment says such a
// packet "is at worst dropped"; when the new list reorders the peers it is
// accepted: a datagram forged as node2 (anyone on the underlay can) with an
// inner source in node3's pod range passes as node3's. The test plays that
// interleaving: Recv under [node2, node3], SetPeers([node3, node2]), then
// the router's check.
func TestAttackTunnelCheckPeerIndexRace(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	// What the tunnel's Recv hands over for a datagram from node2 (index
	// 0 in the snapshot it used) whose inner source is a pod of node3.
	forged := ipv4(a4("10.244.2.7"), pa.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	n.tw.sizes[0] = copy(n.tw.bufs[0][headroom:], forged)
	n.tw.starts[0], n.tw.peers[0] = headroom, 0
	// A peer update lands before the router checks it.
	if err := n.r.SetPeers([]tunnel.Peer{{Node: "node3", Addr: node3, PodCIDR: podCIDR2}, {Node: "node2", Addr: node2, PodCIDR: podCIDR1}}); err != nil {
		t.Fatal(err)
	}
	before := n.r.Stats()
	n.tw.receiveTunnel(1)
	if got := len(pa.dev.take()); got != 0 {
		t.Errorf("a packet from node2's address with a source in node3's pod range was delivered to %s", pa.ip)
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 1})
}

// The peer checks of every generation the tunnel may have used for a Recv
// decide together (peerChecks): a peer appended meanwhile is believed at
// once, a peer whose range changed is checked against its new range, and a
// Recv that spans more updates than are kept is not believed at all.
func TestTunnelCheckAcrossPeerUpdates(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	ping := func(src string) []byte {
		return ipv4(a4(src), pa.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	}
	node4 := a4("192.168.49.5")
	set := func(peers ...tunnel.Peer) {
		t.Helper()
		if err := n.r.SetPeers(peers); err != nil {
			t.Fatal(err)
		}
	}
	p2 := tunnel.Peer{Node: "node2", Addr: node2, PodCIDR: podCIDR1}
	p3 := tunnel.Peer{Node: "node3", Addr: node3, PodCIDR: podCIDR2}

	// node4 appended at index 2 while a Recv was under way: no older
	// generation has index 2, so node4's packet is its own.
	set(p2, p3, tunnel.Peer{Node: "node4", Addr: node4, PodCIDR: a4p("10.244.3.0/24")})
	before := n.r.Stats()
	n.fromPeer(2, ping("10.244.3.5"))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1})

	// node2 (still index 0) moves to 10.244.9.0/24: its new range counts.
	set(tunnel.Peer{Node: "node2", Addr: node2, PodCIDR: a4p("10.244.9.0/24")}, p3)
	before = n.r.Stats()
	n.fromPeer(0, ping("10.244.9.5"))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1})

	// More updates during one Recv than the checks remember.
	for range peerHistory {
		set(p2, p3)
	}
	before = n.r.Stats()
	n.fromPeer(0, ping("10.244.1.5"), ping("10.244.1.6"))
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 2})
	before = n.r.Stats()
	n.fromPeer(0, ping("10.244.1.5")) // the next Recv knows its generation
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1})
	if got := len(pa.dev.take()); got != 3 {
		t.Fatalf("pod got %d packets, want 3", got)
	}
}

var a4p = netip.MustParsePrefix

// candidates: how many generations the tunnel may have used for one Recv.
func TestPeerCheckCandidates(t *testing.T) {
	g := func(gen uint64, pending bool) *peerChecks { return &peerChecks{gen: gen, pending: pending} }
	final1 := g(1, false)
	pending1 := g(1, true)
	for _, tc := range []struct {
		name   string
		c1, c2 *peerChecks
		n      int
		ok     bool
	}{
		{"no update", final1, final1, 1, true},
		{"pending throughout", pending1, pending1, 2, true}, // the tunnel had 0's or 1's
		{"pending, then final", pending1, g(1, false), 2, true},
		{"one update", final1, g(2, false), 2, true},
		{"two updates, from pending", g(2, true), g(3, true), 3, true},
		{"as many as kept", final1, g(peerHistory, false), peerHistory, true},
		{"more than kept", final1, g(peerHistory+1, false), peerHistory + 1, false},
	} {
		if n, ok := candidates(tc.c1, tc.c2); n != tc.n || ok != tc.ok {
			t.Errorf("%s: candidates = %d, %v; want %d, %v", tc.name, n, ok, tc.n, tc.ok)
		}
	}
}
