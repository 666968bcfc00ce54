package fib

import (
	"net/netip"
	"slices"
	"testing"
)

func TestUpdatePublishesAllChangesAtOnce(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	tab.Insert(pfx("10.244.2.0/24"), peer1)
	tab.Update(func(tx *Txn) {
		tx.Insert(pfx("10.244.3.0/24"), peer2)
		if !tx.Delete(pfx("10.244.1.0/24")) {
			t.Error("Txn.Delete(10.244.1.0/24) = false")
		}
		if tx.Delete(pfx("10.244.9.0/24")) {
			t.Error("Txn.Delete of an absent prefix = true")
		}
		// Inside fn the transaction sees its own changes...
		if nh, ok := tx.Get(pfx("10.244.3.99/24")); !ok || nh != peer2 {
			t.Errorf("Txn.Get(10.244.3.0/24) = %v, %v; want %v, true", nh, ok, peer2)
		}
		if _, ok := tx.Get(pfx("10.244.1.0/24")); ok {
			t.Error("Txn.Get finds the route the Txn deleted")
		}
		if tx.Len() != 2 {
			t.Errorf("Txn.Len() = %d, want 2", tx.Len())
		}
		// ...and readers do not, yet.
		wantLookup(t, tab, peer1, false, "10.244.1.1")
		wantLookup(t, tab, NextHop{}, true, "10.244.3.1")
	})
	wantLookup(t, tab, NextHop{}, true, "10.244.1.1")
	wantLookup(t, tab, peer2, false, "10.244.3.1")
	if tab.Len() != 2 {
		t.Errorf("Len() = %d, want 2", tab.Len())
	}
}

func TestUpdateClearReplacesEverything(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	tab.Insert(pfx("::/0"), host)
	tab.Update(func(tx *Txn) {
		tx.Clear()
		if tx.Len() != 0 {
			t.Errorf("Txn.Len() = %d after Clear", tx.Len())
		}
		tx.Insert(pfx("10.244.2.0/24"), peer2)
	})
	if got, want := routesOf(tab), []Route{{pfx("10.244.2.0/24"), peer2}}; !slices.Equal(got, want) {
		t.Errorf("after Clear and Insert: %v, want %v", got, want)
	}
}

func TestUpdateThatPanicsPublishesNothing(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	wantPanic(t, "boom", func() {
		tab.Update(func(tx *Txn) {
			tx.Delete(pfx("10.244.1.0/24"))
			tx.Insert(pfx("10.244.2.0/24"), peer2)
			panic("boom")
		})
	})
	if got, want := routesOf(tab), []Route{{pfx("10.244.1.0/24"), peer1}}; !slices.Equal(got, want) {
		t.Errorf("after a panicking Update: %v, want %v", got, want)
	}
	// The mutex was released.
	tab.Insert(pfx("10.244.3.0/24"), peer2)
}

func TestTxnUsedAfterUpdatePanics(t *testing.T) {
	tab := New()
	var leaked *Txn
	tab.Update(func(tx *Txn) { leaked = tx })
	wantPanic(t, "after Update returned", func() { leaked.Insert(pfx("10.0.0.0/8"), host) })
	wantPanic(t, "after Update returned", func() { leaked.Delete(pfx("10.0.0.0/8")) })
	if tab.Len() != 0 {
		t.Errorf("Len() = %d; a leaked Txn changed the table", tab.Len())
	}
}

// TestUpdateNeverChangesPublishedSnapshot checks the copy-on-write rule on
// both sides of the switch from path copying to deep copy (maxCopies): a
// snapshot a reader may still hold must never change.
func TestUpdateNeverChangesPublishedSnapshot(t *testing.T) {
	routes := benchRoutes(5000)
	for _, changes := range []int{1, minCopies, 5000/cloneDivisor + 1, 3000} {
		tab := newBenchTable(routes)
		old := tab.routes.Load()
		before := slices.Collect(func(yield func(Route) bool) {
			for p, nh := range old.AllSorted() {
				yield(Route{p, nh})
			}
		})
		tab.Update(func(tx *Txn) {
			defer func() {
				if wantOwned := 2*changes > tx.maxCopies; tx.owned != wantOwned {
					t.Errorf("Update with %d changes: deep copied = %v, want %v", changes, tx.owned, wantOwned)
				}
			}()
			for i := range changes {
				r := routes[i*len(routes)/changes]
				if i%2 == 0 {
					tx.Delete(r.Prefix)
				} else {
					tx.Insert(r.Prefix, drop)
				}
				tx.Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 8), byte(i), 0}), 24), drop)
			}
		})
		var after []Route
		for p, nh := range old.AllSorted() {
			after = append(after, Route{p, nh})
		}
		if !slices.Equal(before, after) || old.Size() != len(routes) {
			t.Errorf("Update with %d changes modified the snapshot readers held", changes)
		}
		if got, want := tab.Len(), len(routes)-(changes+1)/2+changes; got != want {
			t.Errorf("Update with %d changes: Len() = %d, want %d", changes, got, want)
		}
	}
}
