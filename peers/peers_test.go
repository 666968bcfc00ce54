package peers

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// fakeRouter keeps a peer set by node name as router.Router does: a new
// node gets a new ID, a known one keeps its own.
type fakeRouter struct {
	peers  map[string]tunnel.Peer
	nextID uint32
	calls  int
	fail   error
	log    *[]string // shared with fakeRoutes: the order of operations
}

func (f *fakeRouter) SetPeers(ps []tunnel.Peer) error {
	f.calls++
	if f.fail != nil {
		return f.fail
	}
	next := map[string]tunnel.Peer{}
	for _, p := range ps {
		if old, ok := f.peers[p.Node]; ok {
			p.ID = old.ID
		} else {
			f.nextID++
			p.ID = f.nextID
		}
		next[p.Node] = p
	}
	f.peers = next
	*f.log = append(*f.log, "router")
	return nil
}

func (f *fakeRouter) Peers() []tunnel.Peer {
	var out []tunnel.Peer
	for _, p := range f.peers {
		out = append(out, p)
	}
	return out
}

type fakeRoutes struct {
	routes map[netip.Prefix]bool
	fail   map[netip.Prefix]bool
	log    *[]string
}

func (f *fakeRoutes) AddRoute(p netip.Prefix) error {
	if f.fail[p] {
		return errors.New("refused")
	}
	f.routes[p] = true
	*f.log = append(*f.log, "add "+p.String())
	return nil
}

func (f *fakeRoutes) DelRoute(p netip.Prefix) error {
	delete(f.routes, p)
	*f.log = append(*f.log, "del "+p.String())
	return nil
}

var (
	a4    = netip.MustParseAddr
	p4    = netip.MustParsePrefix
	local = Local{Node: "node1", Addr: a4("192.168.49.2"), PodCIDRs: []netip.Prefix{p4("10.244.0.0/24")}, Backend: "vxlan"}
	peer2 = Peer{Node: "node2", Addr: a4("192.168.49.3"), PodCIDRs: []netip.Prefix{p4("10.244.1.0/24")}}
	peer3 = Peer{Node: "node3", Addr: a4("192.168.49.4"), PodCIDRs: []netip.Prefix{p4("10.244.2.0/24"), p4("10.245.2.0/24")}}
)

func newTestReconciler(t *testing.T) (*Reconciler, *fakeRouter, *fakeRoutes, *[]string, *observer.ObservedLogs) {
	var ops []string
	fr := &fakeRouter{peers: map[string]tunnel.Peer{}, log: &ops}
	nr := &fakeRoutes{routes: map[netip.Prefix]bool{}, fail: map[netip.Prefix]bool{}, log: &ops}
	core, logs := observer.New(zap.InfoLevel)
	return NewReconciler(local, fr, nr, zap.New(core)), fr, nr, &ops, logs
}

