package arp

import (
	"bytes"
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/taprouter/taprouter/link"
)

// Table is the router's neighbour table. Lookup and Confirm are lock-free
// and allocation-free; the other methods take a mutex. All methods are safe
// for concurrent use.
//
// Neighbour addresses are IPv4: Lookup and Confirm treat any other address
// as unknown, and the other methods panic on one.
type Table struct {
	cfg   Config
	hooks Hooks
	clock Clock

	// neighbours is an immutable map, replaced (copy on write, under mu)
	// when an entry is added or removed. Entries change state in place
	// through their atomic fields.
	neighbours atomic.Pointer[map[key]*neighbour]

	mu       sync.Mutex
	counters counters
}

// New returns an empty table that reports to hooks and reads time from
// clock.
func New(cfg Config, hooks Hooks, clock Clock) (*Table, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if hooks == nil || clock == nil {
		panic("arp: New needs Hooks and a Clock")
	}
	t := &Table{cfg: cfg, hooks: hooks, clock: clock}
	t.publish(make(map[key]*neighbour))
	return t, nil
}

// Lookup returns the MAC of ip on port if it is known (Reachable, Stale,
// Delay, Probe or Static). Using a Stale entry moves it to Delay, which
// starts re-probing unless the neighbour is confirmed within DelayTime. On a
// miss the caller hands the packet to Enqueue.
func (t *Table) Lookup(port uint32, ip netip.Addr) (link.HardwareAddr, bool) {
	k, ok := makeKey(port, ip)
	if !ok {
		return link.HardwareAddr{}, false
	}
	n := t.current()[k]
	if n == nil {
		return link.HardwareAddr{}, false
	}
	switch n.loadState() {
	case Reachable, Delay, Probe, Static:
	case Stale:
		n.state.CompareAndSwap(uint32(Stale), uint32(Delay))
	default:
		return link.HardwareAddr{}, false
	}
	return n.hardwareAddr(), true
}

// Confirm records that traffic from ip on port was seen: it keeps a
// Reachable entry Reachable and brings a Delay entry back to Reachable at the
// next Tick. It does nothing for unknown neighbours.
func (t *Table) Confirm(port uint32, ip netip.Addr) {
	k, ok := makeKey(port, ip)
	if !ok {
		return
	}
	if n := t.current()[k]; n != nil && !n.confirmed.Load() {
		n.confirmed.Store(true)
	}
}

// Enqueue takes a packet for ip on port after Lookup missed. The packet is
// copied. If the neighbour is unknown, an Incomplete entry is created and a
// broadcast request sent; while it is Incomplete, up to QueueLen packets wait
// for Hooks.Resolved or Hooks.Failed. A packet for a Failed neighbour (or one
// refused because the table is full) goes to Hooks.Failed at once; one for a
// neighbour that got resolved since the Lookup goes to Hooks.Resolved at once.
func (t *Table) Enqueue(port uint32, ip netip.Addr, pkt []byte) {
	k := mustKey(port, ip)
	now := t.clock.Now()
	var ev event
	t.mu.Lock()
	n := t.current()[k]
	switch {
	case n == nil && !t.makeRoom():
		t.counters.tableFull.Add(1)
		ev = event{kind: failed, key: k, queued: [][]byte{bytes.Clone(pkt)}}
	case n == nil:
		n = t.insert(k)
		t.enter(n, Incomplete, now)
		t.push(n, pkt)
		ev = t.probe(n, link.Broadcast, now)
	case n.loadState() == Incomplete:
		t.push(n, pkt)
	case n.loadState() == Failed:
		ev = event{kind: failed, key: k, queued: [][]byte{bytes.Clone(pkt)}}
	default:
		ev = event{kind: resolved, key: k, mac: n.hardwareAddr(), queued: [][]byte{bytes.Clone(pkt)}}
	}
	t.mu.Unlock()
	if ev.kind != 0 {
		emit(t.hooks, &t.counters, []event{ev})
	}
}

// Learned is what Learn did with a MAC.
type Learned uint8

const (
	// Taken: the entry is now Reachable at the MAC (it was new, unresolved
	// or already at that MAC).
	Taken Learned = iota
	// Conflict: the entry has a usable MAC and this one differs. The known
	// MAC is kept and re-probed with unicast requests; the claimed one is
	// remembered and is taken only if the known MAC stops answering (then
	// it is probed in turn). Conflict is returned for the packet that
	// starts the re-probe.
	Conflict
	// ConflictProbing: another conflicting MAC while the known one is
	// already being re-probed; it replaces the remembered candidate.
	ConflictProbing
	// Refused: a Static entry at another MAC, or a new neighbour while the
	// table is full. Nothing changed.
	Refused
)

