package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/router"
)

// Pod B is pod A's neighbour on node1, for the same-node variant.
var (
	podB = netip.MustParseAddr("10.244.0.6")
	macB = link.HardwareAddr{2, 0, 0, 0, 0, 6}
)

// podMTU is a pod's MTU with the vxlan backend (a 1500-byte underlay).
const podMTU = 1450

// eth0 is a pod's interface as its router port sees it: a link.Device
// whose other end is the NIC of the pod's gVisor stack, a channel endpoint
// under an Ethernet one. Read takes the frames the stack sent, as a TAP
// hands the router what the pod's kernel sent; Write injects the router's
// frames into the stack, which processes them in the writer's goroutine
// (TCP's segment processing then runs in gVisor's own goroutines).
type eth0 struct {
	ch     *channel.Endpoint
	ctx    context.Context
	cancel context.CancelFunc
	name   string
	// oversize counts frames longer than the router's buffer, dropped;
	// the stack's MTU makes them impossible, and the test checks.
	oversize atomic.Int64
}

var _ link.Device = (*eth0)(nil)

func (d *eth0) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	for n == 0 {
		pkt := d.ch.ReadContext(d.ctx)
		if pkt == nil {
			return 0, link.ErrClosed
		}
		n = d.take(bufs, sizes, offset, n, pkt)
	}
	for n < len(bufs) {
		pkt := d.ch.Read()
		if pkt == nil {
			break
		}
		n = d.take(bufs, sizes, offset, n, pkt)
	}
	return n, nil
}

// take copies pkt, a whole frame, into bufs[n][offset:] and releases it; it
// returns the number of frames in bufs.
func (d *eth0) take(bufs [][]byte, sizes []int, offset, n int, pkt *stack.PacketBuffer) int {
	defer pkt.DecRef()
	b := bufs[n][offset:]
	if pkt.Size() > len(b) {
		d.oversize.Add(1)
		return n
	}
	vl, skip := pkt.AsViewList() // AsSlices would allocate
	size := 0
	for v := vl.Front(); v != nil; v = v.Next() {
		s := v.AsSlice()
		if skip >= len(s) {
			skip -= len(s)
			continue
		}
		size += copy(b[size:], s[skip:])
		skip = 0
	}
	sizes[n] = size
	return n + 1
}

func (d *eth0) Write(bufs [][]byte, offset int) (int, error) {
	if d.ctx.Err() != nil {
		return 0, link.ErrClosed
	}
	for _, b := range bufs {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b[offset:])})
		d.ch.InjectInbound(header.IPv4ProtocolNumber, pkt) // the Ethernet endpoint reads the EtherType
		pkt.DecRef()
	}
	return len(bufs), nil
}

func (d *eth0) BatchSize() int { return 64 }
func (d *eth0) MTU() int       { return podMTU }
func (d *eth0) Name() string   { return d.name }
func (d *eth0) Close() error   { d.cancel(); return nil }

// pod is a gVisor network stack attached to a router's pod port.
type pod struct {
	stack *stack.Stack
	addr  tcpip.Address
	dev   *eth0
	port  *router.Port
}

// newPod attaches to r a pod configured as taprouter's CNI plugin
// configures one: ip/32 on eth0 with its MAC and MTU, a link route to the
// gateway and the default route through it. The pod resolves the gateway
// by ARP and answers the router's ARP, as a kernel would.
func newPod(tb testing.TB, r *router.Router, name string, ip netip.Addr, mac link.HardwareAddr, gw netip.Addr) *pod {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	tb.Cleanup(s.Destroy)
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		tb.Fatalf("pod %s: SACK: %v", name, err)
	}
	// A queue deep enough for the TCP windows: a full one drops frames.
	ch := channel.New(4096, podMTU+header.EthernetMinimumSize, tcpip.LinkAddress(mac[:]))
	if err := s.CreateNIC(1, ethernet.New(ch)); err != nil {
		tb.Fatalf("pod %s: NIC: %v", name, err)
	}
	addr := tcpip.AddrFrom4(ip.As4())
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 32}}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		tb.Fatalf("pod %s: address: %v", name, err)
	}
	g := tcpip.AddrFrom4(gw.As4())
	s.SetRouteTable([]tcpip.Route{
		{Destination: tcpip.AddressWithPrefix{Address: g, PrefixLen: 32}.Subnet(), NIC: 1},
		{Destination: header.IPv4EmptySubnet, Gateway: g, NIC: 1},
	})
	ctx, cancel := context.WithCancel(context.Background())
	d := &eth0{ch: ch, ctx: ctx, cancel: cancel, name: name}
	port, err := r.AddPodPort(name, d, ip, mac, podMTU)
	if err != nil {
		tb.Fatal(err)
	}
	return &pod{stack: s, addr: addr, dev: d, port: port}
}

// podPair is a TCP connection from a client pod to a server pod, each
// attached to a running router: node1's and node2's, joined by the
// in-memory underlay with the vxlan backend, or both node1's.
type podPair struct {
	client, server *pod
	conn, peer     net.Conn // the client's end, the server's
}

