package router

import (
	"net/netip"
	"runtime"
	"runtime/debug"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// discardDevice is a link.Device whose Write counts and forgets; Read is
// never called by the benchmarks (they feed the worker directly).
type discardDevice struct {
	mtu     int
	packets int
}

func (d *discardDevice) Read([][]byte, []int, int) (int, error) { return 0, link.ErrClosed }
func (d *discardDevice) Write(bufs [][]byte, _ int) (int, error) {
	d.packets += len(bufs)
	return len(bufs), nil
}
func (d *discardDevice) BatchSize() int { return 64 }
func (d *discardDevice) MTU() int       { return d.mtu }
func (d *discardDevice) Name() string   { return "discard" }
func (d *discardDevice) Close() error   { return nil }

// discardConn is a link.DatagramConn that counts what is sent.
type discardConn struct{ packets int }

func (c *discardConn) ReadFrom([][]byte, []int, []netip.AddrPort, int) (int, error) {
	return 0, link.ErrClosed
}
func (c *discardConn) WriteTo(bufs [][]byte, _ []netip.AddrPort, _ int) (int, error) {
	c.packets += len(bufs)
	return len(bufs), nil
}
func (c *discardConn) LocalAddr() netip.AddrPort { return netip.AddrPortFrom(node1, 8472) }
func (c *discardConn) BatchSize() int            { return 64 }
func (c *discardConn) Close() error              { return nil }

// benchForward measures the forwarding path of a batch of 64 full-size
// frames from pod A: decode, pipeline, Ethernet header or encapsulation,
// and the egress write. The router is not started: the benchmark drives
// the ingress worker directly, so no goroutine or channel is measured.
func benchForward(b *testing.B, dst netip.Addr, cfg Config) { benchForwardSetup(b, dst, cfg, nil) }

// benchForwardSetup is benchForward with setup run on the router before the
// first round.
func benchForwardSetup(b *testing.B, dst netip.Addr, cfg Config, setup func(*Router)) {
	benchForwardTo(b, cfg, setup, dst)
}

// benchForwardTo is benchForwardSetup with packet i of each batch to
// dsts[i%len(dsts)].
func benchForwardTo(b *testing.B, cfg Config, setup func(*Router), dsts ...netip.Addr) {
	pa := netip.MustParseAddr("10.244.0.4")
	paMAC := link.HardwareAddr{2, 0, 0, 0, 0, 4}
	cfg.PodCIDR, cfg.Gateway, cfg.GatewayMAC, cfg.NodeAddr = podCIDR0, gateway, gwMAC, node1
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	in := &discardDevice{mtu: 1450}
	out := &discardDevice{mtu: 1450}
	pA, _ := r.AddPodPort("pa", in, pa, paMAC, 1450)
	pB, _ := r.AddPodPort("pb", out, netip.MustParseAddr("10.244.0.5"), link.HardwareAddr{2, 0, 0, 0, 0, 5}, 1450)
	r.neigh.SetStatic(pB.ID, netip.MustParseAddr("10.244.0.5"), link.HardwareAddr{2, 0, 0, 0, 0, 5})
	if cfg.Tunnel != nil {
		r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}})
	}
	if setup != nil {
		setup(r)
	}
	frames := make([][]byte, len(dsts))
	for i, dst := range dsts {
		frames[i] = ethernet(gwMAC, paMAC, etherTypeIP, ipv4(pa, dst, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 1450-28)))
	}
	benchRounds(b, r, pA, frames...)
}

