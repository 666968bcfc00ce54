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
	kept     map[key]struct{} // under mu: the neighbours Keep was called for
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
	t := &Table{cfg: cfg, hooks: hooks, clock: clock, kept: make(map[key]struct{})}
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

// Claim is the kind of ARP packet Learn is told about, which decides
// whether it may create an entry.
type Claim uint8

const (
	// Reply: an ARP reply. It completes an entry being resolved
	// (Incomplete) and confirms or contradicts a usable one, but never
	// creates one: nothing asked for a reply for a neighbour the table
	// has no entry for (or a Failed one, whose requests have stopped), and
	// anyone on the link can send one. This is the kernel's default
	// (arp_accept=0).
	Reply Claim = iota + 1
	// RequestForUs: a request for one of the router's own addresses. Its
	// sender will expect an answer, so, as the kernel does, it creates a
	// Stale entry (or completes an Incomplete one as Stale): the MAC is
	// used, and re-probed by unicast before it is trusted as Reachable.
	RequestForUs
	// OtherRequest: any other request (a gratuitous ARP, a request for
	// another host): like a reply, it creates no entry; it completes an
	// Incomplete entry as Stale.
	OtherRequest
)

// ClaimOf returns the kind of ARP packet p is for a router whose own
// address is local. Operations other than OpRequest and OpReply are the
// caller's to refuse.
func ClaimOf(p *Packet, local netip.Addr) Claim {
	switch {
	case p.Op == OpReply:
		return Reply
	case p.TargetIP == local:
		return RequestForUs
	}
	return OtherRequest
}

// Learned is what Learn did with a MAC.
type Learned uint8

const (
	// Taken: the entry is now at the MAC: Reachable (it was being
	// resolved and this is a reply, or it was already at that MAC) or
	// Stale (a request created it or completed its resolution).
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
	// Unsolicited: a Reply or OtherRequest for a neighbour without an
	// entry, or with a Failed one: nothing asked for it, nothing changed
	// (see Reply). Counted in Stats.Unsolicited.
	Unsolicited
)

// Learn records that ip on port claims to be at mac, from an ARP packet of
// kind c. An Incomplete entry takes mac, Reachable from a reply and Stale
// from a request, and its queued packets go to Hooks.Resolved; so does an
// entry already at mac, which becomes Reachable. Only a request for one of
// our addresses creates an entry (Stale), or revives a Failed one; any
// other claim for them is Unsolicited. A claim that contradicts a usable
// MAC (Reachable, Stale, Delay or Probe) does not replace it: anyone on the
// link can send an unsolicited reply, so the known MAC is re-probed first
// (RFC 5227's conflict detection, and stronger than the kernel's locktime,
// which only holds the old MAC for a second). Every contradicting claim is
// counted in Stats.Conflicts. Static entries are left alone.
func (t *Table) Learn(port uint32, ip netip.Addr, mac link.HardwareAddr, c Claim) Learned {
	k := mustKey(port, ip)
	now := t.clock.Now()
	t.counters.learned.Add(1)
	t.mu.Lock()
	n := t.current()[k]
	switch {
	case (n == nil || n.loadState() == Failed) && c != RequestForUs:
		t.mu.Unlock()
		t.counters.unsolicited.Add(1)
		return Unsolicited
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
	// n is new, Incomplete or Failed (only from a request), or at mac.
	s := Reachable
	if !n.loadState().Valid() && c != Reply {
		s = Stale
	}
	n.mac.Store(packMAC(mac))
	t.enter(n, s, now)
	queued := n.queue
	n.queue = nil
	t.mu.Unlock()
	if len(queued) > 0 {
		t.hooks.Resolved(port, ip, mac, queued)
	}
	return Taken
}

// Resolve starts resolving ip on port before a packet needs it: if the
// table has no entry for it, an Incomplete one is created and a broadcast
// request sent, so that the neighbour's reply is one Learn takes. It does
// nothing if there is an entry, or if the table is full (counted in
// Stats.TableFull).
func (t *Table) Resolve(port uint32, ip netip.Addr) { t.resolve(port, ip, false) }

// Keep is Resolve for a neighbour the table must keep resolved, such as a
// configured peer node: an unused Stale entry for it is re-probed with
// unicast requests instead of being collected, and it is not evicted when
// the table is full. An entry that stops answering fails and is removed
// as usual, and the next entry for ip is kept again. Without this, once
// an idle neighbour's entry was collected, the first claim for its address
// would meet no known MAC to defend (see Learn). Remove and RemovePort end
// it.
func (t *Table) Keep(port uint32, ip netip.Addr) { t.resolve(port, ip, true) }

func (t *Table) resolve(port uint32, ip netip.Addr, keep bool) {
	k := mustKey(port, ip)
	now := t.clock.Now()
	t.mu.Lock()
	if keep {
		t.kept[k] = struct{}{}
	}
	n := t.current()[k]
	switch {
	case n != nil:
		n.kept = n.kept || keep
		t.mu.Unlock()
		return
	case !t.makeRoom():
		t.mu.Unlock()
		t.counters.tableFull.Add(1)
		return
	}
	n = t.insert(k)
	t.enter(n, Incomplete, now)
	ev := t.probe(n, link.Broadcast, now)
	t.mu.Unlock()
	emit(t.hooks, &t.counters, []event{ev})
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

// Remove deletes the entry for ip on port, Static or not, drops its
// queued packets and ends Keep for it.
func (t *Table) Remove(port uint32, ip netip.Addr) {
	k := mustKey(port, ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.kept, k)
	if n := t.current()[k]; n != nil {
		t.remove([]*neighbour{n})
	}
}

// RemovePort deletes every entry on port, drops their queued packets and
// ends Keep for them; the router calls it when a pod's port goes away.
func (t *Table) RemovePort(port uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.kept {
		if k.port() == port {
			delete(t.kept, k)
		}
	}
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
	_, kept := t.kept[k]
	n := &neighbour{key: k, kept: kept}
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
// Stale entries that are not kept and Failed entries if the table is full
// (the kernel's forced GC). The caller holds mu.
func (t *Table) makeRoom() bool {
	cur := t.current()
	if len(cur) < t.cfg.MaxEntries {
		return true
	}
	var dead []*neighbour
	for _, n := range cur {
		if n.loadState() == Failed || (!n.kept && n.state.CompareAndSwap(uint32(Stale), uint32(Failed))) {
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
