package peers

import (
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/router"
	"github.com/taprouter/taprouter/tunnel"
)

// The reconciler on the real router: after each Apply the FIB's peer
// routes are exactly the applied pod ranges, each to its peer's ID, and a
// node keeps its ID across changes.
func TestApplyRealRouter(t *testing.T) {
	u, err := tunnel.NewUDP(linktest.NewConn(netip.AddrPortFrom(local.Addr, tunnel.DefaultUDPPort), 8), tunnel.UDPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{PodCIDR: local.PodCIDRs[0], Gateway: a4("10.244.0.1"), GatewayMAC: link.HardwareAddr{0x0e, 0x58, 1, 2, 3, 4}, NodeAddr: local.Addr, Tunnel: u, TunnelMTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	r := NewReconciler(local, rt, nil, nil)
	check := func() {
		t.Helper()
		want := map[netip.Prefix]uint32{}
		for _, p := range r.Peers() {
			for _, c := range p.PodCIDRs {
				want[c] = p.ID
			}
		}
		got := map[netip.Prefix]uint32{}
		rt.FIB().Walk(func(x fib.Route) bool {
			if x.NextHop.Kind == fib.Peer {
				got[x.Prefix] = x.NextHop.Peer
			}
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("FIB peer routes %v, want %v", got, want)
		}
		for c, id := range want {
			if got[c] != id {
				t.Fatalf("FIB peer routes %v, want %v", got, want)
			}
		}
	}
	if _, err := r.Apply([]Peer{peer2, peer3}); err != nil {
		t.Fatal(err)
	}
	check()
	id3 := r.Peers()[1].ID
	moved := peer3
	moved.Addr = a4("192.168.49.40")
	moved.PodCIDRs = []netip.Prefix{p4("10.244.7.0/24")}
	if _, err := r.Apply([]Peer{moved}); err != nil {
		t.Fatal(err)
	}
	check()
	if ps := r.Peers(); len(ps) != 1 || ps[0].ID != id3 || ps[0].Addr != moved.Addr {
		t.Fatalf("after the change: %+v, want node3 alone with ID %#x", ps, id3)
	}
	if _, err := r.Apply(nil); err != nil {
		t.Fatal(err)
	}
	check()
	if len(rt.Peers()) != 0 {
		t.Fatalf("router still has %v", rt.Peers())
	}
}