// benchRounds feeds r's ingress worker for port from batches of 64 frames
// (frame i of a batch is frames[i%len(frames)], all of one length), b.N
// times after one warm-up round, and reports ns/pkt and Mpps; every packet
// must be forwarded.
func benchRounds(b *testing.B, r *Router, from *Port, frames ...[]byte) {
	b.Helper()
	w := r.newWorker(64, 1450+ethHeaderLen+64)
	const batch = 64
	b.SetBytes(int64(len(frames[0]) * batch))
	b.ReportAllocs()
	round := func() {
		for i := range batch {
			w.sizes[i] = copy(w.bufs[i][headroom:], frames[i%len(frames)])
		}
		w.receivePort(from, batch)
	}
	warmUp(round)
	b.ResetTimer()
	for range b.N {
		round()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds()/1e6, "Mpps")
	if got := r.Stats()["forwarded"]; got != uint64((b.N+1)*batch) {
		b.Fatalf("forwarded %d of %d (stats %v)", got, (b.N+1)*batch, r.Stats())
	}
}

// warmUp runs one round before the timed ones (the worker's egress groups
// are made on first use) after a collection, so that none of the setup's is
// still running during them (a collection allocates runtime objects that
// MemAllocs counts).
func warmUp(round func()) {
	runtime.GC()
	round()
}

func BenchmarkForwardPodToPod(b *testing.B) {
	benchForward(b, netip.MustParseAddr("10.244.0.5"), Config{})
}

// nopStage is a stage that looks at every packet and lets it pass: what the
// pipeline costs per stage (the call and its panic recovery).
type nopStage struct{ seen int }

func (*nopStage) Name() string { return "nop" }
func (s *nopStage) Process(pkts []*Packet) {
	for _, p := range pkts {
		if p.Verdict() == Continue {
			s.seen++
		}
	}
}

// BenchmarkForwardPodToPodStages is BenchmarkForwardPodToPod through one
// ingress and one egress stage.
func BenchmarkForwardPodToPodStages(b *testing.B) {
	in, out := &nopStage{}, &nopStage{}
	benchForward(b, netip.MustParseAddr("10.244.0.5"), Config{IngressStages: []Stage{in}, EgressStages: []Stage{out}})
	if in.seen != out.seen || in.seen == 0 {
		b.Fatalf("stages saw %d and %d packets", in.seen, out.seen)
	}
}

func BenchmarkForwardPodToVXLAN(b *testing.B) {
	v, err := tunnel.NewVXLAN(&discardConn{}, tunnel.VXLANConfig{VNI: 1, Port: 8472, LocalMAC: tunnel.VTEPMAC(node1)})
	if err != nil {
		b.Fatal(err)
	}
	benchForward(b, netip.MustParseAddr("10.244.1.5"), Config{Tunnel: v, TunnelMTU: 1450})
}

// BenchmarkForwardPodToVXLANManyDsts is BenchmarkForwardPodToVXLAN with
// every packet of a batch to another pod of the peer (64 addresses): the
// workers' route cache (16 entries) mostly misses, so this is the FIB's
// cost per packet, as before the cache.
func BenchmarkForwardPodToVXLANManyDsts(b *testing.B) {
	v, err := tunnel.NewVXLAN(&discardConn{}, tunnel.VXLANConfig{VNI: 1, Port: 8472, LocalMAC: tunnel.VTEPMAC(node1)})
	if err != nil {
		b.Fatal(err)
	}
	dsts := make([]netip.Addr, 64)
	for i := range dsts {
		dsts[i] = netip.AddrFrom4([4]byte{10, 244, 1, byte(2 + i)})
	}
	benchForwardTo(b, Config{Tunnel: v, TunnelMTU: 1450}, nil, dsts...)
}

