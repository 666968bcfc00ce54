package tunnel

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
)

const benchInnerLen = 1400

// encapDecap is a two-node setup (packets from pod 10.244.0.4 on node A to
// pod 10.244.1.5 on node B) for allocation tests and benchmarks: Send on
// from, Recv on to, over an allocation-free pipe.
type encapDecap struct {
	from, to Tunnel
	bufs     [][]byte // inner packets behind testOffset headroom
	dst      []uint32
	rbufs    [][]byte
	sizes    []int
	starts   []int
	peers    []uint32
}

func newEncapDecap(from, to Tunnel, batch int) *encapDecap {
	e := &encapDecap{from: from, to: to, bufs: make([][]byte, batch), dst: make([]uint32, batch)}
	for i := range e.bufs {
		e.bufs[i] = withHeadroom(ipv4Packet("10.244.0.4", "10.244.1.5", benchInnerLen-ipv4HeaderLen, byte(i)))
	}
	e.rbufs, e.sizes, e.starts, e.peers = recvBuffers(batch)
	return e
}

// run sends one batch and receives it, failing if anything is lost.
func (e *encapDecap) run(tb testing.TB) {
	if n, err := e.from.Send(e.bufs, e.dst, testOffset); n != len(e.bufs) || err != nil {
		tb.Fatalf("Send = %d, %v; want %d, nil", n, err, len(e.bufs))
	}
	n, err := e.to.Recv(e.rbufs, e.sizes, e.starts, e.peers, testOffset)
	if n != len(e.bufs) || err != nil {
		tb.Fatalf("Recv = %d, %v; want %d, nil", n, err, len(e.bufs))
	}
	for i := range n {
		if e.sizes[i] != benchInnerLen {
			tb.Fatalf("packet %d: inner size %d, want %d (stats %+v)", i, e.sizes[i], benchInnerLen, e.to.Stats())
		}
	}
}

func vxlanEncapDecap(tb testing.TB, batch int) *encapDecap {
	return vxlanLoopPair(tb, batch, 0)
}

// vxlanSpreadEncapDecap is vxlanEncapDecap with node A sending through 8
// senders. The packets' UDP ports are their fill byte, so the packets of a
// batch are flows of their own, spread over the senders.
func vxlanSpreadEncapDecap(tb testing.TB, batch int) *encapDecap {
	const senders = 8
	e := vxlanLoopPair(tb, batch, senders)
	used := map[int]bool{}
	for _, buf := range e.bufs {
		used[senderOf(buf[testOffset:], senders)] = true
	}
	if want := min(batch, senders); batch != 1 && len(used) != want {
		tb.Fatalf("test bug: a batch of %d flows uses %d senders, want %d", batch, len(used), want)
	}
	return e
}

// vxlanLoopPair is encapDecap between two vxlan backends, node A's sending
// through n senders (0: its socket), all into the pipe to node B.
func vxlanLoopPair(tb testing.TB, batch, n int) *encapDecap {
	ca, cb := newLoopConns(addrPort(nodeA, DefaultVXLANPort), addrPort(nodeB, DefaultVXLANPort))
	var senders []link.DatagramConn
	for i := range n {
		senders = append(senders, &loopConn{tx: ca.tx, local: addrPort(nodeA, uint16(40000+i)), remote: ca.remote})
	}
	a, err := NewVXLAN(ca, VXLANConfig{LocalMAC: VTEPMAC(nodeA), Senders: senders})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := NewVXLAN(cb, VXLANConfig{LocalMAC: VTEPMAC(nodeB)})
	if err != nil {
		tb.Fatal(err)
	}
	a.SetPeers(indexed(Peer{Addr: nodeB}))
	b.SetPeers(indexed(Peer{Addr: nodeA}))
	return newEncapDecap(a, b, batch)
}

func udpEncapDecap(tb testing.TB, batch int) *encapDecap {
	ca, cb := newLoopConns(addrPort(nodeA, DefaultUDPPort), addrPort(nodeB, DefaultUDPPort))
	a, _ := NewUDP(ca, UDPConfig{})
	b, _ := NewUDP(cb, UDPConfig{})
	a.SetPeers(indexed(Peer{Addr: nodeB}))
	b.SetPeers(indexed(Peer{Addr: nodeA}))
	return newEncapDecap(a, b, batch)
}

