package arp

import "sync/atomic"

// Stats counts the table's activity since it was created.
type Stats struct {
	// RequestsSent counts SendRequest calls, broadcast and unicast.
	RequestsSent uint64
	// Learned counts Learn calls: replies and requests learned from.
	Learned uint64
	// Unsolicited counts Learn calls that changed nothing because nothing
	// asked for them: a reply, or a request not for us, for a neighbour
	// without an entry or with a Failed one (Learn returned Unsolicited).
	Unsolicited uint64
	// MACChanges counts known MACs replaced by a conflicting claim after
	// the known MAC stopped answering its re-probes.
	MACChanges uint64
	// Conflicts counts Learn calls whose MAC contradicted a usable or
	// Static entry's (see Learn): a neighbour that changed its MAC, or
	// another host answering for its address.
	Conflicts uint64
	// SendFailures counts requests Hooks.SendRequest could not transmit.
	SendFailures uint64
	// QueueDrops counts queued packets dropped without being handed to a
	// hook: the oldest of a full queue, and the queue of a removed entry.
	QueueDrops uint64
	// Failures counts neighbours that moved to Failed: Incomplete entries
	// nobody answered and Probe entries that stopped answering.
	Failures uint64
	// TableFull counts new neighbours refused because MaxEntries was reached.
	TableFull uint64
}

type counters struct {
	requestsSent atomic.Uint64
	learned      atomic.Uint64
	unsolicited  atomic.Uint64
	macChanges   atomic.Uint64
	conflicts    atomic.Uint64
	sendFailures atomic.Uint64
	queueDrops   atomic.Uint64
	failures     atomic.Uint64
	tableFull    atomic.Uint64
}

// Stats returns a snapshot of the table's counters.
func (t *Table) Stats() Stats {
	c := &t.counters
	return Stats{
		RequestsSent: c.requestsSent.Load(),
		Learned:      c.learned.Load(),
		Unsolicited:  c.unsolicited.Load(),
		MACChanges:   c.macChanges.Load(),
		Conflicts:    c.conflicts.Load(),
		SendFailures: c.sendFailures.Load(),
		QueueDrops:   c.queueDrops.Load(),
		Failures:     c.failures.Load(),
		TableFull:    c.tableFull.Load(),
	}
}

// Each calls fn with every counter's name (snake_case, as /v1/stats shows
// it after a prefix) and value. A new field must be listed here.
func (s Stats) Each(fn func(name string, v uint64)) {
	fn("requests_sent", s.RequestsSent)
	fn("learned", s.Learned)
	fn("unsolicited", s.Unsolicited)
	fn("mac_changes", s.MACChanges)
	fn("conflicts", s.Conflicts)
	fn("send_failures", s.SendFailures)
	fn("queue_drops", s.QueueDrops)
	fn("failures", s.Failures)
	fn("table_full", s.TableFull)
}
