package fib

import (
	"cmp"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// oracle is the obviously correct FIB the fuzz and random tests compare
// Table with: a map of routes and a linear scan for the longest match.
type oracle map[netip.Prefix]NextHop

func (o oracle) lookup(a netip.Addr) (NextHop, bool) {
	best, found := netip.Prefix{}, false
	for p := range o {
		if p.Addr().Is4() == a.Is4() && !a.Is4In6() && p.Contains(a) && (!found || p.Bits() > best.Bits()) {
			best, found = p, true
		}
	}
	return o[best], found
}

func (o oracle) sorted() []Route {
	rs := []Route{}
	for p, nh := range o {
		rs = append(rs, Route{p, nh})
	}
	slices.SortFunc(rs, func(a, b Route) int {
		if a.Prefix.Addr().Is4() != b.Prefix.Addr().Is4() {
			if a.Prefix.Addr().Is4() {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return rs
}

// opReader turns fuzz bytes into table operations. Addresses come from a
// small alphabet of byte values so that prefixes overlap often.
type opReader struct{ data []byte }

func (r *opReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

var addrBytes = [8]byte{0, 1, 10, 127, 128, 244, 254, 255}

func (r *opReader) addr() netip.Addr {
	ctl := r.byte()
	var b [16]byte
	for i := range b {
		b[i] = addrBytes[r.byte()&7]
	}
	switch ctl & 3 {
	case 0, 1:
		return netip.AddrFrom4([4]byte(b[:4]))
	case 2:
		return netip.AddrFrom16(b)
	default: // IPv4-mapped: must never match
		return netip.AddrFrom16(netip.AddrFrom4([4]byte(b[:4])).As16())
	}
}

func (r *opReader) prefix() netip.Prefix {
	a := r.addr().Unmap()
	return netip.PrefixFrom(a, int(r.byte())%(a.BitLen()+1))
}

func (r *opReader) nextHop() NextHop {
	b := r.byte()
	return NextHop{Kind: Kind(b % 6), Port: uint32(b >> 3), Peer: uint32(b >> 4)}
}

// run applies the operations encoded in data to tab and an oracle, checking
// every lookup against the oracle, and finally Walk, Len and that no Update
// changed a snapshot published before it.
func run(t *testing.T, tab *Table, data []byte) {
	type keptSnapshot struct {
		snapshot *trie
		routes   []Route
	}
	var kept []keptSnapshot
	o := oracle{}
	r := &opReader{data}
	check := func(a netip.Addr) {
		got, gotOK := tab.Lookup(a)
		want, wantOK := o.lookup(a)
		if got != want || gotOK != wantOK {
			t.Fatalf("Lookup(%v) = %v, %v; oracle says %v, %v", a, got, gotOK, want, wantOK)
		}
	}
	for len(r.data) > 0 {
		switch op := r.byte(); op % 4 {
		case 0:
			p, nh := r.prefix(), r.nextHop()
			tab.Insert(p, nh)
			o[p.Masked()] = nh
		case 1:
			p := r.prefix()
			_, had := o[p.Masked()]
			if got := tab.Delete(p); got != had {
				t.Fatalf("Delete(%v) = %v, oracle had it: %v", p, got, had)
			}
			delete(o, p.Masked())
		case 2:
			// A transaction of up to 63 changes: enough to cross minCopies.
			// The snapshot from before must stay as it was for good.
			n := int(op >> 2)
			kept = append(kept, keptSnapshot{tab.routes.Load(), o.sorted()})
			tab.Update(func(tx *Txn) {
				for range n {
					p := r.prefix()
					if r.byte()&1 == 0 {
						nh := r.nextHop()
						tx.Insert(p, nh)
						o[p.Masked()] = nh
					} else {
						tx.Delete(p)
						delete(o, p.Masked())
					}
				}
			})
		case 3:
			a := r.addr()
			check(a)
			// Also probe the edges of a prefix's range.
			p := r.prefix().Masked()
			check(p.Addr())
			check(lastAddr(p))
		}
	}
	for _, k := range kept {
		if got := snapshotRoutes(k.snapshot); !slices.Equal(got, k.routes) {
			t.Fatalf("a later Update changed a published snapshot:\n%v\nwas\n%v", got, k.routes)
		}
	}
	if got, want := routesOf(tab), o.sorted(); !slices.Equal(got, want) {
		t.Fatalf("Walk =\n%v\noracle\n%v", got, want)
	}
	if tab.Len() != len(o) {
		t.Fatalf("Len() = %d, oracle has %d", tab.Len(), len(o))
	}
}

// snapshotRoutes returns the routes of one published snapshot in Walk order.
func snapshotRoutes(s *trie) []Route {
	rs := []Route{}
	for p, nh := range s.AllSorted() {
		rs = append(rs, Route{p, nh})
	}
	return rs
}

// lastAddr returns the highest address in the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte{0, 0, 2, 2, 2, 2, 24, 9, 3, 0, 2, 2, 2, 2, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 1, 1, 1, 32, 7, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 2, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 64, 1, 3, 3, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		run(t, New(), data)
	})
}

// TestLookupMatchesOracle runs long random operation sequences through the
// fuzz target's checker, so plain `go test` covers more than the seeds.
func TestLookupMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		data := make([]byte, 2000)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		run(t, New(), data)
	}
}
