package fib

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/gaissmai/bart"
)

// trie is the persistent LPM trie behind Table; see doc.go for the choice.
type trie = bart.Fast[NextHop]

// Table is the router's forwarding table. Lookup is lock-free and safe to
// call from any number of goroutines while writers update the table:
// readers load an immutable snapshot through an atomic pointer, and writers,
// serialized by a mutex, build the next snapshot by copy-on-write and publish
// it with one atomic store. A Table must be created with New.
type Table struct {
	// routes is the published snapshot. It is never mutated after Store.
	routes atomic.Pointer[trie]
	// mu serializes writers; readers never take it.
	mu sync.Mutex
}

// New returns an empty table: every Lookup misses.
func New() *Table {
	t := new(Table)
	t.routes.Store(new(trie))
	return t
}

// Lookup returns the next hop of the longest prefix that contains a. On a
// miss it returns the zero NextHop (Kind Unreachable) and false. An
// IPv4-mapped IPv6 address (::ffff:a.b.c.d) never matches: such addresses
// are not forwardable (RFC 4291 §2.5.5.2, RFC 6890), and a caller holding
// one by accident must Unmap it. Lookup takes no lock and does not allocate.
func (t *Table) Lookup(a netip.Addr) (NextHop, bool) {
	return t.Snapshot().Lookup(a)
}

// Snapshot is the table as published at one moment: an immutable view
// that later changes do not affect. Two Snapshots of one Table are equal
// (==) only if no change was published between them (every Insert, Delete
// or Update that changes a route publishes a new one), so a reader
// may cache lookups keyed by the Snapshot it made them in; a cache that
// holds a Snapshot keeps it alive, so its identity is never reused.
type Snapshot struct{ routes *trie }

// Snapshot returns the current snapshot. It takes no lock and does not
// allocate.
func (t *Table) Snapshot() Snapshot { return Snapshot{t.routes.Load()} }

// Lookup is Table.Lookup on the snapshot.
func (s Snapshot) Lookup(a netip.Addr) (NextHop, bool) {
	if a.Is4In6() {
		return NextHop{}, false
	}
	return s.routes.Lookup(a)
}

// Insert adds the route p → nh, or replaces the next hop if p is already in
// the table. p is masked first, so 10.0.0.7/24 means 10.0.0.0/24. Insert
// panics if CheckPrefix(p) fails. Each Insert publishes a new snapshot; for
// many changes use Update.
func (t *Table) Insert(p netip.Prefix, nh NextHop) {
	mustCheckPrefix("Table.Insert", p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.routes.Store(t.routes.Load().InsertPersist(p, nh))
}

// Delete removes the route for exactly p (masked first) and reports whether
// it was there. Less specific routes that covered p apply again.
func (t *Table) Delete(p netip.Prefix) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	routes := t.routes.Load()
	if _, ok := routes.Get(p); !ok {
		return false
	}
	t.routes.Store(routes.DeletePersist(p))
	return true
}

// Update runs fn with a transaction on the current routes and then publishes
// all of fn's changes as one snapshot: a concurrent Lookup sees either none
// or all of them. Writers are serialized, so fn must not call the Table's
// own Insert, Delete or Update (it would deadlock); Lookup and Walk inside fn
// see the snapshot from before the Update. If fn panics nothing is published.
func (t *Table) Update(fn func(tx *Txn)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	routes := t.routes.Load()
	tx := &Txn{routes: routes, maxCopies: max(minCopies, routes.Size()/cloneDivisor)}
	defer tx.close()
	fn(tx)
	t.routes.Store(tx.routes)
}

// Walk calls fn for every route, in prefix order (IPv4 before IPv6, then by
// address, then shorter prefix first), until fn returns false. It walks one
// consistent snapshot and holds no lock, so fn may update the table; those
// updates are not seen by this Walk.
func (t *Table) Walk(fn func(Route) bool) {
	for p, nh := range t.routes.Load().AllSorted() {
		if !fn(Route{Prefix: p, NextHop: nh}) {
			return
		}
	}
}

// Len returns the number of routes in the current snapshot.
func (t *Table) Len() int {
	return t.routes.Load().Size()
}
