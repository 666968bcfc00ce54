package arp

import (
	"bytes"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type request struct {
	port   uint32
	target netip.Addr
	dst    link.HardwareAddr
}

type handover struct {
	port   uint32
	target netip.Addr
	mac    link.HardwareAddr // zero for Failed
	queued [][]byte
}

// recorder is a Hooks that records every call; onCall, if set, runs inside
// each call.
type recorder struct {
	mu       sync.Mutex
	requests []request
	resolved []handover
	failed   []handover
	onCall   func()
	sendErr  error // what SendRequest returns
}

func (r *recorder) SendRequest(port uint32, target netip.Addr, dst link.HardwareAddr) error {
	r.mu.Lock()
	r.requests = append(r.requests, request{port, target, dst})
	err := r.sendErr
	r.mu.Unlock()
	r.callback()
	return err
}

func (r *recorder) Resolved(port uint32, target netip.Addr, mac link.HardwareAddr, queued [][]byte) {
	r.mu.Lock()
	r.resolved = append(r.resolved, handover{port, target, mac, queued})
	r.mu.Unlock()
	r.callback()
}

func (r *recorder) Failed(port uint32, target netip.Addr, queued [][]byte) {
	r.mu.Lock()
	r.failed = append(r.failed, handover{port, target, link.HardwareAddr{}, queued})
	r.mu.Unlock()
	r.callback()
}

func (r *recorder) callback() {
	if r.onCall != nil {
		r.onCall()
	}
}

// takeRequests returns and forgets the requests recorded so far.
func (r *recorder) takeRequests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.requests
	r.requests = nil
	return reqs
}

// harness is a table with a fake clock and recorded hooks.
type harness struct {
	t     *testing.T
	table *Table
	clock *fakeClock
	hooks *recorder
}

const tickInterval = 100 * time.Millisecond

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{t: t, clock: &fakeClock{now: time.Unix(1_000_000, 0)}, hooks: &recorder{}}
	table, err := New(cfg, h.hooks, h.clock)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.table = table
	return h
}

// run advances the clock by d, ticking every tickInterval like the router.
func (h *harness) run(d time.Duration) {
	for end := h.clock.Now().Add(d); h.clock.Now().Before(end); {
		h.clock.advance(tickInterval)
		h.table.Tick()
	}
}

// entry returns the entry for ip on port, failing the test if there is none.
func (h *harness) entry(port uint32, ip netip.Addr) Entry {
	h.t.Helper()
	for _, e := range h.table.Entries() {
		if e.Port == port && e.IP == ip {
			return e
		}
	}
	h.t.Fatalf("no entry for %v on port %d; entries: %+v", ip, port, h.table.Entries())
	return Entry{}
}

func (h *harness) wantState(port uint32, ip netip.Addr, want State) {
	h.t.Helper()
	if got := h.entry(port, ip).State; got != want {
		h.t.Fatalf("%v on port %d is %v, want %v", ip, port, got, want)
	}
}

func (h *harness) wantNoEntry(port uint32, ip netip.Addr) {
	h.t.Helper()
	for _, e := range h.table.Entries() {
		if e.Port == port && e.IP == ip {
			h.t.Fatalf("entry for %v on port %d still present: %+v", ip, port, e)
		}
	}
}

func (h *harness) wantRequests(want ...request) {
	h.t.Helper()
	if got := h.hooks.takeRequests(); !slices.Equal(got, want) {
		h.t.Fatalf("requests = %+v, want %+v", got, want)
	}
}

// resolve makes ip on port Reachable at mac as a resolution does: Resolve
// sends a request (taken off the recorder) and mac is the reply.
func (h *harness) resolve(port uint32, ip netip.Addr, mac link.HardwareAddr) {
	h.t.Helper()
	h.table.Resolve(port, ip)
	h.wantRequests(bcast(port, ip))
	if got := h.table.Learn(port, ip, mac, Reply); got != Taken {
		h.t.Fatalf("Learn of the reply = %v, want Taken", got)
	}
	h.wantState(port, ip, Reachable)
}

// makeStale resolves ip on port and lets ReachableTime pass.
func (h *harness) makeStale(port uint32, ip netip.Addr, mac link.HardwareAddr) {
	h.t.Helper()
	h.resolve(port, ip, mac)
	h.run(DefaultConfig().ReachableTime)
	h.wantState(port, ip, Stale)
}

const port1, port2 = 1, 2

