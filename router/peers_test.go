package router

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/tunnel"
)

// peerRoutes returns the FIB's peer routes as prefix → peer ID.
func peerRoutes(r *Router) map[netip.Prefix]uint32 {
	out := map[netip.Prefix]uint32{}
	r.FIB().Walk(func(rt fib.Route) bool {
		if rt.NextHop.Kind == fib.Peer {
			out[rt.Prefix] = rt.NextHop.Peer
		}
		return true
	})
	return out
}

// UpsertPeer and RemovePeer: an address change keeps the ID and sends to
// the new address; several pod ranges each get a route; a removed peer's
// routes go; a re-added node gets a new ID in the same slot's next
// generation; invalid peers change nothing.
func TestUpsertRemovePeer(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	r := n.r
	id2 := n.peerID(0)
	moved := tunnel.Peer{Node: "node2", Addr: a4("192.168.49.20"), PodCIDRs: []netip.Prefix{podCIDR1, a4p("10.245.1.0/24")}}
	id, err := r.UpsertPeer(moved)
	if err != nil || id != id2 {
		t.Fatalf("UpsertPeer(node2 moved) = %#x, %v; want its ID %#x", id, err, id2)
	}
	if got := peerRoutes(r); got[podCIDR1] != id2 || got[a4p("10.245.1.0/24")] != id2 || len(got) != 3 {
		t.Fatalf("peer routes %v", got)
	}
	pa := n.pods[0]
	n.fromPod(0, ipv4(pa.ip, a4("10.245.1.7"), 64, 17, false, udpPayload(1, 2, 8)))
	if out := n.conn.take(); len(out) != 1 || out[0].Addr.Addr() != moved.Addr {
		t.Fatalf("sent %v, want one datagram to node2's new address %s", out, moved.Addr)
	}
	id3 := n.peerID(1)
	if err := r.RemovePeer("node3"); err != nil {
		t.Fatal(err)
	}
	if got := peerRoutes(r); len(got) != 2 {
		t.Fatalf("peer routes after removing node3: %v", got)
	}
	if err := r.RemovePeer("node3"); err == nil {
		t.Fatal("RemovePeer of an unknown node succeeded")
	}
	id, err = r.UpsertPeer(tunnel.Peer{Node: "node3", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR2}})
	if err != nil || id == id3 || tunnel.PeerSlot(id) != tunnel.PeerSlot(id3) {
		t.Fatalf("node3 re-added as %#x, %v; was %#x: want its slot with a new generation", id, err, id3)
	}
	before := r.Peers()
	for _, bad := range [][]tunnel.Peer{
		{{Node: "", Addr: node2}},
		{{Node: "x", Addr: a4("fd00::1")}},
		{{Node: "x", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR0}}},
		{{Node: "x", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}, {Node: "y", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR1}}},
		{{Node: "x", Addr: node2}, {Node: "x", Addr: node3}},
	} {
		if err := r.SetPeers(bad); err == nil {
			t.Errorf("SetPeers(%+v) succeeded", bad)
		}
	}
	if after := r.Peers(); !slices.EqualFunc(before, after, func(a, b tunnel.Peer) bool { return a.ID == b.ID && a.Addr == b.Addr }) {
		t.Fatalf("refused SetPeers changed the peers: %+v → %+v", before, after)
	}
}

// Concurrent UpsertPeer calls (each reads the set, changes one peer and
// sets it again) must not lose one another's peer: every node upserted is
// there at the end, with routes. (found by attack review)
func TestUpsertPeerConcurrent(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	r := n.r
	const k = 40
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := tunnel.Peer{Node: fmt.Sprintf("c%02d", i), Addr: netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)}), PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 246, byte(i), 0}), 24)}}
			if _, err := r.UpsertPeer(p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := len(r.Peers()); got != 2+k {
		t.Fatalf("%d peers after %d concurrent upserts onto node2 and node3, want %d", got, k, 2+k)
	}
	if got := len(peerRoutes(r)); got != 2+k {
		t.Fatalf("%d peer routes, want %d", got, 2+k)
	}
}
