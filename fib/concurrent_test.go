package fib

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentReadersAndWriters runs readers against writers that churn
// routes with Insert, Delete and Update. Readers must always see a
// complete snapshot: the covering /16 is never removed, so no lookup may
// miss, and every Update moves a pair of /32s to the same next hop at once,
// so a Walk must never see the pair split. Run it with -race.
func TestConcurrentReadersAndWriters(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.0.0/16"), peer1)
	pairA, pairB := pfx("10.244.9.1/32"), pfx("10.244.9.2/32")
	tab.Update(func(tx *Txn) {
		tx.Insert(pairA, NextHop{Kind: Local, Port: 0})
		tx.Insert(pairB, NextHop{Kind: Local, Port: 0})
	})

	var stop atomic.Bool
	var lookups, walks atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			n := int64(0)
			for i := 0; !stop.Load(); i++ {
				a := netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i + r)})
				nh, ok := tab.Lookup(a)
				if !ok || (nh != peer1 && nh.Kind != Local) {
					t.Errorf("Lookup(%v) = %v, %v during updates; want %v or a local port", a, nh, ok, peer1)
					return
				}
				n++
			}
			lookups.Add(n)
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			var a, b NextHop
			tab.Walk(func(r Route) bool {
				switch r.Prefix {
				case pairA:
					a = r.NextHop
				case pairB:
					b = r.NextHop
				}
				return true
			})
			if a != b {
				t.Errorf("Walk saw a half-applied Update: %v → %v but %v → %v", pairA, a, pairB, b)
				return
			}
			walks.Add(1)
		}
	})
	// Writers: single-route churn in 10.244.100-163.x, away from the pair
	// and the Update's own routes, and Updates large enough to deep copy.
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(100 + (i>>8)%64), byte(i)}), 32)
			tab.Insert(p, NextHop{Kind: Local, Port: uint32(i)})
			tab.Delete(p)
		}
	})
	wg.Go(func() {
		for i := uint32(1); !stop.Load(); i++ {
			tab.Update(func(tx *Txn) {
				tx.Insert(pairA, NextHop{Kind: Local, Port: i})
				for j := range 40 {
					p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 200, byte(j)}), 32)
					if i%2 == 0 {
						tx.Insert(p, NextHop{Kind: Local, Port: i})
					} else {
						tx.Delete(p)
					}
				}
				tx.Insert(pairB, NextHop{Kind: Local, Port: i})
			})
		}
	})
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if lookups.Load() == 0 || walks.Load() == 0 {
		t.Fatalf("readers did not run: %d lookups, %d walks", lookups.Load(), walks.Load())
	}
	t.Logf("%d lookups and %d walks during updates", lookups.Load(), walks.Load())
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tab := newBenchTable(benchRoutes(10_000))
	tab.Insert(pfx("2001:db8::/32"), peer1)
	for _, a := range []string{"10.0.0.1", "10.0.1.77", "192.0.2.1", "2001:db8::1", "2001:db9::1", "::ffff:10.0.0.1"} {
		addr := ip(a)
		if n := allocsPerOp(t, 1000, func() { tab.Lookup(addr) }); n != 0 {
			t.Errorf("Lookup(%s): %g allocations per lookup, want 0", a, n)
		}
	}
}
