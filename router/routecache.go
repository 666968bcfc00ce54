package router

import (
	"encoding/binary"
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
	addr  uint32 // the IPv4 address, big endian
	valid bool
	ok    bool
	nh    fib.NextHop
}

// lookup returns t's next hop for the IPv4 address a (big endian: as
// binary.BigEndian.Uint32 reads it from a header), as t.Lookup would. The
// hit path is small enough to be inlined.
func (c *routeCache) lookup(t *fib.Table, a uint32) (fib.NextHop, bool) {
	e := &c.entries[(a*0x9e3779b1)>>(32-routeCacheBits)] // Fibonacci hashing: the top bits
	if s := t.Snapshot(); s == c.snap && e.valid && e.addr == a {
		return e.nh, e.ok
	}
	return c.miss(t, a)
}

// miss looks a up in t's current snapshot and remembers the answer,
// emptying the cache first if the snapshot changed.
func (c *routeCache) miss(t *fib.Table, a uint32) (fib.NextHop, bool) {
	if s := t.Snapshot(); s != c.snap {
		c.snap = s
		c.entries = [routeCacheSize]routeCacheEntry{}
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	nh, ok := c.snap.Lookup(netip.AddrFrom4(b))
	c.entries[(a*0x9e3779b1)>>(32-routeCacheBits)] = routeCacheEntry{addr: a, valid: true, ok: ok, nh: nh}
	return nh, ok
}
