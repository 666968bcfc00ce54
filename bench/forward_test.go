package bench

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/router"
	"github.com/taprouter/taprouter/tunnel"
)

var (
	node1, node2       = netip.MustParseAddr("192.168.49.2"), netip.MustParseAddr("192.168.49.3")
	podA, podC         = netip.MustParseAddr("10.244.0.4"), netip.MustParseAddr("10.244.1.5")
	macA, macC         = link.HardwareAddr{2, 0, 0, 0, 0, 4}, link.HardwareAddr{2, 0, 0, 0, 1, 5}
	gw1MAC, gw2MAC     = link.DerivedMAC(0x0e, 0x58, node1), link.DerivedMAC(0x0e, 0x58, node2)
	podCIDR1, podCIDR2 = netip.MustParsePrefix("10.244.0.0/24"), netip.MustParsePrefix("10.244.1.0/24")
	gw1, gw2           = netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("10.244.1.1")
)

// source is a pod's TAP that sends a template frame as fast as the router
// reads it, until its budget of frames is spent; it blocks then.
type source struct {
	frame  []byte
	mu     sync.Mutex
	cond   *sync.Cond
	budget int
	closed bool
}

func newSource(frame []byte) *source {
	s := &source{frame: frame}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *source) give(n int) {
	s.mu.Lock()
	s.budget += n
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *source) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	s.mu.Lock()
	for s.budget == 0 && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return 0, link.ErrClosed
	}
	n := min(s.budget, len(bufs))
	s.budget -= n
	s.mu.Unlock()
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], s.frame)
	}
	return n, nil
}

func (s *source) Write(bufs [][]byte, _ int) (int, error) { return len(bufs), nil } // ARP answers
func (s *source) BatchSize() int                          { return 64 }
func (s *source) MTU() int                                { return 1450 }
func (s *source) Name() string                            { return "source" }
func (s *source) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
	return nil
}

