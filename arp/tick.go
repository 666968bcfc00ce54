package arp

import (
	"time"

	"github.com/taprouter/taprouter/link"
)

// Tick runs the table's timers: retransmits requests, moves entries between
// states and removes expired ones. The router calls it periodically (every
// 100ms is plenty); timers fire at the first Tick at or after their deadline.
func (t *Table) Tick() {
	now := t.clock.Now()
	var events []event
	var dead []*neighbour
	t.mu.Lock()
	for _, n := range t.current() {
		confirmed := n.confirmed.Load() && n.confirmed.Swap(false)
		expired := !now.Before(n.deadline)
		switch n.loadState() {
		case Incomplete:
			switch {
			case !expired:
			case n.probes < t.cfg.MaxMulticastProbes:
				events = append(events, t.probe(n, link.Broadcast, now))
			default:
				events = append(events, t.fail(n, now))
			}
		case Reachable:
			switch {
			case confirmed:
				n.deadline = now.Add(t.cfg.ReachableTime)
			case expired:
				t.enter(n, Stale, now)
			}
		case Stale:
			// An unused Stale entry is collected, a kept one re-probed. The
			// CAS loses if a Lookup has just used the entry; the next Tick
			// sees it in Delay.
			switch {
			case !expired:
			case n.kept && n.state.CompareAndSwap(uint32(Stale), uint32(Probe)):
				t.enter(n, Probe, now)
				events = append(events, t.probe(n, n.hardwareAddr(), now))
			case !n.kept && n.state.CompareAndSwap(uint32(Stale), uint32(Failed)):
				dead = append(dead, n)
			}
		case Delay:
			if n.timerFor != Delay {
				// A Lookup used the Stale entry since the last Tick.
				t.enter(n, Delay, now)
			}
			switch {
			case confirmed:
				t.enter(n, Reachable, now)
			case !now.Before(n.deadline):
				t.enter(n, Probe, now)
				events = append(events, t.probe(n, n.hardwareAddr(), now))
			}
		case Probe:
			switch {
			case !expired:
			case n.probes < t.cfg.MaxUnicastProbes:
				events = append(events, t.probe(n, n.hardwareAddr(), now))
			case !n.candidate.IsZero():
				// The known MAC stopped answering after a conflicting
				// claim: take the claimed MAC and probe it in turn.
				mac := n.candidate
				n.mac.Store(packMAC(mac))
				t.enter(n, Probe, now)
				t.counters.macChanges.Add(1)
				events = append(events, t.probe(n, mac, now))
			default:
				events = append(events, t.fail(n, now))
			}
		case Failed:
			if expired {
				dead = append(dead, n)
			}
		}
	}
	t.remove(dead)
	t.mu.Unlock()
	emit(t.hooks, &t.counters, events)
}

// fail moves n to Failed and returns the Failed event carrying its queue.
// The caller holds mu.
func (t *Table) fail(n *neighbour, now time.Time) event {
	queued := n.queue
	n.queue = nil
	t.enter(n, Failed, now)
	t.counters.failures.Add(1)
	return event{kind: failed, key: n.key, queued: queued}
}