var (
	ip1   = netip.MustParseAddr("10.244.1.5")
	ip2   = netip.MustParseAddr("10.244.1.6")
	ip3   = netip.MustParseAddr("10.244.1.7")
	mac1  = link.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	mac2  = link.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	pktA  = []byte("packet A")
	pktB  = []byte("packet B")
	pktC  = []byte("packet C")
	pktD  = []byte("packet D")
	bcast = func(port uint32, ip netip.Addr) request { return request{port, ip, link.Broadcast} }
)

func wantPackets(t *testing.T, what string, got [][]byte, want ...[]byte) {
	t.Helper()
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

func TestIncompleteToReachableOnReply(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit in an empty table")
	}
	buf := bytes.Clone(pktA)
	h.table.Enqueue(port1, ip1, buf)
	buf[0] = 'X' // the table must have copied the packet
	h.table.Enqueue(port1, ip1, pktB)
	h.wantRequests(bcast(port1, ip1)) // one request, not one per packet
	if e := h.entry(port1, ip1); e.State != Incomplete || e.Queued != 2 || !e.MAC.IsZero() {
		t.Fatalf("entry = %+v, want Incomplete with 2 queued and no MAC", e)
	}
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit an Incomplete entry")
	}

	h.run(500 * time.Millisecond)
	if got := h.table.Learn(port1, ip1, mac1, Reply); got != Taken {
		t.Errorf("Learn on an Incomplete entry = %v, want Taken", got)
	}
	h.wantState(port1, ip1, Reachable)
	if len(h.hooks.resolved) != 1 {
		t.Fatalf("Resolved called %d times, want 1", len(h.hooks.resolved))
	}
	r := h.hooks.resolved[0]
	if r.port != port1 || r.target != ip1 || r.mac != mac1 {
		t.Fatalf("Resolved(%d, %v, %v), want (%d, %v, %v)", r.port, r.target, r.mac, port1, ip1, mac1)
	}
	wantPackets(t, "resolved packets", r.queued, pktA, pktB)
	if mac, ok := h.table.Lookup(port1, ip1); !ok || mac != mac1 {
		t.Fatalf("Lookup = %v, %v; want %v, true", mac, ok, mac1)
	}
	h.run(5 * time.Second)
	h.wantRequests() // no retransmissions once resolved
	if s := h.table.Stats(); s.RequestsSent != 1 || s.Learned != 1 || s.Failures != 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

func TestIncompleteFailsAfterMulticastProbes(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.table.Enqueue(port1, ip1, pktA)
	h.table.Enqueue(port1, ip1, pktB)
	h.run(2900 * time.Millisecond)
	// Requests at 0s, 1s and 2s, all broadcast.
	h.wantRequests(bcast(port1, ip1), bcast(port1, ip1), bcast(port1, ip1))
	h.wantState(port1, ip1, Incomplete)
	if len(h.hooks.failed) != 0 {
		t.Fatal("Failed called before the last request timed out")
	}

	h.run(100 * time.Millisecond) // 3s: the third request timed out
	h.wantState(port1, ip1, Failed)
	h.wantRequests()
	if len(h.hooks.failed) != 1 {
		t.Fatalf("Failed called %d times, want 1", len(h.hooks.failed))
	}
	f := h.hooks.failed[0]
	if f.port != port1 || f.target != ip1 {
		t.Fatalf("Failed(%d, %v), want (%d, %v)", f.port, f.target, port1, ip1)
	}
	wantPackets(t, "failed packets", f.queued, pktA, pktB)
	if e := h.entry(port1, ip1); e.Queued != 0 {
		t.Fatalf("Failed entry still holds %d packets", e.Queued)
	}
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit a Failed entry")
	}
	if s := h.table.Stats(); s.RequestsSent != 3 || s.Failures != 1 {
		t.Fatalf("Stats = %+v, want 3 requests and 1 failure", s)
	}
}

func TestFailedNotReprobedWithinFailedTime(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.table.Enqueue(port1, ip1, pktA)
	h.run(3 * time.Second)
	h.wantState(port1, ip1, Failed)
	h.hooks.takeRequests()
	h.hooks.failed = nil

	h.run(cfg.FailedTime - 200*time.Millisecond)
	h.table.Enqueue(port1, ip1, pktB)
	h.wantRequests()
	if len(h.hooks.failed) != 1 {
		t.Fatalf("Failed called %d times for a packet to a Failed neighbour, want 1", len(h.hooks.failed))
	}
	wantPackets(t, "failed packets", h.hooks.failed[0].queued, pktB)
	h.wantState(port1, ip1, Failed)

	h.run(200 * time.Millisecond) // FailedTime has passed: the entry is gone
	h.wantNoEntry(port1, ip1)
	h.table.Enqueue(port1, ip1, pktC)
	h.wantRequests(bcast(port1, ip1))
	h.wantState(port1, ip1, Incomplete)
}