// sink is a pod's TAP that counts the IPv4 frames the router delivers and
// answers nothing; Read blocks until Close. After expect(n), reached
// receives once n more frames have arrived.
type sink struct {
	packets atomic.Int64
	target  atomic.Int64
	reached chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newSink() *sink {
	return &sink{reached: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (s *sink) expect(n int64) { s.target.Store(s.packets.Load() + n) }

func (s *sink) Read([][]byte, []int, int) (int, error) { <-s.closed; return 0, link.ErrClosed }
func (s *sink) Write(bufs [][]byte, offset int) (int, error) {
	n := int64(0)
	for _, b := range bufs {
		if binary.BigEndian.Uint16(b[offset+12:]) == 0x0800 {
			n++
		}
	}
	// Counted once per batch, as the router counts: a shared atomic per
	// frame would be the harness's cost, not the router's.
	if n > 0 {
		total, target := s.packets.Add(n), s.target.Load()
		if total >= target && total-n < target {
			s.reached <- struct{}{}
		}
	}
	return len(bufs), nil
}
func (s *sink) BatchSize() int { return 64 }
func (s *sink) MTU() int       { return 1450 }
func (s *sink) Name() string   { return "sink" }
func (s *sink) Close() error   { s.once.Do(func() { close(s.closed) }); return nil }

// wire is one direction of an in-memory underlay: a ring of datagram slots
// that WriteTo fills and ReadFrom drains, blocking when full or empty. It
// copies, as a socket would, and does not allocate.
type wire struct {
	mu       sync.Mutex
	notEmpty *sync.Cond
	notFull  *sync.Cond
	slots    [][]byte
	sizes    []int
	head, n  int
	closed   bool
	from     netip.AddrPort
}

func newWire(from netip.AddrPort) *wire {
	w := &wire{slots: make([][]byte, 1024), sizes: make([]int, 1024), from: from}
	for i := range w.slots {
		w.slots[i] = make([]byte, 2048)
	}
	w.notEmpty, w.notFull = sync.NewCond(&w.mu), sync.NewCond(&w.mu)
	return w
}

// conn is a node's UDP socket: it writes to out and reads from in.
type conn struct{ in, out *wire }

func (c *conn) ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error) {
	w := c.in
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.n == 0 && !w.closed {
		w.notEmpty.Wait()
	}
	if w.closed {
		return 0, link.ErrClosed
	}
	k := min(w.n, len(bufs))
	for i := range k {
		s := (w.head + i) % len(w.slots)
		sizes[i] = copy(bufs[i][offset:], w.slots[s][:w.sizes[s]])
		from[i] = w.from
	}
	w.head, w.n = (w.head+k)%len(w.slots), w.n-k
	w.notFull.Broadcast()
	return k, nil
}

func (c *conn) WriteTo(bufs [][]byte, _ []netip.AddrPort, offset int) (int, error) {
	w := c.out
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range bufs {
		for w.n == len(w.slots) && !w.closed {
			w.notFull.Wait()
		}
		if w.closed {
			return 0, link.ErrClosed
		}
		s := (w.head + w.n) % len(w.slots)
		w.sizes[s] = copy(w.slots[s], b[offset:])
		w.n++
	}
	w.notEmpty.Signal()
	return len(bufs), nil
}

func (c *conn) LocalAddr() netip.AddrPort { return c.out.from }
func (c *conn) BatchSize() int            { return 64 }
func (c *conn) Close() error {
	for _, w := range []*wire{c.in, c.out} {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.notEmpty.Broadcast()
		w.notFull.Broadcast()
	}
	return nil
}

// frame is pod A's UDP datagram of the given IP size to pod C, DF set.
func frame(size int) []byte {
	b := make([]byte, 14+size)
	copy(b[0:6], gw1MAC[:])
	copy(b[6:12], macA[:])
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[6], ip[8], ip[9] = 0x45, 0x40, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(size))
	a, c := podA.As4(), podC.As4()
	copy(ip[12:16], a[:])
	copy(ip[16:20], c[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:], 4000)
	binary.BigEndian.PutUint16(ip[22:], 5000)
	binary.BigEndian.PutUint16(ip[24:], uint16(size-20))
	return b
}

type backend func(link.DatagramConn, netip.Addr) (tunnel.Tunnel, error)

func vxlan(c link.DatagramConn, node netip.Addr) (tunnel.Tunnel, error) {
	return tunnel.NewVXLAN(c, tunnel.VXLANConfig{LocalMAC: tunnel.VTEPMAC(node)})
}

func udp(c link.DatagramConn, _ netip.Addr) (tunnel.Tunnel, error) {
	return tunnel.NewUDP(c, tunnel.UDPConfig{})
}

// newNodes returns node1's and node2's routers, each with its pod range
// and the other as its peer, joined by the in-memory underlay through the
// given backend. They have no pod port and are not started; the test's
// cleanup closes them.
func newNodes(tb testing.TB, newTunnel backend) (r1, r2 *router.Router) {
	w12 := newWire(netip.AddrPortFrom(node1, 8472))
	w21 := newWire(netip.AddrPortFrom(node2, 8472))
	t1, err := newTunnel(&conn{in: w21, out: w12}, node1)
	if err != nil {
		tb.Fatal(err)
	}
	t2, err := newTunnel(&conn{in: w12, out: w21}, node2)
	if err != nil {
		tb.Fatal(err)
	}
	r1, err = router.New(router.Config{PodCIDR: podCIDR1, Gateway: gw1, GatewayMAC: gw1MAC, NodeAddr: node1, Tunnel: t1, TunnelMTU: 1450})
	if err != nil {
		tb.Fatal(err)
	}
	r2, err = router.New(router.Config{PodCIDR: podCIDR2, Gateway: gw2, GatewayMAC: gw2MAC, NodeAddr: node2, Tunnel: t2, TunnelMTU: 1450})
	if err != nil {
		tb.Fatal(err)
	}
	r1.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR2}}})
	r2.SetPeers([]tunnel.Peer{{Node: "node1", Addr: node1, PodCIDRs: []netip.Prefix{podCIDR1}}})
	tb.Cleanup(func() { r1.Close(); r2.Close() })
	return r1, r2
}

// crossNode is pod A on node1 and pod C on node2, two running routers and
// the in-memory underlay between them.
type crossNode struct {
	src *source
	dst *sink
}

func newCrossNode(tb testing.TB, newTunnel backend, size int) *crossNode {
	r1, r2 := newNodes(tb, newTunnel)
	c := &crossNode{src: newSource(frame(size)), dst: newSink()}
	if _, err := r1.AddPodPort("pa", c.src, podA, macA, 1450); err != nil {
		tb.Fatal(err)
	}
	if _, err := r2.AddPodPort("pc", c.dst, podC, macC, 1450); err != nil {
		tb.Fatal(err)
	}
	if err := r2.SetStaticNeighbour("pc", podC, macC); err != nil { // as if pc had answered ARP
		tb.Fatal(err)
	}
	r1.Start()
	r2.Start()
	// What the first frames set up (goroutines reaching their loops, the
	// runtime's caches) is not what the benchmark measures.
	c.send(100000)
	return c
}