func newPodPair(tb testing.TB, crossNode bool) *podPair {
	r1, r2 := newNodes(tb, vxlan)
	p := &podPair{client: newPod(tb, r1, "pa", podA, macA, gw1)}
	if crossNode {
		p.server = newPod(tb, r2, "pc", podC, macC, gw2)
	} else {
		p.server = newPod(tb, r1, "pb", podB, macB, gw1)
	}
	r1.Start()
	r2.Start()
	to := tcpip.FullAddress{NIC: 1, Addr: p.server.addr, Port: 5201}
	ln, err := gonet.ListenTCP(p.server.stack, to, ipv4.ProtocolNumber)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if p.conn, err = gonet.DialContextTCP(ctx, p.client.stack, to, ipv4.ProtocolNumber); err != nil {
		tb.Fatalf("pod A dials %v: %v", to.Addr, err)
	}
	tb.Cleanup(func() { p.conn.Close() })
	select {
	case c, ok := <-accepted:
		if !ok {
			tb.Fatal("accept failed")
		}
		p.peer = c
	case <-ctx.Done():
		tb.Fatal("no connection accepted in 10 s")
	}
	tb.Cleanup(func() { p.peer.Close() })
	return p
}

// stream sends total bytes from the client to the server in writes of
// 64 KiB, each filled by fill first (if not nil), and reads them on the
// server, handing each read to got (if not nil); it returns once the
// server has read them all. It fails rather than hang if the pods move
// less than 1 MiB/s (after a minute's grace).
func (p *podPair) stream(total int64, fill, got func([]byte)) error {
	p.peer.SetReadDeadline(time.Now().Add(time.Minute + time.Duration(total>>20)*time.Second))
	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for left := total; left > 0; {
			b := buf[:min(left, int64(len(buf)))]
			if fill != nil {
				fill(b)
			}
			n, err := p.conn.Write(b)
			left -= int64(n)
			if err != nil {
				p.conn.Close() // the server's read ends
				sent <- fmt.Errorf("pod A writes: %w", err)
				return
			}
		}
		sent <- nil
	}()
	buf := make([]byte, 256<<10)
	for read := int64(0); read < total; {
		n, err := p.peer.Read(buf[:min(total-read, int64(len(buf)))])
		if got != nil {
			got(buf[:n])
		}
		read += int64(n)
		if err != nil {
			return errors.Join(fmt.Errorf("pod read %d of %d bytes: %w", read, total, err), <-sent)
		}
	}
	return <-sent
}

// packets is how many frames both pods have sent the router: the data
// segments and the ACKs, each counted once, where it enters the routers.
func (p *podPair) packets() uint64 {
	return p.client.port.RxPackets.Load() + p.server.port.RxPackets.Load()
}

// benchNetstack streams b.N MiB over TCP from pod A to the server pod
// through the running routers; the pods are gVisor stacks, so the time
// is theirs (TCP, checksums, copies) as well as the routers'.
func benchNetstack(b *testing.B, crossNode bool) {
	p := newPodPair(b, crossNode)
	const chunk = 1 << 20
	// Slow start, the stacks' buffers and the routers' ARP are not what
	// the benchmark measures.
	if err := p.stream(8*chunk, nil, nil); err != nil {
		b.Fatal(err)
	}
	before := p.packets()
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	err := p.stream(int64(b.N)*chunk, nil, nil)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)*chunk*8/1e9/s, "Gbit/s")
	b.ReportMetric(float64(p.packets()-before)/s, "pkts/s")
}

// BenchmarkNetstackCrossNodeVXLAN: pod A on node1 to pod C on node2, vxlan
// across the in-memory underlay.
func BenchmarkNetstackCrossNodeVXLAN(b *testing.B) { benchNetstack(b, true) }

// BenchmarkNetstackSameNode: pod A to pod B, both on node1.
func BenchmarkNetstackSameNode(b *testing.B) { benchNetstack(b, false) }

// TestNetstackDeliversExactBytes holds the netstack benchmarks to moving
// real data: 4 MiB of pseudo-random bytes from pod A arrive at the server
// pod with the same SHA-256, through the routers' pod ports.
func TestNetstackDeliversExactBytes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		crossNode bool
	}{{"CrossNodeVXLAN", true}, {"SameNode", false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPodPair(t, tc.crossNode)
			const total = 4 << 20
			rng := rand.NewChaCha8([32]byte{'t', 'a', 'p'})
			sent, got := sha256.New(), sha256.New()
			var n int64
			start := time.Now()
			err := p.stream(total,
				func(b []byte) { rng.Read(b); sent.Write(b) },
				func(b []byte) { got.Write(b); n += int64(len(b)) })
			elapsed := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if n != total || !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
				t.Fatalf("the server read %d bytes, SHA-256 %x; pod A sent %d, %x", n, got.Sum(nil), total, sent.Sum(nil))
			}
			// At least one frame per MSS (1410 bytes) reached the server
			// through its port.
			if tx := p.server.port.TxPackets.Load(); tx < total/1410 {
				t.Errorf("the router sent the server pod %d frames; %d bytes need %d or more", tx, total, total/1410)
			}
			if a, b := p.client.dev.oversize.Load(), p.server.dev.oversize.Load(); a+b != 0 {
				t.Errorf("frames longer than the router's buffers: %d from the client pod, %d from the server pod", a, b)
			}
			t.Logf("%d bytes in %v (%.2f Gbit/s), %d packets from the pods", n, elapsed.Round(time.Millisecond),
				float64(n)*8/1e9/elapsed.Seconds(), p.packets())
		})
	}
}