func TestReachableStaleDelayProbeReachable(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.resolve(port1, ip1, mac1)
	h.run(cfg.ReachableTime - tickInterval)
	h.wantState(port1, ip1, Reachable)
	h.run(tickInterval)
	h.wantState(port1, ip1, Stale)
	h.wantRequests()

	// Using the Stale entry returns its MAC and arms re-probing.
	if mac, ok := h.table.Lookup(port1, ip1); !ok || mac != mac1 {
		t.Fatalf("Lookup of a Stale entry = %v, %v; want %v, true", mac, ok, mac1)
	}
	h.wantState(port1, ip1, Delay)
	h.run(cfg.DelayTime)
	h.wantState(port1, ip1, Delay)
	h.wantRequests()
	h.run(tickInterval)
	h.wantState(port1, ip1, Probe)
	h.wantRequests(request{port1, ip1, mac1}) // unicast to the known MAC
	if mac, ok := h.table.Lookup(port1, ip1); !ok || mac != mac1 {
		t.Fatalf("Lookup during Probe = %v, %v; want %v, true", mac, ok, mac1)
	}

	h.run(500 * time.Millisecond)
	h.table.Learn(port1, ip1, mac1, Reply) // the reply
	h.wantState(port1, ip1, Reachable)
	h.run(cfg.RetransTime * 5)
	h.wantRequests()
	h.wantState(port1, ip1, Reachable)
}

func TestProbeFails(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.makeStale(port1, ip1, mac1)
	h.table.Lookup(port1, ip1)
	h.run(cfg.DelayTime + tickInterval)
	h.wantState(port1, ip1, Probe)
	h.run(2 * cfg.RetransTime)
	unicast := request{port1, ip1, mac1}
	h.wantRequests(unicast, unicast, unicast)
	h.wantState(port1, ip1, Probe)
	h.run(cfg.RetransTime)
	h.wantState(port1, ip1, Failed)
	h.wantRequests()
	if len(h.hooks.failed) != 1 || len(h.hooks.failed[0].queued) != 0 {
		t.Fatalf("Failed calls = %+v, want one with no packets", h.hooks.failed)
	}
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit a Failed entry")
	}
	if s := h.table.Stats(); s.Failures != 1 {
		t.Fatalf("Failures = %d, want 1", s.Failures)
	}
}

func TestConfirmKeepsReachable(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.resolve(port1, ip1, mac1)
	for range 6 {
		h.run(10 * time.Second)
		h.table.Confirm(port1, ip1)
	}
	h.run(tickInterval) // this Tick takes the last confirmation
	h.wantState(port1, ip1, Reachable)
	h.run(cfg.ReachableTime - tickInterval)
	h.wantState(port1, ip1, Reachable)
	h.run(tickInterval)
	h.wantState(port1, ip1, Stale) // ReachableTime after the Tick that took it
	h.table.Confirm(port1, ip1)
	h.run(tickInterval)
	h.wantState(port1, ip1, Stale) // like the kernel, a confirmation does not revive Stale
}

func TestConfirmEndsDelay(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.makeStale(port1, ip1, mac1)
	h.table.Lookup(port1, ip1)
	h.run(time.Second)
	h.wantState(port1, ip1, Delay)
	h.table.Confirm(port1, ip1)
	h.run(tickInterval)
	h.wantState(port1, ip1, Reachable)
	h.run(cfg.DelayTime * 2)
	h.wantRequests()
}

func TestUnusedStaleIsCollected(t *testing.T) {
	cfg := DefaultConfig()
	h := newHarness(t, cfg)
	h.makeStale(port1, ip1, mac1)
	h.run(cfg.GCStaleTime - tickInterval)
	h.wantState(port1, ip1, Stale)
	h.run(tickInterval)
	h.wantNoEntry(port1, ip1)
	h.wantRequests()
	if len(h.hooks.failed) != 0 {
		t.Fatal("collecting a Stale entry called Failed")
	}
}