// send has pod A send n frames and waits until pod C has received them.
func (c *crossNode) send(n int) {
	c.dst.expect(int64(n))
	c.src.give(n)
	<-c.dst.reached
}

// benchCrossNode forwards b.N frames, of an IPv4 packet of size bytes, from
// pod A on node1 to pod C on node2 through two running routers and the
// in-memory underlay.
//
// Everything runs in this process: the source pod's TAP stub, node1's pod
// port and tunnel goroutines, the underlay (each datagram copied once into
// a ring slot and once out, as a socket copies), node2's, and the sink. So
// with -cpu=1 (GOMAXPROCS=1) all of it shares one core, and Mpps is what
// one core forwards through two routers, the devices' copies included;
// with -cpu=2 the goroutines spread over two cores and pay for handing
// batches across them (wake-ups, frames moving between caches).
//
// allocs/pkt is every allocation of the process during the run (the
// harness's, the runtime's, the routers') per packet, as a fraction.
// Mpps and ns/pkt are wall-clock; cpu-ns/pkt is the process's CPU time
// (getrusage: every thread, user and system) per packet, which a shared
// machine disturbs less: at -cpu=1 its inverse is the packet rate of one
// core that had nothing else to do.
//
// The full-size benchmarks (1450-byte packets, the pod MTU) spend about a
// third of their time in the three copies of each frame; the 64-byte ones
// (a UDP datagram of 36 bytes, the usual packet-rate test) measure what the
// routers and tunnels cost per packet, which does not depend on its size.
func benchCrossNode(b *testing.B, newTunnel backend, size int) {
	c := newCrossNode(b, newTunnel, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	mallocs := m.Mallocs
	b.ResetTimer()
	cpu := processCPU()
	c.send(b.N)
	cpu = processCPU() - cpu
	b.StopTimer()
	runtime.ReadMemStats(&m)
	// allocs/op rounds down to a whole number per packet; this does not,
	// so that one allocation per 10,000 packets shows.
	b.ReportMetric(float64(m.Mallocs-mallocs)/float64(b.N), "allocs/pkt")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/pkt")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
}

func BenchmarkCrossNodeVXLAN(b *testing.B)   { benchCrossNode(b, vxlan, 1450) }
func BenchmarkCrossNodeUDP(b *testing.B)     { benchCrossNode(b, udp, 1450) }
func BenchmarkCrossNodeVXLAN64(b *testing.B) { benchCrossNode(b, vxlan, 64) }
func BenchmarkCrossNodeUDP64(b *testing.B)   { benchCrossNode(b, udp, 64) }

// TestCrossNodeAllocatesNothing holds the whole in-process path (two
// routers, their goroutines, vxlan across) to zero allocations per packet.
// Goroutines handing batches to each other make the runtime allocate now
// and then on its own (a sudog for a blocked goroutine, a sync.Pool ring on
// another P, an M): a few allocations in some windows of 100,000 packets.
// So it measures ten windows and wants one with no allocation at all; a path
// that allocated once per 10,000 packets or more would allocate in every
// window. (The single-goroutine tests, router's TestForwardingAllocatesNothing
// and link's, hold their paths to exactly 0 in every run.)
func TestCrossNodeAllocatesNothing(t *testing.T) {
	allocs.SkipUnderRace(t)
	c := newCrossNode(t, vxlan, 1450)
	const windows, packets = 10, 100000
	var m runtime.MemStats
	perWindow := make([]uint64, windows)
	start := time.Now()
	for i := range perWindow {
		runtime.ReadMemStats(&m)
		before := m.Mallocs
		c.send(packets)
		runtime.ReadMemStats(&m)
		perWindow[i] = m.Mallocs - before
	}
	elapsed := time.Since(start)
	if best := float64(slices.Min(perWindow)) / packets; best != 0 {
		t.Errorf("allocations in %d windows of %d packets: %v; want a window with 0 (best %g per packet)", windows, packets, perWindow, best)
	}
	t.Logf("two routers in one process, vxlan across: %.0f ns/pkt; allocations per window of %d packets: %v",
		float64(elapsed.Nanoseconds())/(windows*packets), packets, perWindow)
}