func TestValidateRules(t *testing.T) {
	with := func(f func(p *Peer)) Peer {
		p := peer2
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name string
		p    Peer
		want string // in the error; "" for valid
	}{
		{"valid", peer2, ""},
		{"valid, own backend and VTEP MAC", with(func(p *Peer) { p.Backend = "vxlan"; p.VTEPMAC = link.HardwareAddr{2, 1, 2, 3, 4, 5} }), ""},
		{"4-in-6 address", with(func(p *Peer) { p.Addr = netip.AddrFrom16(a4("192.168.49.3").As16()) }), ""},
		{"no name", with(func(p *Peer) { p.Node = "" }), "no node name"},
		{"our name", with(func(p *Peer) { p.Node = "node1" }), "is this node"},
		{"no address", with(func(p *Peer) { p.Addr = netip.Addr{} }), "not a unicast IPv4"},
		{"IPv6 address", with(func(p *Peer) { p.Addr = a4("fd00::1") }), "not a unicast IPv4"},
		{"multicast address", with(func(p *Peer) { p.Addr = a4("224.0.0.1") }), "not a unicast IPv4"},
		{"broadcast address", with(func(p *Peer) { p.Addr = a4("255.255.255.255") }), "not a unicast IPv4"},
		{"loopback address", with(func(p *Peer) { p.Addr = a4("127.0.0.1") }), "not a unicast IPv4"},
		{"our address", with(func(p *Peer) { p.Addr = local.Addr }), "is this node's"},
		{"no pod range", with(func(p *Peer) { p.PodCIDRs = nil }), "no pod range"},
		{"IPv6 pod range", with(func(p *Peer) { p.PodCIDRs = []netip.Prefix{p4("fd00::/64")} }), "not IPv4"},
		{"unmasked pod range", with(func(p *Peer) { p.PodCIDRs = []netip.Prefix{p4("10.244.1.5/24")} }), "not masked"},
		{"overlapping own ranges", with(func(p *Peer) { p.PodCIDRs = append(p.PodCIDRs, p4("10.244.1.128/25")) }), "overlaps its"},
		{"overlaps ours", with(func(p *Peer) { p.PodCIDRs = []netip.Prefix{p4("10.244.0.0/16")} }), "overlaps this node's"},
		{"other backend", with(func(p *Peer) { p.Backend = "direct" }), "backend"},
		{"multicast VTEP MAC", with(func(p *Peer) { p.VTEPMAC = link.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }), "not unicast"},
	} {
		valid, errs := Validate(local, []Peer{tc.p})
		switch {
		case tc.want == "" && (len(errs) != 0 || len(valid) != 1):
			t.Errorf("%s: refused: %v", tc.name, errs)
		case tc.want != "" && (len(errs) != 1 || len(valid) != 0 || !strings.Contains(errs[0].Error(), tc.want)):
			t.Errorf("%s: valid %v errs %v; want one error with %q", tc.name, valid, errs, tc.want)
		}
	}
	// Conflicts between peers: the earlier one wins.
	dupName, dupAddr, overlap := peer3, peer3, peer3
	dupName.Node = "node2"
	dupAddr.Addr = peer2.Addr
	overlap.PodCIDRs = []netip.Prefix{p4("10.244.1.0/25")}
	for _, q := range []Peer{dupName, dupAddr, overlap} {
		valid, errs := Validate(local, []Peer{peer2, q})
		if len(valid) != 1 || valid[0].Node != "node2" || len(errs) != 1 || errs[0].Index != 1 {
			t.Errorf("peer2 then %+v: valid %v errs %v; want peer2 valid, index 1 refused", q, valid, errs)
		}
	}
}

func TestApplyAddChangeRemove(t *testing.T) {
	r, fr, nr, ops, logs := newTestReconciler(t)
	res, err := r.Apply([]Peer{peer3, peer2})
	if err != nil || !slices.Equal(res.Added, []string{"node2", "node3"}) || len(res.Changed)+len(res.Removed)+len(res.Invalid) != 0 {
		t.Fatalf("first Apply: %+v, %v", res, err)
	}
	if len(nr.routes) != 3 || (*ops)[0] != "router" {
		t.Fatalf("node routes %v, ops %v: want 3 routes added after the router", nr.routes, *ops)
	}
	got := r.Peers()
	if len(got) != 2 || got[0].Node != "node2" || got[1].Node != "node3" || got[0].ID == 0 || got[0].ID == got[1].ID {
		t.Fatalf("Peers = %+v", got)
	}
	id3 := got[1].ID

	// Idempotent: nothing reaches the router or the routes.
	*ops = nil
	if res, err := r.Apply([]Peer{peer2, peer3}); err != nil || len(res.Added)+len(res.Changed)+len(res.Removed) != 0 || len(*ops) != 0 || fr.calls != 1 {
		t.Fatalf("same set again: %+v, %v, ops %v, router calls %d", res, err, *ops, fr.calls)
	}

	// node3 changes address and loses a range: its ID stays; the node route
	// goes before the router changes.
	moved := peer3
	moved.Addr = a4("192.168.49.9")
	moved.PodCIDRs = []netip.Prefix{p4("10.244.2.0/24")}
	*ops = nil
	res, err = r.Apply([]Peer{peer2, moved})
	if err != nil || !slices.Equal(res.Changed, []string{"node3"}) {
		t.Fatalf("change: %+v, %v", res, err)
	}
	if !slices.Equal(*ops, []string{"del 10.245.2.0/24", "router"}) {
		t.Errorf("ops %v, want the node route deleted, then the router", *ops)
	}
	if p := r.Peers()[1]; p.ID != id3 || p.Addr != moved.Addr {
		t.Errorf("node3 after the change: %+v, want ID %#x and the new address", p, id3)
	}

	// node2 removed.
	res, err = r.Apply([]Peer{moved})
	if err != nil || !slices.Equal(res.Removed, []string{"node2"}) || nr.routes[p4("10.244.1.0/24")] || len(fr.peers) != 1 {
		t.Fatalf("remove: %+v, %v, routes %v, router %v", res, err, nr.routes, fr.peers)
	}
	for _, msg := range []string{"peer added", "peer changed", "peer removed"} {
		if n := logs.FilterMessage(msg).Len(); n == 0 {
			t.Errorf("no %q log", msg)
		}
	}
	if e := logs.FilterMessage("peer removed").All()[0]; e.ContextMap()["node"] != "node2" || e.ContextMap()["addr"] != "192.168.49.3" {
		t.Errorf("peer removed log: %v", e.ContextMap())
	}
}