func directEncapDecap(tb testing.TB, batch int) *encapDecap {
	devA, devB := newLoopDevices()
	a, err := NewDirect(devA, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := NewDirect(devB, DirectConfig{LocalAddr: nodeB, LocalMAC: underlayMACB, LocalPodCIDR: podCIDRB})
	if err != nil {
		tb.Fatal(err)
	}
	// Each SetPeers broadcasts an ARP request for the other node, which
	// the other learns from.
	a.SetPeers(indexed(Peer{Addr: nodeB}))
	b.SetPeers(indexed(Peer{Addr: nodeA}))
	bufs, sizes, starts, peers := recvBuffers(1)
	a.Recv(bufs, sizes, starts, peers, testOffset)
	b.Recv(bufs, sizes, starts, peers, testOffset)
	return newEncapDecap(a, b, batch)
}

// TestSendRecvAllocs: Send and Recv allocate nothing per packet in steady
// state, under the race detector too (the batches are in fixed slots, not
// a sync.Pool).
func TestSendRecvAllocs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(testing.TB, int) *encapDecap
	}{
		{NameVXLAN, vxlanEncapDecap},
		{"vxlan-senders", vxlanSpreadEncapDecap},
		{NameUDP, udpEncapDecap},
		{NameDirect, directEncapDecap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.setup(t, 32)
			if a := allocs.PerOp(100, 32, func() { e.run(t) }); a != 0 {
				t.Errorf("Send+Recv in 32-packet batches: %g allocations per packet, want 0", a)
			}
		})
	}
}

func benchmarkEncapDecap(b *testing.B, setup func(testing.TB, int) *encapDecap) {
	for _, batch := range []int{1, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := setup(b, batch)
			b.SetBytes(int64(batch * benchInnerLen))
			b.ReportAllocs()
			for b.Loop() {
				e.run(b)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
		})
	}
}

func BenchmarkVXLAN(b *testing.B) { benchmarkEncapDecap(b, vxlanEncapDecap) }

// BenchmarkVXLANSenders is BenchmarkVXLAN with 8 senders and a flow per
// packet: the cost of hashing and grouping.
func BenchmarkVXLANSenders(b *testing.B) { benchmarkEncapDecap(b, vxlanSpreadEncapDecap) }
func BenchmarkUDP(b *testing.B)          { benchmarkEncapDecap(b, udpEncapDecap) }
func BenchmarkDirect(b *testing.B)       { benchmarkEncapDecap(b, directEncapDecap) }

// discardConn is a DatagramConn that takes every datagram and drops it.
type discardConn struct{ loopConn }

func (discardConn) WriteTo(bufs [][]byte, _ []netip.AddrPort, _ int) (int, error) {
	return len(bufs), nil
}

// BenchmarkSend measures Send alone of a batch of 64 1400-byte packets to
// one peer: through the receiving socket (senders=0), and through 8
// senders with the batch one flow (no grouping) or 64 flows (grouped into
// 8 writes).
func BenchmarkSend(b *testing.B) {
	for _, tc := range []struct {
		name           string
		senders, flows int
	}{{"senders=0", 0, 1}, {"senders=8/flows=1", 8, 1}, {"senders=8/flows=64", 8, 64}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := VXLANConfig{LocalMAC: macA}
			for range tc.senders {
				cfg.Senders = append(cfg.Senders, &discardConn{})
			}
			v, err := NewVXLAN(&discardConn{}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			v.SetPeers(indexed(Peer{Addr: nodeB}))
			const batch = 64
			bufs, dst := make([][]byte, batch), make([]uint32, batch)
			for i := range bufs {
				bufs[i] = withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, uint16(40000+i%tc.flows), 5201, benchInnerLen-40))
			}
			b.SetBytes(batch * benchInnerLen)
			b.ReportAllocs()
			for b.Loop() {
				if n, err := v.Send(bufs, dst, testOffset); n != batch || err != nil {
					b.Fatalf("Send = %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
		})
	}
}
