package fib

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gaissmai/bart"
)

// benchSizes are the route counts every comparison runs at.
var benchSizes = []int{100, 10_000, 1_000_000}

// benchRoutes returns n routes shaped like a big cluster's FIB: a default
// route to the host port, n/16 node blocks (/24s allocated in order from
// 10.0.0.0/8, as node IPAM does) to peers, and /32 pod routes to local
// ports for the rest, about 15 inside each node block.
func benchRoutes(n int) []Route {
	rng := rand.New(rand.NewPCG(1, 2))
	blocks := max(1, n/16)
	routes := make([]Route, 0, n)
	routes = append(routes, Route{netip.MustParsePrefix("0.0.0.0/0"), NextHop{Kind: Host}})
	for i := range blocks {
		block := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0})
		routes = append(routes, Route{netip.PrefixFrom(block, 24), NextHop{Kind: Peer, Peer: uint32(i)}})
	}
	pods := n - len(routes)
	for i := range blocks {
		hosts := pods / blocks
		if i < pods%blocks {
			hosts++
		}
		for j, host := range rng.Perm(254)[:hosts] {
			pod := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(host + 1)})
			routes = append(routes, Route{netip.PrefixFrom(pod, 32), NextHop{Kind: Local, Port: uint32(j)}})
		}
	}
	return routes
}

// benchAddrs returns 64Ki lookup addresses for routes: a third are pod
// addresses (hit a /32), a third are random hosts in node blocks (mostly
// hit the /24), a third are uniformly random (fall to the default route).
func benchAddrs(routes []Route) []netip.Addr {
	rng := rand.New(rand.NewPCG(3, 4))
	var pods, blocks []netip.Prefix
	for _, r := range routes {
		switch r.Prefix.Bits() {
		case 32:
			pods = append(pods, r.Prefix)
		case 24:
			blocks = append(blocks, r.Prefix)
		}
	}
	addrs := make([]netip.Addr, 1<<16)
	for i := range addrs {
		switch {
		case i%3 == 0 && len(pods) > 0:
			addrs[i] = pods[rng.IntN(len(pods))].Addr()
		case i%3 == 1:
			b := blocks[rng.IntN(len(blocks))].Addr().As4()
			b[3] = byte(rng.IntN(256))
			addrs[i] = netip.AddrFrom4(b)
		default:
			var b [4]byte
			for k := range b {
				b[k] = byte(rng.Uint32())
			}
			addrs[i] = netip.AddrFrom4(b)
		}
	}
	return addrs
}

func newBenchTable(routes []Route) *Table {
	t := New()
	t.Update(func(tx *Txn) {
		for _, r := range routes {
			tx.Insert(r.Prefix, r.NextHop)
		}
	})
	return t
}

// BenchmarkLookup compares the LPM candidates on the same routes and
// addresses: "table" is the Table that fib exports (bart.Fast behind an
// atomic pointer), "bart" and "bartFast" are gaissmai/bart's Table and Fast
// used directly, "hash" is the hand-written hashLPM.
func BenchmarkLookup(b *testing.B) {
	for _, n := range benchSizes {
		routes := benchRoutes(n)
		addrs := benchAddrs(routes)
		mask := len(addrs) - 1

		// Each structure is built in one go so that none gets its nodes
		// interleaved in memory with another's.
		table := newBenchTable(routes)
		var bt bart.Table[NextHop]
		for _, r := range routes {
			bt.Insert(r.Prefix, r.NextHop)
		}
		var fast bart.Fast[NextHop]
		for _, r := range routes {
			fast.Insert(r.Prefix, r.NextHop)
		}
		var hash hashLPM
		for _, r := range routes {
			hash.Insert(r.Prefix, r.NextHop)
		}

		b.Run(fmt.Sprintf("table/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for i := 0; b.Loop(); i++ {
				if _, ok := table.Lookup(addrs[i&mask]); ok {
					found++
				}
			}
			wantAllFound(b, found)
		})
		b.Run(fmt.Sprintf("bart/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for i := 0; b.Loop(); i++ {
				if _, ok := bt.Lookup(addrs[i&mask]); ok {
					found++
				}
			}
			wantAllFound(b, found)
		})
		b.Run(fmt.Sprintf("bartFast/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for i := 0; b.Loop(); i++ {
				if _, ok := fast.Lookup(addrs[i&mask]); ok {
					found++
				}
			}
			wantAllFound(b, found)
		})
		b.Run(fmt.Sprintf("hash/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for i := 0; b.Loop(); i++ {
				if _, ok := hash.Lookup(addrs[i&mask]); ok {
					found++
				}
			}
			wantAllFound(b, found)
		})
	}
}

// wantAllFound fails b unless all b.N lookups found a route, as they must
// with benchRoutes' default route.
func wantAllFound(b *testing.B, found int) {
	if found != b.N {
		b.Fatalf("%d of %d lookups found a route despite the default route", found, b.N)
	}
}

// BenchmarkLookupParallel measures Table.Lookup from GOMAXPROCS goroutines
// at once: readers share nothing but the atomic pointer, so ns/op should
// fall with the number of CPUs.
func BenchmarkLookupParallel(b *testing.B) {
	for _, n := range benchSizes {
		routes := benchRoutes(n)
		addrs := benchAddrs(routes)
		mask := len(addrs) - 1
		table := newBenchTable(routes)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			var misses atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(addrs))
				for pb.Next() {
					if _, ok := table.Lookup(addrs[i&mask]); !ok {
						misses.Add(1)
					}
					i++
				}
			})
			if misses.Load() != 0 {
				b.Fatal("lookups missed despite the default route")
			}
		})
	}
}