// A bad update of an applied peer keeps its last good entry; a new invalid
// peer is not applied; both are reported.
func TestApplyKeepsLastGood(t *testing.T) {
	r, fr, _, _, _ := newTestReconciler(t)
	if _, err := r.Apply([]Peer{peer2, peer3}); err != nil {
		t.Fatal(err)
	}
	bad := peer3
	bad.PodCIDRs = nil
	junk := Peer{Node: "node4", Addr: a4("224.0.0.1"), PodCIDRs: []netip.Prefix{p4("10.244.4.0/24")}}
	res, err := r.Apply([]Peer{peer2, bad, junk})
	if err != nil || len(res.Invalid) != 2 || !slices.Equal(res.Kept, []string{"node3"}) || len(res.Removed)+len(res.Added)+len(res.Changed) != 0 {
		t.Fatalf("Apply = %+v, %v", res, err)
	}
	if p, ok := fr.peers["node3"]; !ok || len(p.PodCIDRs) != 2 {
		t.Fatalf("node3 in the router: %+v, %v; want its last good entry", p, ok)
	}
	if _, ok := fr.peers["node4"]; ok {
		t.Fatal("invalid node4 applied")
	}
	// The kept entry yields to a valid peer that now owns its range.
	taker := Peer{Node: "node5", Addr: a4("192.168.49.7"), PodCIDRs: []netip.Prefix{p4("10.244.2.0/24")}}
	res, err = r.Apply([]Peer{peer2, bad, taker})
	if err != nil || !slices.Equal(res.Removed, []string{"node3"}) || !slices.Equal(res.Added, []string{"node5"}) || len(res.Kept) != 0 {
		t.Fatalf("Apply with a taker = %+v, %v", res, err)
	}
}

// A router that refuses changes nothing the reconciler reports as applied.
func TestApplyRouterError(t *testing.T) {
	r, fr, nr, _, _ := newTestReconciler(t)
	fr.fail = errors.New("no")
	if _, err := r.Apply([]Peer{peer2}); err == nil {
		t.Fatal("no error from a failing router")
	}
	if len(r.Peers()) != 0 || len(nr.routes) != 0 {
		t.Fatalf("after a failed Apply: peers %v routes %v", r.Peers(), nr.routes)
	}
	fr.fail = nil
	if res, err := r.Apply([]Peer{peer2}); err != nil || !slices.Equal(res.Added, []string{"node2"}) || len(nr.routes) != 1 {
		t.Fatalf("retry: %+v, %v, routes %v", res, err, nr.routes)
	}
}

// A node route that fails is reported and retried by the next Apply.
func TestApplyRouteRetried(t *testing.T) {
	r, _, nr, _, _ := newTestReconciler(t)
	nr.fail[p4("10.244.1.0/24")] = true
	if _, err := r.Apply([]Peer{peer2}); err == nil {
		t.Fatal("no error from a failing node route")
	}
	delete(nr.fail, p4("10.244.1.0/24"))
	if _, err := r.Apply([]Peer{peer2}); err != nil || !nr.routes[p4("10.244.1.0/24")] {
		t.Fatalf("retry: %v, routes %v", err, nr.routes)
	}
}