func BenchmarkForwardPodToUDP(b *testing.B) {
	u, err := tunnel.NewUDP(&discardConn{}, tunnel.UDPConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchForward(b, netip.MustParseAddr("10.244.1.5"), Config{Tunnel: u, TunnelMTU: 1450})
}

// BenchmarkTunnelToPod measures the tunnel ingress path (peer checks
// included) for a batch of 64 inner packets to a local pod.
func BenchmarkTunnelToPod(b *testing.B) {
	v, err := tunnel.NewVXLAN(&discardConn{}, tunnel.VXLANConfig{VNI: 1, Port: 8472, LocalMAC: tunnel.VTEPMAC(node1)})
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(Config{PodCIDR: podCIDR0, Gateway: gateway, GatewayMAC: gwMAC, NodeAddr: node1, Tunnel: v, TunnelMTU: 1450})
	if err != nil {
		b.Fatal(err)
	}
	pa, paMAC := netip.MustParseAddr("10.244.0.4"), link.HardwareAddr{2, 0, 0, 0, 0, 4}
	out := &discardDevice{mtu: 1450}
	p, _ := r.AddPodPort("pa", out, pa, paMAC, 1450)
	r.neigh.SetStatic(p.ID, pa, paMAC)
	r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}})
	inner := ipv4(netip.MustParseAddr("10.244.1.5"), pa, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 1450-28))
	w := r.newWorker(64, 1450+256)
	const batch = 64
	b.SetBytes(int64(len(inner) * batch))
	b.ReportAllocs()
	id := r.Peers()[0].ID
	round := func() {
		for i := range batch {
			w.sizes[i] = copy(w.bufs[i][headroom:], inner)
			w.starts[i], w.peers[i] = headroom, id
		}
		w.receiveTunnel(batch)
	}
	warmUp(round)
	b.ResetTimer()
	for range b.N {
		round()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
	if got := r.Stats()["forwarded"]; got != uint64((b.N+1)*batch) {
		b.Fatalf("forwarded %d of %d (stats %v)", got, b.N*batch, r.Stats())
	}
}

// allocsPerOp runs f once to warm up, then runs times, and returns the
// allocations per run as a fraction: testing.AllocsPerRun truncates to an
// integer, so a call that allocates in 99 runs of 100 would pass as 0.
func allocsPerOp(tb testing.TB, runs int, f func()) float64 {
	tb.Helper()
	allocs.SkipUnderRace(tb)
	return allocs.PerOp(runs, 1, f)
}

// TestForwardingAllocatesNothing holds the zero-allocation hot path in CI:
// allocations per packet, as a fraction, must be 0 (AllocsPerOp would round
// 0.99 allocations per batch down to 0), through the tunnel too (its Send
// keeps batches in fixed slots, not a sync.Pool), with or without the race
// detector.
//
// MemAllocs counts the whole process, the runtime's own objects included
// (under the race detector a rare one lands in a run), so each path is
// measured up to three times, with the collector off (nothing here needs
// it), and judged by its best run: an allocation of the forwarding path
// recurs in every run (each builds a fresh router).
func TestForwardingAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bench func(*testing.B)
	}{
		{"pod-to-pod", BenchmarkForwardPodToPod},
		{"pod-to-pod-stages", BenchmarkForwardPodToPodStages},
		{"tunnel-to-pod", BenchmarkTunnelToPod},
		{"pod-to-vxlan", BenchmarkForwardPodToVXLAN},
		{"pod-to-udp", BenchmarkForwardPodToUDP},
		{"pod-to-vxlan-many-dsts", BenchmarkForwardPodToVXLANManyDsts},
		{"pod-to-pod-return-flows", BenchmarkForwardPodToPodReturnFlows},
		{"return-to-host", BenchmarkForwardReturnToHost},
		{"host-to-pod-recorded", BenchmarkHostToPodRecorded},
	} {
		var res testing.BenchmarkResult
		perPacket := -1.0
		for try := 0; try < 3 && perPacket != 0; try++ {
			gc := debug.SetGCPercent(-1)
			r := testing.Benchmark(tc.bench)
			debug.SetGCPercent(gc)
			if r.N == 0 {
				t.Fatalf("%s: benchmark failed", tc.name)
			}
			if p := float64(r.MemAllocs) / float64(r.N*64); perPacket < 0 || p < perPacket {
				res, perPacket = r, p
			}
		}
		if perPacket != 0 {
			t.Errorf("%s: %g allocations per packet (%d in %d batches of 64), want 0", tc.name, perPacket, res.MemAllocs, res.N)
		}
	}
}
