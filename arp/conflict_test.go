package arp

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
)

var mac3 = link.HardwareAddr{0x02, 0, 0, 0, 0, 3}

func unicast(port uint32, ip netip.Addr, mac link.HardwareAddr) request {
	return request{port, ip, mac}
}

// wantMAC fails the test unless Lookup of ip on port returns mac.
func (h *harness) wantMAC(port uint32, ip netip.Addr, mac link.HardwareAddr) {
	h.t.Helper()
	if got, ok := h.table.Lookup(port, ip); !ok || got != mac {
		h.t.Fatalf("Lookup(%d, %v) = %v, %v; want %v, true", port, ip, got, ok, mac)
	}
}

func (h *harness) wantStats(want Stats) {
	h.t.Helper()
	if got := h.table.Stats(); got != want {
		h.t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// An unsolicited reply from another MAC (an impostor answering for a
// neighbour) does not replace a Reachable entry: the known MAC stays in use
// and is re-probed, and its answer ends the conflict.
func TestConflictKeepsKnownMACWhileItAnswers(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Conflict {
		t.Fatalf("Learn of a conflicting MAC = %v, want Conflict", got)
	}
	h.wantMAC(port1, ip1, mac1)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(unicast(port1, ip1, mac1))

	h.run(500 * time.Millisecond)
	if got := h.table.Learn(port1, ip1, mac1, Reply); got != Taken { // the real neighbour answers the probe
		t.Fatalf("Learn of the known MAC = %v, want Taken", got)
	}
	h.wantState(port1, ip1, Reachable)
	h.run(10 * time.Second)
	h.wantMAC(port1, ip1, mac1)
	h.wantRequests()
	h.wantStats(Stats{Learned: 3, Conflicts: 1, RequestsSent: 2})
}

// A conflicting claim is taken only when the known MAC stops answering its
// re-probes, and the claimed MAC is then probed in turn.
func TestConflictTakesClaimWhenKnownMACIsSilent(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	h.table.Learn(port1, ip1, mac2, Reply)
	h.run(2900 * time.Millisecond)
	h.wantMAC(port1, ip1, mac1)
	h.wantRequests(unicast(port1, ip1, mac1), unicast(port1, ip1, mac1), unicast(port1, ip1, mac1))
	h.run(100 * time.Millisecond) // the third probe's RetransTime is over
	h.wantMAC(port1, ip1, mac2)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(unicast(port1, ip1, mac2))
	h.table.Learn(port1, ip1, mac2, Reply)
	h.wantState(port1, ip1, Reachable)
	h.wantStats(Stats{Learned: 3, Conflicts: 1, MACChanges: 1, RequestsSent: 5})
}

// A claimed MAC that does not answer its own probes either fails the entry.
func TestConflictBothSilentFails(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	h.table.Learn(port1, ip1, mac2, Reply)
	h.run(6 * time.Second)
	h.wantState(port1, ip1, Failed)
	h.wantRequests(unicast(port1, ip1, mac1), unicast(port1, ip1, mac1), unicast(port1, ip1, mac1),
		unicast(port1, ip1, mac2), unicast(port1, ip1, mac2), unicast(port1, ip1, mac2))
	h.wantStats(Stats{Learned: 2, Conflicts: 1, MACChanges: 1, RequestsSent: 7, Failures: 1})
}

// More claims while re-probing replace the candidate but neither restart
// nor prolong the probing: a flood of replies cannot hold the entry.
func TestConflictWhileProbing(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	h.table.Learn(port1, ip1, mac2, Reply)
	h.run(1500 * time.Millisecond)
	if got := h.table.Learn(port1, ip1, mac3, Reply); got != ConflictProbing {
		t.Fatalf("second conflicting Learn = %v, want ConflictProbing", got)
	}
	h.run(1500 * time.Millisecond)
	h.wantMAC(port1, ip1, mac3)
	h.wantRequests(unicast(port1, ip1, mac1), unicast(port1, ip1, mac1), unicast(port1, ip1, mac1), unicast(port1, ip1, mac3))
	h.wantStats(Stats{Learned: 3, Conflicts: 2, MACChanges: 1, RequestsSent: 5})
}

// A Stale entry is defended the same way (the kernel would take the new
// MAC once its one-second locktime is over).
func TestConflictOnStaleEntry(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.makeStale(port1, ip1, mac1)
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Conflict {
		t.Fatalf("Learn of a conflicting MAC on a Stale entry = %v, want Conflict", got)
	}
	h.wantMAC(port1, ip1, mac1)
	h.wantRequests(unicast(port1, ip1, mac1))
}

// Requests the hook cannot send are counted; the table retransmits as if
// they were lost.
func TestSendFailuresCounted(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.hooks.sendErr = errors.New("no buffer space")
	h.table.Enqueue(port1, ip1, pktA)
	h.run(3 * time.Second)
	h.wantState(port1, ip1, Failed)
	h.wantStats(Stats{RequestsSent: 3, SendFailures: 3, Failures: 1})
}