// readWhile runs lookup over addrs on GOMAXPROCS-1 goroutines (at least
// one) until the returned stop is called; stop reports the mean ns per
// lookup the readers achieved.
func readWhile(addrs []netip.Addr, lookup func(netip.Addr) (NextHop, bool)) (stop func() float64) {
	readers := max(1, runtime.GOMAXPROCS(0)-1)
	var done atomic.Bool
	var lookups atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for r := range readers {
		wg.Go(func() {
			n := 0
			for i := r * 7919; !done.Load(); i++ {
				lookup(addrs[i&(len(addrs)-1)])
				n++
			}
			lookups.Add(int64(n))
		})
	}
	return func() float64 {
		done.Store(true)
		wg.Wait()
		elapsed := time.Since(start)
		return float64(elapsed.Nanoseconds()) * float64(readers) / float64(max(1, lookups.Load()))
	}
}

// BenchmarkInsertUnderRead measures one route change (insert or delete of
// a /32 pod route, alternating) published while the other CPUs run
// lookups. ns/op is the writer's cost; read-ns/lookup is what the readers
// got meanwhile. "bart" (bart.Table rather than the bart.Fast that Table
// uses) and "hash" are published the same way for comparison.
func BenchmarkInsertUnderRead(b *testing.B) {
	for _, n := range benchSizes {
		routes := benchRoutes(n)
		addrs := benchAddrs(routes)
		// Changing prefixes: pod addresses .255 are never in benchRoutes.
		var churn []netip.Prefix
		for _, r := range routes {
			if r.Prefix.Bits() == 24 {
				a := r.Prefix.Addr().As4()
				a[3] = 255
				churn = append(churn, netip.PrefixFrom(netip.AddrFrom4(a), 32))
			}
		}
		b.Run(fmt.Sprintf("table/%d", n), func(b *testing.B) {
			table := newBenchTable(routes)
			stop := readWhile(addrs, table.Lookup)
			for i := 0; b.Loop(); i++ {
				p := churn[(i/2)%len(churn)]
				if i%2 == 0 {
					table.Insert(p, NextHop{Kind: Local, Port: 1})
				} else if !table.Delete(p) {
					b.Fatalf("Delete(%v) = false after Insert", p)
				}
			}
			b.ReportMetric(stop(), "read-ns/lookup")
		})
		b.Run(fmt.Sprintf("bart/%d", n), func(b *testing.B) {
			bt := new(bart.Table[NextHop])
			for _, r := range routes {
				bt.Insert(r.Prefix, r.NextHop)
			}
			churnUnderRead(b, bt, addrs, churn)
		})
		b.Run(fmt.Sprintf("hash/%d", n), func(b *testing.B) {
			hash := new(hashLPM)
			for _, r := range routes {
				hash.Insert(r.Prefix, r.NextHop)
			}
			churnUnderRead(b, hash, addrs, churn)
		})
	}
}

// persistentLPM is a copy-on-write LPM like bart.Table or hashLPM.
type persistentLPM[T any] interface {
	*T
	Lookup(netip.Addr) (NextHop, bool)
	InsertPersist(netip.Prefix, NextHop) *T
	DeletePersist(netip.Prefix) *T
}

// churnUnderRead is BenchmarkInsertUnderRead for the candidates Table does
// not use: it publishes them the way Table publishes its trie.
func churnUnderRead[T any, P persistentLPM[T]](b *testing.B, initial P, addrs []netip.Addr, churn []netip.Prefix) {
	var published atomic.Pointer[T]
	var mu sync.Mutex
	published.Store(initial)
	stop := readWhile(addrs, func(a netip.Addr) (NextHop, bool) { return P(published.Load()).Lookup(a) })
	for i := 0; b.Loop(); i++ {
		p := churn[(i/2)%len(churn)]
		mu.Lock()
		if i%2 == 0 {
			published.Store(P(published.Load()).InsertPersist(p, NextHop{Kind: Local, Port: 1}))
		} else {
			published.Store(P(published.Load()).DeletePersist(p))
		}
		mu.Unlock()
	}
	b.ReportMetric(stop(), "read-ns/lookup")
}

// BenchmarkUpdate measures transactions on a table of 1M routes: a bulk
// load from empty (Clear then 1M inserts) and batches of k changes. The
// per-change cost shows the switch from copy-on-write to
// one deep copy plus in-place changes.
func BenchmarkUpdate(b *testing.B) {
	routes := benchRoutes(1_000_000)
	b.Run("bulkload/1000000", func(b *testing.B) {
		table := New()
		for b.Loop() {
			table.Update(func(tx *Txn) {
				tx.Clear()
				for _, r := range routes {
					tx.Insert(r.Prefix, r.NextHop)
				}
			})
		}
		if table.Len() != len(routes) {
			b.Fatalf("Len() = %d, want %d", table.Len(), len(routes))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(routes)), "ns/route")
	})
	table := newBenchTable(routes)
	for _, k := range []int{1, 16, 256, 4096, 7812, 7813, 65536} {
		b.Run(fmt.Sprintf("changes=%d/1000000", k), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				table.Update(func(tx *Txn) {
					for j := range k {
						r := routes[(i*k+j)%len(routes)]
						r.NextHop.Port++
						tx.Insert(r.Prefix, r.NextHop)
					}
				})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(k), "ns/change")
		})
	}
}
