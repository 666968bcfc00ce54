package peers

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/router"
	"github.com/taprouter/taprouter/tunnel"
)

// manyPeers returns n peers with distinct names, addresses in
// 192.168.0.0/16 from .1.1 on (skipping local.Addr) and pod ranges
// 10.X.Y.0/24 from 10.245.0.0 on (none overlapping local's 10.244.0.0/24).
func manyPeers(n int) []Peer {
	ps := make([]Peer, n)
	for i := range ps {
		j := i + 256 // 192.168.1.0 on
		ps[i] = Peer{
			Node:     fmt.Sprintf("node-%05d", i),
			Addr:     netip.AddrFrom4([4]byte{192, 168, byte(j >> 8), byte(j)}),
			PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(245 + i>>8), byte(i), 0}), 24)},
		}
		if i%256 == 0 || i%256 == 255 {
			ps[i].Addr = netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i%256/2 + 1)})
		}
	}
	return ps
}

func BenchmarkValidate5000(b *testing.B) {
	ps := manyPeers(5000)
	b.ReportAllocs()
	for b.Loop() {
		if v, errs := Validate(local, ps); len(v) != 5000 || len(errs) != 0 {
			b.Fatalf("%d valid, errors %v", len(v), errs[:min(3, len(errs))])
		}
	}
}

func newBenchRouter(tb testing.TB) *router.Router {
	u, err := tunnel.NewUDP(linktest.NewConn(netip.AddrPortFrom(local.Addr, tunnel.DefaultUDPPort), 8), tunnel.UDPConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := router.New(router.Config{PodCIDR: local.PodCIDRs[0], Gateway: a4("10.244.0.1"), GatewayMAC: link.HardwareAddr{0x0e, 0x58, 1, 2, 3, 4}, NodeAddr: local.Addr, Tunnel: u, TunnelMTU: 1450})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rt.Close() })
	return rt
}

// Apply of 5,000 peers from nothing, on the real router.
func BenchmarkApply5000Initial(b *testing.B) {
	ps := manyPeers(5000)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		r := NewReconciler(local, newBenchRouter(b), nil, nil)
		b.StartTimer()
		if res, err := r.Apply(ps); err != nil || len(res.Added) != 5000 {
			b.Fatalf("%d added, %v", len(res.Added), err)
		}
	}
}

// One peer of 5,000 changes its address: the latency of one Node change
// at that size.
func BenchmarkApply5000OneChange(b *testing.B) {
	ps := manyPeers(5000)
	r := NewReconciler(local, newBenchRouter(b), nil, nil)
	if _, err := r.Apply(ps); err != nil {
		b.Fatal(err)
	}
	orig := ps[2500].Addr
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if i%2 == 1 {
			ps[2500].Addr = a4("172.31.255.1")
		} else {
			ps[2500].Addr = orig
		}
		if res, err := r.Apply(ps); err != nil || len(res.Changed) != 1 {
			b.Fatalf("%+v, %v", res, err)
		}
	}
}

// The validator's overlap index answers as a scan of every range taken
// does, for random non-overlapping taken sets and random queries.
func TestValidatorOverlapMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randPrefix := func() netip.Prefix {
		bits := 8 + rng.IntN(25)
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		p, _ := a.Prefix(bits)
		return p
	}
	for round := 0; round < 200; round++ {
		v := newValidator(Local{}, 0)
		var taken []owned
		for i := 0; i < 30; i++ {
			c := randPrefix()
			var scan *owned
			for j := range taken {
				if taken[j].prefix.Overlaps(c) {
					scan = &taken[j]
					break
				}
			}
			got, ok := v.overlap(c)
			if ok != (scan != nil) || (ok && got != *scan) {
				t.Fatalf("round %d: overlap(%s) = %v, %v; scan of %v finds %v", round, c, got, ok, taken, scan)
			}
			if !ok {
				node := fmt.Sprintf("n%d", i)
				v.take(Peer{Node: node, Addr: netip.AddrFrom4([4]byte{192, 168, byte(round), byte(i + 1)}), PodCIDRs: []netip.Prefix{c}})
				taken = append(taken, owned{c, node})
			}
		}
	}
}
