package router

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/tunnel"
)

// TestAttackTunnelCheckPeerReorder: the tunnel names each packet's peer by
// its ID, which a peer keeps however the list given to SetPeers is ordered.
// A datagram forged as node2 (anyone on the underlay can) with an inner
// source in node3's pod range, decapsulated just before a SetPeers that
// reorders the peers, is still node2's, and the strict reverse-path check
// refuses it: the route to its source leads to node3.
func TestAttackTunnelCheckPeerReorder(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	forged := ipv4(a4("10.244.2.7"), pa.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	n.tw.sizes[0] = copy(n.tw.bufs[0][headroom:], forged)
	n.tw.starts[0], n.tw.peers[0] = headroom, n.peerID(0) // node2
	if err := n.r.SetPeers([]tunnel.Peer{{Node: "node3", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR2}}, {Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}}); err != nil {
		t.Fatal(err)
	}
	before := n.r.Stats()
	n.tw.receiveTunnel(1)
	if got := len(pa.dev.take()); got != 0 {
		t.Errorf("a packet from node2 with a source in node3's pod range was delivered to %s", pa.ip)
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 1})
}

// The tunnel ingress across peer changes: a new peer's packets pass at once,
// a peer whose range changed is checked against its new range only, a
// removed peer's ID is believed for nothing, and a peer with several pod
// ranges may send from each.
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
	p2 := tunnel.Peer{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}
	p3 := tunnel.Peer{Node: "node3", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR2}}
	id2, id3 := n.peerID(0), n.peerID(1)

	set(p2, p3, tunnel.Peer{Node: "node4", Addr: node4, PodCIDRs: []netip.Prefix{a4p("10.244.3.0/24"), a4p("10.244.4.0/25")}})
	before := n.r.Stats()
	n.fromPeer(2, ping("10.244.3.5"), ping("10.244.4.5"), ping("192.168.49.5"))
	n.fromPeer(2, ping("10.244.4.200")) // outside its /25
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 3, "drop_tunnel_spoofed": 1})

	// node2 moves to 10.244.9.0/24, keeping its ID.
	set(tunnel.Peer{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{a4p("10.244.9.0/24")}}, p3)
	if got := n.peerID(0); got != id2 {
		t.Fatalf("node2's ID changed from %#x to %#x with its pod range", id2, got)
	}
	before = n.r.Stats()
	n.fromPeer(0, ping("10.244.9.5"), ping("10.244.1.5"))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1, "drop_tunnel_spoofed": 1})

	// node3 removed: a packet the tunnel decapsulated under its ID before
	// is refused, even from its old range and its node address.
	set(p2)
	before = n.r.Stats()
	for _, src := range []string{"10.244.2.5", "192.168.49.4"} {
		n.tw.sizes[0] = copy(n.tw.bufs[0][headroom:], ping(src))
		n.tw.starts[0], n.tw.peers[0] = headroom, id3
		n.tw.receiveTunnel(1)
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 2})
	// node3 back: a new ID, its slot's next generation; the old one stays dead.
	set(p2, p3)
	if id := n.peerID(1); id == id3 {
		t.Fatalf("node3 re-added with ID %#x, its old one was %#x", id, id3)
	}
	before = n.r.Stats()
	n.tw.sizes[0] = copy(n.tw.bufs[0][headroom:], ping("10.244.2.5"))
	n.tw.starts[0], n.tw.peers[0] = headroom, id3
	n.tw.receiveTunnel(1)
	n.fromPeer(1, ping("10.244.2.5"))
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 1, "forwarded": 1})
	if got := len(pa.dev.take()); got != 5 {
		t.Fatalf("pod got %d packets, want 5", got)
	}
}

var a4p = netip.MustParsePrefix

// TestPeerChurnNeverMisdirects: a pod streams to node2's and node3's pods
// while, concurrently, node3 is removed and node4 (another range, another
// address) added in the same change, and back, over and over. With peers
// named by list position node4 would inherit node3's index and get node3's
// packets for a moment; with stable IDs every datagram goes to the node
// that owns its inner destination, and node3's packets in flight while it
// is gone are dropped (or, with its route gone, go to the host port).
func TestPeerChurnNeverMisdirects(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	owner := map[netip.Addr]netip.Prefix{node2: podCIDR1, node3: podCIDR2, a4("192.168.49.5"): a4p("10.244.3.0/24")}
	p2 := tunnel.Peer{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}
	p3 := tunnel.Peer{Node: "node3", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR2}}
	p4 := tunnel.Peer{Node: "node4", Addr: a4("192.168.49.5"), PodCIDRs: []netip.Prefix{a4p("10.244.3.0/24")}}
	pa := n.pods[0]
	batch := make([][]byte, 0, 32)
	for i := range 32 {
		dst := []string{"10.244.1.5", "10.244.2.5", "10.244.3.5"}[i%3]
		batch = append(batch, ipv4(pa.ip, a4(dst), 64, header.UDPProtocolNumber, false, udpPayload(1, uint16(i), 8)))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			var err error
			if i%2 == 0 {
				err = n.r.SetPeers([]tunnel.Peer{p2, p4})
			} else {
				err = n.r.SetPeers([]tunnel.Peer{p2, p3})
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	sent := map[netip.Addr]int{}
	misdirected := 0
	for range 3000 {
		n.fromPod(0, batch...)
		for _, d := range n.conn.take() {
			dst := netip.AddrFrom4([4]byte(d.Data[16:20]))
			sent[d.Addr.Addr()]++
			if !owner[d.Addr.Addr()].Contains(dst) {
				misdirected++
			}
		}
		n.host.take()
	}
	stop.Store(true)
	wg.Wait()
	if misdirected != 0 {
		t.Fatalf("%d datagrams went to a node that does not own their destination (sent per node: %v)", misdirected, sent)
	}
	if sent[node2] == 0 || sent[node3] == 0 || sent[a4("192.168.49.5")] == 0 {
		t.Fatalf("the churn was not exercised: sent per node %v", sent)
	}
	t.Logf("sent per node %v, drop_unknown_peer %d", sent, n.r.Stats()["tunnel_drop_unknown_peer"])
}
