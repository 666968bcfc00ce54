package fib

import "net/netip"

// A Txn starts with copy-on-write changes, each of which copies one trie
// path (about 4µs at 1M routes), and switches to one deep copy of the table
// plus in-place changes (about 0.1µs each) once the path copies it has paid
// for would have paid for the deep copy. A deep copy costs 20-40ns per route
// (BenchmarkUpdate: 7812 vs 7813 changes), the price of roughly
// Len()/cloneDivisor path copies. This is the ski-rental rule: it never
// costs more than twice the better of the two choices made in hindsight.
const (
	cloneDivisor = 128
	minCopies    = 16
)

// Txn is a set of changes that Table.Update publishes atomically. It is
// valid only during the Update call that created it.
type Txn struct {
	// routes is the table being built. Until owned is set it may share
	// nodes with the published snapshot and is changed only by
	// copy-on-write.
	routes *trie
	// owned says routes is private to this Txn and may be changed in place.
	owned bool
	// copies counts copy-on-write changes so far.
	copies int
	// maxCopies is the number of copy-on-write changes after which the
	// Txn deep copies the table.
	maxCopies int
	// closed is set when Update returns.
	closed bool
}

// Insert adds or replaces the route p → nh, like Table.Insert.
func (tx *Txn) Insert(p netip.Prefix, nh NextHop) {
	tx.mustBeOpen("Insert")
	mustCheckPrefix("Txn.Insert", p)
	if tx.own() {
		tx.routes.Insert(p, nh)
		return
	}
	tx.routes = tx.routes.InsertPersist(p, nh)
}

// Delete removes the route for exactly p, like Table.Delete.
func (tx *Txn) Delete(p netip.Prefix) bool {
	tx.mustBeOpen("Delete")
	if _, ok := tx.routes.Get(p); !ok {
		return false
	}
	if tx.own() {
		tx.routes.Delete(p)
	} else {
		tx.routes = tx.routes.DeletePersist(p)
	}
	return true
}

// Clear removes every route, so that the transaction can load a complete
// new set (a resync) without first deleting the old routes one by one.
func (tx *Txn) Clear() {
	tx.mustBeOpen("Clear")
	tx.routes = new(trie)
	tx.owned = true
}

// Get returns the next hop stored for exactly p (masked first), including
// the transaction's own changes so far.
func (tx *Txn) Get(p netip.Prefix) (NextHop, bool) {
	tx.mustBeOpen("Get")
	return tx.routes.Get(p)
}

// Len returns the number of routes, including the transaction's changes.
func (tx *Txn) Len() int {
	tx.mustBeOpen("Len")
	return tx.routes.Size()
}

// own reports whether the next change may be made in place, deep copying
// the table once the transaction has made maxCopies copy-on-write changes.
func (tx *Txn) own() bool {
	if tx.owned {
		return true
	}
	if tx.copies < tx.maxCopies {
		tx.copies++
		return false
	}
	tx.routes = tx.routes.Clone()
	tx.owned = true
	return true
}

func (tx *Txn) mustBeOpen(op string) {
	if tx.closed {
		panic("fib: Txn." + op + " called after Update returned")
	}
}

func (tx *Txn) close() { tx.closed = true }
