package arp

import (
	"testing"
	"time"
)

// A reply, or a request not for us, creates no entry: nothing asked for
// it (the kernel's arp_accept=0). Before, the first claim for a neighbour
// without an entry made it Reachable at whatever MAC it named.
func TestUnsolicitedClaimCreatesNothing(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for _, c := range []Claim{Reply, OtherRequest} {
		if got := h.table.Learn(port1, ip1, mac2, c); got != Unsolicited {
			t.Fatalf("Learn(%d) without an entry = %v, want Unsolicited", c, got)
		}
	}
	if e := h.table.Entries(); len(e) != 0 {
		t.Fatalf("entries after unsolicited claims: %+v, want none", e)
	}
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit after unsolicited claims")
	}
	h.wantRequests()
	h.wantStats(Stats{Learned: 2, Unsolicited: 2})

	// The next packet resolves by broadcast, and the reply to that is taken.
	h.table.Enqueue(port1, ip1, pktA)
	h.wantRequests(bcast(port1, ip1))
	if got := h.table.Learn(port1, ip1, mac1, Reply); got != Taken {
		t.Fatalf("Learn of the solicited reply = %v, want Taken", got)
	}
	h.wantState(port1, ip1, Reachable)
	h.wantMAC(port1, ip1, mac1)
	if len(h.hooks.resolved) != 1 || h.hooks.resolved[0].mac != mac1 {
		t.Fatalf("Resolved calls = %+v, want one for %v", h.hooks.resolved, mac1)
	}
	h.wantStats(Stats{Learned: 3, Unsolicited: 2, RequestsSent: 1})
}

// A Failed entry asked nothing any more: a reply for it is unsolicited and
// leaves it Failed; a request for us revives it as Stale.
func TestUnsolicitedReplyForFailedEntry(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.table.Enqueue(port1, ip1, pktA)
	h.run(3 * time.Second)
	h.wantState(port1, ip1, Failed)
	h.hooks.takeRequests()
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Unsolicited {
		t.Fatalf("Learn(Reply) on a Failed entry = %v, want Unsolicited", got)
	}
	h.wantState(port1, ip1, Failed)
	if got := h.table.Learn(port1, ip1, mac1, RequestForUs); got != Taken {
		t.Fatalf("Learn(RequestForUs) on a Failed entry = %v, want Taken", got)
	}
	h.wantState(port1, ip1, Stale)
	h.wantMAC(port1, ip1, mac1)
	h.wantStats(Stats{Learned: 2, Unsolicited: 1, RequestsSent: 3, Failures: 1})
}

// A request for us creates a Stale entry, as the kernel does for its
// sender: the MAC is used at once and re-probed by unicast before it is
// Reachable.
func TestRequestForUsCreatesStale(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	if got := h.table.Learn(port1, ip1, mac1, RequestForUs); got != Taken {
		t.Fatalf("Learn(RequestForUs) = %v, want Taken", got)
	}
	if e := h.entry(port1, ip1); e.State != Stale || e.MAC != mac1 {
		t.Fatalf("entry = %+v, want Stale at %v", e, mac1)
	}
	h.wantMAC(port1, ip1, mac1) // used: Delay
	h.wantState(port1, ip1, Delay)
	h.run(cfg.DelayTime + tickInterval)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(unicast(port1, ip1, mac1))
	h.table.Learn(port1, ip1, mac1, Reply)
	h.wantState(port1, ip1, Reachable)
	if len(h.hooks.resolved) != 0 {
		t.Fatalf("Resolved calls %+v for an entry that queued nothing", h.hooks.resolved)
	}
	h.wantStats(Stats{Learned: 2, RequestsSent: 1})
}

// A request completes an entry being resolved, as Stale; a reply, as
// Reachable. Either hands over the queue.
func TestRequestCompletesIncompleteAsStale(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.table.Enqueue(port1, ip1, pktA)
	if got := h.table.Learn(port1, ip1, mac1, OtherRequest); got != Taken {
		t.Fatalf("Learn(OtherRequest) on an Incomplete entry = %v, want Taken", got)
	}
	h.wantState(port1, ip1, Stale)
	if len(h.hooks.resolved) != 1 || h.hooks.resolved[0].mac != mac1 {
		t.Fatalf("Resolved calls = %+v, want one for %v", h.hooks.resolved, mac1)
	}
	wantPackets(t, "resolved packets", h.hooks.resolved[0].queued, pktA)
}

