package router

import (
	"net/netip"

	"github.com/taprouter/taprouter/fib"
)

// routeCacheSize is the number of entries of a worker's route cache.
const (
	routeCacheBits = 4
	routeCacheSize = 1 << routeCacheBits
)

// routeCache remembers a worker's recent FIB lookups of IPv4 addresses. The
// packets of one batch mostly go to, and come from, a few addresses (a
// pod's flows, a peer's pods), and a hit costs a compare instead of a trie
// walk. It is direct-mapped and keyed by the FIB snapshot the lookups were
// made in: every lookup loads the current snapshot, as fib.Table.Lookup
// does, and a new one (any route change) empties the cache, so a lookup
// never answers from a table that is no longer published. Each worker has
// its own: nothing in it is shared.
type routeCache struct {
	snap    fib.Snapshot
	entries [routeCacheSize]routeCacheEntry
}

type routeCacheEntry struct {
	addr  [4]byte
	valid bool
	ok    bool
	nh    fib.NextHop
}

// lookup returns t's next hop for the IPv4 address a, as t.Lookup would.
func (c *routeCache) lookup(t *fib.Table, a [4]byte) (fib.NextHop, bool) {
	if s := t.Snapshot(); s != c.snap {
		c.snap = s
		c.entries = [routeCacheSize]routeCacheEntry{}
	}
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	e := &c.entries[(v*0x9e3779b1)>>(32-routeCacheBits)] // Fibonacci hashing: the top bits
	if e.valid && e.addr == a {
		return e.nh, e.ok
	}
	nh, ok := c.snap.Lookup(netip.AddrFrom4(a))
	*e = routeCacheEntry{addr: a, valid: true, ok: ok, nh: nh}
	return nh, ok
}