// Learn records that ip on port claims to be at mac, from an ARP reply or
// from a request ip sent. A new, Incomplete or Failed entry becomes
// Reachable at mac and its queued packets go to Hooks.Resolved; so does an
// entry already at mac. A claim that contradicts a usable MAC (Reachable,
// Stale, Delay or Probe) does not replace it: anyone on the link can send
// an unsolicited reply, so the known MAC is re-probed first (RFC 5227's
// conflict detection, and stronger than the kernel's locktime, which only
// holds the old MAC for a second). Every contradicting claim is counted in
// Stats.Conflicts. Static entries are left alone.
func (t *Table) Learn(port uint32, ip netip.Addr, mac link.HardwareAddr) Learned {
	k := mustKey(port, ip)
	now := t.clock.Now()
	t.counters.learned.Add(1)
	t.mu.Lock()
	n := t.current()[k]
	switch {
	case n == nil && !t.makeRoom():
		t.mu.Unlock()
		t.counters.tableFull.Add(1)
		return Refused
	case n == nil:
		n = t.insert(k)
	case n.hardwareAddr() == mac && n.loadState() != Failed:
		// Confirmed: a Static entry stays Static, any other becomes
		// Reachable below.
		if n.loadState() == Static {
			t.mu.Unlock()
			return Taken
		}
	case n.loadState() == Static:
		t.mu.Unlock()
		t.counters.conflicts.Add(1)
		return Refused
	case n.loadState().Valid():
		t.counters.conflicts.Add(1)
		if n.loadState() == Probe && !n.candidate.IsZero() {
			n.candidate = mac
			t.mu.Unlock()
			return ConflictProbing
		}
		t.enter(n, Probe, now)
		n.candidate = mac
		ev := t.probe(n, n.hardwareAddr(), now)
		t.mu.Unlock()
		emit(t.hooks, &t.counters, []event{ev})
		return Conflict
	}
	n.mac.Store(packMAC(mac))
	t.enter(n, Reachable, now)
	queued := n.queue
	n.queue = nil
	t.mu.Unlock()
	if len(queued) > 0 {
		t.hooks.Resolved(port, ip, mac, queued)
	}
	return Taken
}

// SetStatic adds or replaces a Static entry, which never expires and which
// Learn does not change. Packets queued for it go to Hooks.Resolved.
// MaxEntries does not apply.
func (t *Table) SetStatic(port uint32, ip netip.Addr, mac link.HardwareAddr) {
	k := mustKey(port, ip)
	now := t.clock.Now()
	t.mu.Lock()
	n := t.current()[k]
	if n == nil {
		n = t.insert(k)
	}
	n.mac.Store(packMAC(mac))
	t.enter(n, Static, now)
	queued := n.queue
	n.queue = nil
	t.mu.Unlock()
	if len(queued) > 0 {
		t.hooks.Resolved(port, ip, mac, queued)
	}
}

// Remove deletes the entry for ip on port, Static or not, and drops its
// queued packets.
func (t *Table) Remove(port uint32, ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.current()[mustKey(port, ip)]; n != nil {
		t.remove([]*neighbour{n})
	}
}

// RemovePort deletes every entry on port and drops their queued packets;
// the router calls it when a pod's port goes away.
func (t *Table) RemovePort(port uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var dead []*neighbour
	for k, n := range t.current() {
		if k.port() == port {
			dead = append(dead, n)
		}
	}
	t.remove(dead)
}

// Peek returns the MAC and state of ip on port, like Lookup but without
// changing the entry's state (no Stale to Delay), for callers that only
// watch the table. It is lock-free and allocation-free.
func (t *Table) Peek(port uint32, ip netip.Addr) (link.HardwareAddr, State, bool) {
	k, ok := makeKey(port, ip)
	if !ok {
		return link.HardwareAddr{}, 0, false
	}
	n := t.current()[k]
	if n == nil {
		return link.HardwareAddr{}, 0, false
	}
	return n.hardwareAddr(), n.loadState(), true
}