func TestStaticNeverExpires(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.table.SetStatic(port1, ip1, mac1)
	h.run(10 * time.Minute)
	h.wantState(port1, ip1, Static)
	h.wantRequests()
	if got := h.table.Learn(port1, ip1, mac2, Reply); got != Refused {
		t.Errorf("Learn of another MAC for a Static entry = %v, want Refused", got)
	}
	if c := h.table.Stats().Conflicts; c != 1 {
		t.Errorf("Conflicts = %d, want 1", c)
	}
	if mac, ok := h.table.Lookup(port1, ip1); !ok || mac != mac1 {
		t.Fatalf("Lookup of a Static entry = %v, %v; want %v, true", mac, ok, mac1)
	}
	h.wantState(port1, ip1, Static)
	h.table.Remove(port1, ip1)
	h.wantNoEntry(port1, ip1)
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit a removed entry")
	}
}

func TestSetStaticResolvesQueue(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.table.Enqueue(port1, ip1, pktA)
	h.table.SetStatic(port1, ip1, mac2)
	if len(h.hooks.resolved) != 1 || h.hooks.resolved[0].mac != mac2 {
		t.Fatalf("Resolved calls = %+v, want one for %v", h.hooks.resolved, mac2)
	}
	wantPackets(t, "resolved packets", h.hooks.resolved[0].queued, pktA)
	h.run(5 * time.Second)
	h.wantRequests(bcast(port1, ip1)) // only the one before SetStatic
}

func TestQueueBound(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for _, p := range [][]byte{pktA, pktB, pktC, pktD} {
		h.table.Enqueue(port1, ip1, p)
	}
	if e := h.entry(port1, ip1); e.Queued != 3 {
		t.Fatalf("Queued = %d, want 3", e.Queued)
	}
	if d := h.table.Stats().QueueDrops; d != 1 {
		t.Fatalf("QueueDrops = %d, want 1", d)
	}
	h.table.Learn(port1, ip1, mac1, Reply)
	wantPackets(t, "resolved packets", h.hooks.resolved[0].queued, pktB, pktC, pktD) // the oldest was dropped
}

func TestQueueDisabled(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueLen = 0
	h := newHarness(t, cfg)
	h.table.Enqueue(port1, ip1, pktA)
	h.wantRequests(bcast(port1, ip1))
	h.table.Learn(port1, ip1, mac1, Reply)
	if len(h.hooks.resolved) != 0 {
		t.Fatalf("Resolved called with QueueLen 0: %+v", h.hooks.resolved)
	}
	if d := h.table.Stats().QueueDrops; d != 1 {
		t.Fatalf("QueueDrops = %d, want 1", d)
	}
}

func TestEnqueueForResolvedNeighbour(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	// A Lookup that missed just before Learn: the packet goes straight out.
	h.table.Enqueue(port1, ip1, pktA)
	h.wantRequests()
	if len(h.hooks.resolved) != 1 || h.hooks.resolved[0].mac != mac1 {
		t.Fatalf("Resolved calls = %+v, want one for %v", h.hooks.resolved, mac1)
	}
	wantPackets(t, "resolved packets", h.hooks.resolved[0].queued, pktA)
}

func TestRemovePort(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port1, ip1, mac1)
	h.resolve(port2, ip1, mac2)
	h.table.Enqueue(port1, ip2, pktA)
	h.table.Enqueue(port1, ip2, pktB)
	h.table.SetStatic(port1, ip3, mac2)
	h.hooks.takeRequests()

	h.table.RemovePort(port1)
	entries := h.table.Entries()
	if len(entries) != 1 || entries[0].Port != port2 || entries[0].IP != ip1 {
		t.Fatalf("entries after RemovePort = %+v, want only %v on port %d", entries, ip1, port2)
	}
	if _, ok := h.table.Lookup(port1, ip1); ok {
		t.Fatal("Lookup hit an entry of a removed port")
	}
	if mac, ok := h.table.Lookup(port2, ip1); !ok || mac != mac2 {
		t.Fatalf("Lookup on the other port = %v, %v; want %v, true", mac, ok, mac2)
	}
	if d := h.table.Stats().QueueDrops; d != 2 {
		t.Fatalf("QueueDrops = %d, want 2", d)
	}
	h.run(10 * time.Second)
	h.wantRequests() // the removed Incomplete entry is not retransmitted
	if len(h.hooks.failed) != 0 || len(h.hooks.resolved) != 0 {
		t.Fatalf("hooks called for removed entries: failed %+v resolved %+v", h.hooks.failed, h.hooks.resolved)
	}
}