// A kept neighbour's unused Stale entry is re-probed, not collected: its
// known MAC stays there to be defended. If it stops answering it fails and
// goes; the next entry for it is kept again, until Remove.
func TestKeptEntryIsReprobedNotCollected(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.table.Keep(port1, ip1)
	h.wantRequests(bcast(port1, ip1))
	h.wantState(port1, ip1, Incomplete)
	h.table.Keep(port1, ip1) // again: nothing more
	h.wantRequests()
	h.table.Learn(port1, ip1, mac1, Reply)
	h.run(cfg.ReachableTime)
	h.wantState(port1, ip1, Stale)
	h.run(cfg.GCStaleTime - tickInterval)
	h.wantState(port1, ip1, Stale)
	h.wantRequests()
	h.run(tickInterval)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(unicast(port1, ip1, mac1))
	h.table.Learn(port1, ip1, mac1, Reply)
	h.wantState(port1, ip1, Reachable)

	// An impostor's claim now meets the known MAC.
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Conflict {
		t.Fatalf("conflicting Learn = %v, want Conflict", got)
	}
	h.wantMAC(port1, ip1, mac1)
	h.table.Learn(port1, ip1, mac1, Reply) // the real one answers the re-probe
	h.wantRequests(unicast(port1, ip1, mac1))

	// Silent: re-probed three times, failed, removed after FailedTime.
	h.run(cfg.ReachableTime + cfg.GCStaleTime)
	h.wantState(port1, ip1, Probe)
	h.run(cfg.RetransTime * time.Duration(cfg.MaxUnicastProbes))
	h.wantState(port1, ip1, Failed)
	h.wantRequests(unicast(port1, ip1, mac1), unicast(port1, ip1, mac1), unicast(port1, ip1, mac1))
	h.run(cfg.FailedTime)
	h.wantNoEntry(port1, ip1)
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Unsolicited {
		t.Fatalf("reply after the entry went = %v, want Unsolicited", got)
	}
	h.wantStats(Stats{Learned: 5, Unsolicited: 1, Conflicts: 1, Failures: 1, RequestsSent: 6})

	// The next entry, made by a packet, is kept too.
	h.table.Enqueue(port1, ip1, pktA)
	h.table.Learn(port1, ip1, mac1, Reply)
	h.hooks.takeRequests()
	h.run(cfg.ReachableTime + cfg.GCStaleTime)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(unicast(port1, ip1, mac1))

	// Remove ends it: the next entry is collected when unused.
	h.table.Remove(port1, ip1)
	h.table.Enqueue(port1, ip1, pktA)
	h.table.Learn(port1, ip1, mac1, Reply)
	h.hooks.takeRequests()
	h.run(cfg.ReachableTime + cfg.GCStaleTime)
	h.wantNoEntry(port1, ip1)
	h.wantRequests()
}

// A full table does not evict a kept neighbour's Stale entry.
func TestKeptEntryNotEvicted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEntries = 1
	h := newHarness(t, cfg)
	h.table.Keep(port1, ip1)
	h.table.Learn(port1, ip1, mac1, Reply)
	h.run(cfg.ReachableTime)
	h.wantState(port1, ip1, Stale)
	h.hooks.takeRequests()
	h.table.Enqueue(port1, ip2, pktA)
	h.wantState(port1, ip1, Stale)
	h.wantNoEntry(port1, ip2)
	h.wantRequests()
	if s := h.table.Stats(); s.TableFull != 1 {
		t.Fatalf("TableFull = %d, want 1", s.TableFull)
	}
}

// RemovePort ends Keep for the port's neighbours.
func TestRemovePortEndsKeep(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.table.Keep(port1, ip1)
	h.table.Keep(port2, ip1)
	h.table.RemovePort(port1)
	h.hooks.takeRequests()
	for _, port := range []uint32{port1, port2} {
		h.table.Enqueue(port, ip1, pktA)
		h.table.Learn(port, ip1, mac1, Reply)
	}
	h.hooks.takeRequests()
	h.run(cfg.ReachableTime + cfg.GCStaleTime)
	h.wantNoEntry(port1, ip1)
	h.wantState(port2, ip1, Probe)
	h.wantRequests(unicast(port2, ip1, mac1))
}

func TestClaimOf(t *testing.T) {
	for _, tc := range []struct {
		p    Packet
		want Claim
	}{
		{Packet{Op: OpReply, SenderIP: ip1, TargetIP: ip2}, Reply},
		{Packet{Op: OpReply, SenderIP: ip1, TargetIP: ip3}, Reply},
		{Packet{Op: OpRequest, SenderIP: ip1, TargetIP: ip2}, RequestForUs},
		{Packet{Op: OpRequest, SenderIP: ip1, TargetIP: ip3}, OtherRequest},
		{Packet{Op: OpRequest, SenderIP: ip1, TargetIP: ip1}, OtherRequest}, // gratuitous
	} {
		if got := ClaimOf(&tc.p, ip2); got != tc.want {
			t.Errorf("ClaimOf(%+v, %v) = %d, want %d", tc.p, ip2, got, tc.want)
		}
	}
}