// Entry is a snapshot of one neighbour, for ctl and tests.
type Entry struct {
	Port  uint32
	IP    netip.Addr
	MAC   link.HardwareAddr // zero while Incomplete
	State State
	// Age is the time since the entry entered its state.
	Age time.Duration
	// Queued is the number of packets waiting for resolution.
	Queued int
}

// Entries returns a snapshot of the table sorted by port and address.
func (t *Table) Entries() []Entry {
	now := t.clock.Now()
	t.mu.Lock()
	m := t.current()
	entries := make([]Entry, 0, len(m))
	for k, n := range m {
		entries = append(entries, Entry{
			Port:   k.port(),
			IP:     k.ip(),
			MAC:    n.hardwareAddr(),
			State:  n.loadState(),
			Age:    now.Sub(n.entered),
			Queued: len(n.queue),
		})
	}
	t.mu.Unlock()
	slices.SortFunc(entries, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), a.IP.Compare(b.IP))
	})
	return entries
}

func (t *Table) current() map[key]*neighbour { return *t.neighbours.Load() }

func (t *Table) publish(m map[key]*neighbour) { t.neighbours.Store(&m) }

// insert adds a new entry. The caller holds mu and sets its state.
func (t *Table) insert(k key) *neighbour {
	cur := t.current()
	m := make(map[key]*neighbour, len(cur)+1)
	for k, n := range cur {
		m[k] = n
	}
	n := &neighbour{key: k}
	m[k] = n
	t.publish(m)
	return n
}

// remove deletes entries and drops their queues. The caller holds mu.
func (t *Table) remove(dead []*neighbour) {
	if len(dead) == 0 {
		return
	}
	cur := t.current()
	m := make(map[key]*neighbour, len(cur))
	for k, n := range cur {
		m[k] = n
	}
	for _, n := range dead {
		delete(m, n.key)
		t.counters.queueDrops.Add(uint64(len(n.queue)))
		n.queue = nil
	}
	t.publish(m)
}

// makeRoom reports whether a new entry may be added, first evicting unused
// Stale and Failed entries if the table is full (the kernel's forced GC).
// The caller holds mu.
func (t *Table) makeRoom() bool {
	cur := t.current()
	if len(cur) < t.cfg.MaxEntries {
		return true
	}
	var dead []*neighbour
	for _, n := range cur {
		if n.loadState() == Failed || n.state.CompareAndSwap(uint32(Stale), uint32(Failed)) {
			dead = append(dead, n)
		}
	}
	t.remove(dead)
	return len(t.current()) < t.cfg.MaxEntries
}

// enter moves n to state s and starts the state's timer; it forgets a
// conflicting candidate MAC. The caller holds mu.
func (t *Table) enter(n *neighbour, s State, now time.Time) {
	n.state.Store(uint32(s))
	n.candidate = link.HardwareAddr{}
	n.timerFor = s
	n.entered = now
	n.probes = 0
	switch s {
	case Reachable:
		n.deadline = now.Add(t.cfg.ReachableTime)
	case Stale:
		n.deadline = now.Add(t.cfg.GCStaleTime)
	case Delay:
		n.deadline = now.Add(t.cfg.DelayTime)
	case Failed:
		n.deadline = now.Add(t.cfg.FailedTime)
	case Incomplete, Probe:
		n.deadline = now // probe sets the retransmit deadline
	case Static:
		n.deadline = time.Time{}
	}
}

// probe counts a request to dst for n and returns the SendRequest event.
// The caller holds mu.
func (t *Table) probe(n *neighbour, dst link.HardwareAddr, now time.Time) event {
	n.probes++
	n.deadline = now.Add(t.cfg.RetransTime)
	t.counters.requestsSent.Add(1)
	return event{kind: sendRequest, key: n.key, mac: dst}
}

// push queues a copy of pkt on n, dropping the oldest packet if the queue is
// full. The caller holds mu.
func (t *Table) push(n *neighbour, pkt []byte) {
	if t.cfg.QueueLen == 0 {
		t.counters.queueDrops.Add(1)
		return
	}
	if len(n.queue) == t.cfg.QueueLen {
		copy(n.queue, n.queue[1:])
		n.queue[len(n.queue)-1] = nil
		n.queue = n.queue[:len(n.queue)-1]
		t.counters.queueDrops.Add(1)
	}
	n.queue = append(n.queue, bytes.Clone(pkt))
}