func TestTableFull(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxEntries = 2
	h := newHarness(t, cfg)
	h.resolve(port1, ip1, mac1)
	h.resolve(port1, ip2, mac2)

	h.table.Enqueue(port1, ip3, pktA)
	h.wantRequests()
	if len(h.hooks.failed) != 1 {
		t.Fatalf("Failed calls = %d, want 1 for a packet refused by a full table", len(h.hooks.failed))
	}
	wantPackets(t, "failed packets", h.hooks.failed[0].queued, pktA)
	h.table.Learn(port2, ip3, mac1, RequestForUs)
	h.wantNoEntry(port2, ip3)
	if s := h.table.Stats(); s.TableFull != 2 {
		t.Fatalf("TableFull = %d, want 2", s.TableFull)
	}

	// A Stale entry is evicted to make room; a Reachable one is not.
	h.run(cfg.ReachableTime / 2)
	h.table.Learn(port1, ip2, mac2, Reply)
	h.run(cfg.ReachableTime / 2)
	h.wantState(port1, ip1, Stale)
	h.wantState(port1, ip2, Reachable)
	h.table.Enqueue(port1, ip3, pktB)
	h.wantRequests(bcast(port1, ip3))
	h.wantNoEntry(port1, ip1)
	h.wantState(port1, ip2, Reachable)

	// Static entries are added regardless.
	h.table.SetStatic(port2, ip1, mac1)
	h.wantState(port2, ip1, Static)
}

func TestHooksRunWithoutLock(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	calls := 0
	h.hooks.onCall = func() {
		calls++
		h.table.Entries() // would deadlock if the table's lock were held
		h.table.Learn(port2, ip2, mac2, Reply)
	}
	h.table.Enqueue(port1, ip1, pktA)      // SendRequest
	h.table.Learn(port1, ip1, mac1, Reply) // Resolved
	h.table.Enqueue(port1, ip3, pktA)      // SendRequest
	h.run(3 * time.Second)                 // SendRequest twice, then Failed
	if calls != 6 {
		t.Fatalf("hooks called %d times, want 6", calls)
	}
}

func TestEntriesSnapshot(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.resolve(port2, ip1, mac1)
	h.table.SetStatic(port1, ip2, mac2)
	h.table.Enqueue(port1, ip1, pktA)
	h.run(2 * time.Second)
	want := []Entry{
		{Port: port1, IP: ip1, State: Incomplete, Age: 2 * time.Second, Queued: 1},
		{Port: port1, IP: ip2, MAC: mac2, State: Static, Age: 2 * time.Second},
		{Port: port2, IP: ip1, MAC: mac1, State: Reachable, Age: 2 * time.Second},
	}
	if got := h.table.Entries(); !slices.Equal(got, want) {
		t.Fatalf("Entries = %+v\nwant %+v", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"zero RetransTime":      func(c *Config) { c.RetransTime = 0 },
		"negative FailedTime":   func(c *Config) { c.FailedTime = -time.Second },
		"no multicast probes":   func(c *Config) { c.MaxMulticastProbes = 0 },
		"negative queue length": func(c *Config) { c.QueueLen = -1 },
		"no entries":            func(c *Config) { c.MaxEntries = 0 },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if _, err := New(cfg, &recorder{}, SystemClock{}); err == nil {
			t.Errorf("%s: New accepted the config", name)
		}
	}
	if _, err := New(DefaultConfig(), &recorder{}, SystemClock{}); err != nil {
		t.Fatalf("New rejected DefaultConfig: %v", err)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Incomplete: "INCOMPLETE", Delay: "DELAY", Static: "STATIC", 0: "State(0)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	h.makeStale(port1, ip1, mac1)
	h.resolve(port1, ip2, mac2)
	for name, f := range map[string]func(){
		"hit":        func() { h.table.Lookup(port1, ip2) },
		"stale":      func() { h.table.Lookup(port1, ip1) },
		"miss":       func() { h.table.Lookup(port2, ip3) },
		"Confirm":    func() { h.table.Confirm(port1, ip2) },
		"Learn seen": func() { h.table.Learn(port1, ip2, mac2, Reply) },
	} {
		if n := allocs.PerOp(1000, 1, f); n != 0 {
			t.Errorf("%s: %g allocations per call, want 0", name, n)
		}
	}
}

func TestNonIPv4Neighbour(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	v6 := netip.MustParseAddr("fd00::5")
	if _, ok := h.table.Lookup(port1, v6); ok {
		t.Fatal("Lookup of an IPv6 address hit")
	}
	h.table.Confirm(port1, v6) // must not panic
	defer func() {
		if recover() == nil {
			t.Fatal("Learn of an IPv6 address did not panic")
		}
	}()
	h.table.Learn(port1, v6, mac1, Reply)
}
