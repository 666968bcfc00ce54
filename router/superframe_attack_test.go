package router

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// gsoCapDevice is a capDevice that is a link.GSODevice: tests put a
// super-frame in its SuperFrame buffer; WriteGSO keeps what it is given
// and checks every super-frame as a device that writes it whole must be
// able to trust it (what link.GSO promises: its headers fit, and it cuts).
type gsoCapDevice struct {
	capDevice
	super []byte

	gmu     sync.Mutex
	outGSO  []link.GSO
	invalid []string
}

func newGSOCapDevice(name string, mtu int) *gsoCapDevice {
	return &gsoCapDevice{capDevice: capDevice{name: name, mtu: mtu}, super: make([]byte, 128+link.MaxLarge)}
}

func (d *gsoCapDevice) GSO() bool { return true }
func (d *gsoCapDevice) ReadGSO([][]byte, []int, []link.RxMeta, []link.GSO, int) (int, error) {
	return 0, link.ErrClosed
}
func (d *gsoCapDevice) SuperFrame() []byte { return d.super }
func (d *gsoCapDevice) WriteGSO(bufs [][]byte, g []link.GSO, offset int) (int, error) {
	d.gmu.Lock()
	for i, b := range bufs {
		d.outGSO = append(d.outGSO, g[i])
		if g[i].Type == link.GSONone {
			continue
		}
		if err := checkSuper(b[offset+ethHeaderLen:], g[i]); err != nil {
			d.invalid = append(d.invalid, err.Error())
		}
	}
	d.gmu.Unlock()
	return d.capDevice.Write(bufs, offset)
}

// checkSuper checks the super-frame pkt as a writer of it whole needs it:
// its transport header is within it (the vnet Coalescer's superHeader
// reads it) and a Segmenter takes it.
func checkSuper(pkt []byte, g link.GSO) error {
	if len(pkt) < 20 {
		return fmt.Errorf("super-frame of %d bytes", len(pkt))
	}
	ihl := int(pkt[0]&0x0f) * 4
	if len(pkt) < ihl+20 {
		return fmt.Errorf("super-frame of %d bytes with IHL %d: no transport header", len(pkt), ihl)
	}
	var s gso.Segmenter
	var err error
	if g.Type == link.GSOUDPv4 {
		err = s.ResetUDP(pkt, int(g.Size))
	} else {
		err = s.Reset(pkt, 0xffff)
	}
	if err != nil {
		return fmt.Errorf("super-frame does not cut: %v", err)
	}
	if hl := ihl + int(pkt[ihl+12]>>4)*4; g.Type == link.GSOTCPv4 && hl > len(pkt) {
		return fmt.Errorf("headers of %d bytes in a super-frame of %d", hl, len(pkt))
	}
	return nil
}

// newGSONode is newSyncNode whose pods' devices are gsoCapDevices.
func newGSONode(t testing.TB, cfg Config, mtus ...int) (*syncNode, []*gsoCapDevice) {
	t.Helper()
	n := newSyncNode(t, cfg)
	var devs []*gsoCapDevice
	for i, mtu := range mtus {
		last := byte(4 + i)
		d := newGSOCapDevice(fmt.Sprintf("p%d", i), mtu)
		sp := &syncPod{ip: netip.AddrFrom4([4]byte{10, 244, 0, last}), mac: link.HardwareAddr{2, 0, 0, 0, 0, last}, dev: &d.capDevice}
		p, err := n.r.AddPodPort(d.name, d, sp.ip, sp.mac, mtu)
		if err != nil {
			t.Fatal(err)
		}
		if p.gso == nil {
			t.Fatal("port does not see a GSO device")
		}
		sp.port = p
		n.r.SetStaticNeighbour(d.name, sp.ip, sp.mac)
		n.pods = append(n.pods, sp)
		devs = append(devs, d)
	}
	n.w = n.r.newWorker(64, 1450+ethHeaderLen+64)
	return n, devs
}

// tcpSuper builds a TCP super-segment (TSO) of payload bytes, its IPv4
// header with opts, its checksum field the pseudo-header sum.
func tcpSuper(src, dst netip.Addr, ttl uint8, df bool, ipOpts []byte, payload int) []byte {
	ihl := 20 + len(ipOpts)
	b := make([]byte, ihl+20+payload)
	h := header.IPv4(b)
	var flags uint8
	if df {
		flags = header.IPv4FlagDontFragment
	}
	h.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), ID: 0x1234, Flags: flags, TTL: ttl, Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	b[0] = 0x40 | byte(ihl/4)
	copy(b[20:], ipOpts)
	h.SetChecksum(0)
	h.SetChecksum(^h.CalculateChecksum())
	tcp := header.TCP(b[ihl:])
	tcp.Encode(&header.TCPFields{SrcPort: 5201, DstPort: 40000, SeqNum: 1000, AckNum: 1, DataOffset: 20, Flags: header.TCPFlagAck, WindowSize: 1000})
	for i := range payload {
		b[ihl+20+i] = byte(i)
	}
	binary.BigEndian.PutUint16(b[ihl+16:], gso.PseudoHeaderSum(b, len(b)-ihl))
	return b
}

// udpSuper builds a UDP super-datagram of payload bytes.
func udpSuper(src, dst netip.Addr, df bool, payload int) []byte {
	u := udpPayload(1000, 2000, payload)
	b := ipv4(src, dst, 64, header.UDPProtocolNumber, df, u)
	binary.BigEndian.PutUint16(b[26:], gso.PseudoHeaderSum(b, len(b)-20))
	return b
}

// superFromPod feeds pod i's frames as one batch, the last one the
// super-frame frame (Ethernet and IPv4) that ReadGSO describes as g, in its
// device's SuperFrame buffer.
func (n *syncNode) superFromPod(d *gsoCapDevice, i int, g link.GSO, super []byte, plain ...[]byte) {
	k := 0
	for ; k < len(plain); k++ {
		n.w.sizes[k] = copy(n.w.bufs[k][headroom:], plain[k])
		n.w.gso[k] = link.GSO{}
	}
	n.w.sizes[k] = copy(d.super[headroom:], super)
	n.w.gso[k] = g
	n.w.receivePort(n.pods[i].port, k+1)
	clear(n.w.gso) // framesFromPod's are plain
}

// TestSuperFrameDecodeDropCountsSegments: a super-frame dropped at decode
// counts as many drops as the port counted it received packets, whatever
// the reason (a wrong destination or source MAC, a source route), so that
// Rx = forwarded + drops holds for the pod's port.
func TestSuperFrameDecodeDropCountsSegments(t *testing.T) {
	const size, segs = 1000, 10
	lsrr := []byte{0x83, 7, 4, 10, 244, 0, 5, 0} // loose source route, then end of list
	for _, tc := range []struct {
		name   string
		dst    link.HardwareAddr
		src    int // which pod's MAC as the source
		opts   []byte
		reason string
	}{
		{"bad dst MAC", link.HardwareAddr{2, 9, 9, 9, 9, 9}, 0, nil, "drop_bad_mac"},
		{"multicast dst MAC", link.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, 0, nil, "drop_multicast"},
		{"spoofed src MAC", gwMAC, 1, nil, "drop_spoofed"},
		{"source route", gwMAC, 0, lsrr, "drop_source_route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, devs := newGSONode(t, Config{}, 1450, 1450)
			pa, pb := n.pods[0], n.pods[1]
			pkt := tcpSuper(pa.ip, pb.ip, 64, true, tc.opts, segs*size)
			f := ethernet(tc.dst, n.pods[tc.src].mac, etherTypeIP, pkt)
			before := n.r.Stats()
			n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOTCPv4, Size: size}, f)
			wantDelta(t, n.r, before, map[string]uint64{tc.reason: segs})
			if got := pa.port.RxPackets.Load(); got != segs {
				t.Errorf("rx packets %d, want %d", got, segs)
			}
			if got := pa.port.Drops.Load(); got != segs {
				t.Errorf("port drops %d, want %d (as many as it received)", got, segs)
			}
		})
	}
}

// TestSuperFrameForwardedWholeCounts: the baseline the others depart from:
// a super-frame to a GSO port goes whole, counted as its segments.
func TestSuperFrameForwardedWholeCounts(t *testing.T) {
	const size, segs = 1000, 10
	n, devs := newGSONode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	before := n.r.Stats()
	n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOTCPv4, Size: size}, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, pb.ip, 64, true, nil, segs*size)))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": segs})
	out := devs[1].take()
	if len(out) != 1 || len(out[0]) != 14+40+segs*size || devs[1].outGSO[0] != (link.GSO{Type: link.GSOTCPv4, Size: size}) {
		t.Fatalf("pod b got %d frames (%v), want the super-frame whole", len(out), devs[1].outGSO)
	}
	if got := out[0][14+8]; got != 63 {
		t.Errorf("TTL %d, want 63", got)
	}
	if pa.port.RxPackets.Load() != segs || pb.port.TxPackets.Load() != segs {
		t.Errorf("rx %d tx %d, want %d", pa.port.RxPackets.Load(), pb.port.TxPackets.Load(), segs)
	}
}

// TestSuperFrameStageBreaksTransportHeader: a stage that leaves a
// super-frame's IPv4 header consistent (version, IHL within it, total
// length) but its transport header outside it, or no longer TCP, must
// not reach a device that writes it whole: the vnet Coalescer's
// superHeader reads the TCP header at IHL (out of bounds: a panic outside
// any recover, the daemon's end) and tells the kernel a header length the
// frame does not have (EINVAL, which turns the device's TCP GSO off for
// good). The router drops it as malformed, as it does a packet whose IPv4
// header a stage broke.
func TestSuperFrameStageBreaksTransportHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload int
		mangle  func(b []byte)
	}{
		// 40 bytes, IHL 40: the IPv4 header is the whole packet.
		{"IHL over the TCP header", 0, func(b []byte) { b[0] = 0x4a }},
		{"not TCP any more", 3000, func(b []byte) { b[9] = uint8(header.UDPProtocolNumber) }},
		{"TCP data offset past the end", 0, func(b []byte) { b[20+12] = 0xf0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stage := StageFunc{StageName: "mangle", Func: func(p *Packet) {
				if p.GSO().Type != link.GSONone {
					tc.mangle(p.Data())
					h := p.IPv4()
					h.SetChecksum(0)
					h.SetChecksum(^h.CalculateChecksum())
				}
			}}
			n, devs := newGSONode(t, Config{EgressStages: []Stage{stage}}, 1450, 1450)
			pa, pb := n.pods[0], n.pods[1]
			g := link.GSO{Type: link.GSOTCPv4, Size: 1000}
			pkt := tcpSuper(pa.ip, pb.ip, 64, true, nil, tc.payload)
			segs := uint64(link.Segments(pkt, g))
			before := n.r.Stats()
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("router panicked: %v", v)
					}
				}()
				n.superFromPod(devs[0], 0, g, ethernet(gwMAC, pa.mac, etherTypeIP, pkt))
			}()
			if len(devs[1].invalid) > 0 {
				t.Errorf("written whole although it is not a super-frame any more: %v", devs[1].invalid)
			}
			wantDelta(t, n.r, before, map[string]uint64{"drop_malformed": segs})
		})
	}
}

// TestSuperFrameEgressPolicerChargesWire: a pod's egress policer charges
// a super-frame for what its segments are on the wire (each has the
// headers), not for its own length: else a pod's UDP super-datagram of 128
// one-byte datagrams, 156 bytes, passes for 156 and puts 128 datagrams of
// 29 bytes (3712) on the tunnel, 24 times its rate. Before super-frames
// crossed whole, the TAP cut it and the policer saw each datagram.
func TestSuperFrameEgressPolicerChargesWire(t *testing.T) {
	const burst = 1000 // bytes
	for _, tc := range []struct {
		name string
		g    link.GSO
		pkt  func(src, dst netip.Addr) []byte
		wire int // bytes of IPv4 its segments are
		segs int
	}{
		{"udp", link.GSO{Type: link.GSOUDPv4, Size: 1}, func(s, d netip.Addr) []byte { return udpSuper(s, d, false, 128) }, 128 * 29, 128},
		{"tcp", link.GSO{Type: link.GSOTCPv4, Size: 48}, func(s, d netip.Addr) []byte { return tcpSuper(s, d, 64, true, nil, 20*48) }, 20 * 88, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, devs := newGSONode(t, Config{}, 1450)
			pa := n.pods[0]
			if err := n.r.SetBandwidth("p0", Bandwidth{EgressRate: 8000, EgressBurst: burst * 8}); err != nil {
				t.Fatal(err)
			}
			dst := netip.MustParseAddr("10.244.1.9") // through the tunnel: cut
			before := n.r.Stats()
			n.superFromPod(devs[0], 0, tc.g, ethernet(gwMAC, pa.mac, etherTypeIP, tc.pkt(pa.ip, dst)))
			sent := 0
			for _, d := range n.conn.take() {
				sent += len(d.Data) // the udp tunnel sends the packet as it is
			}
			after := n.r.Stats()
			if fw, rl := after["forwarded"]-before["forwarded"], after["drop_rate_limited"]-before["drop_rate_limited"]; fw+rl != uint64(tc.segs) {
				t.Errorf("forwarded %d + rate limited %d, want %d", fw, rl, tc.segs)
			}
			if sent > burst {
				t.Errorf("the policer let %d bytes through (%d segments of a %d-byte super-frame), its burst is %d", sent, after["forwarded"]-before["forwarded"], len(tc.pkt(pa.ip, dst)), burst)
			}
		})
	}
}

// TestSuperFrameCutPaths: what the cut paths send, exactly. A TCP
// super-segment with DF whose segments exceed the tunnel's MTU gets one
// "fragmentation needed" announcing that MTU, and its N segments count
// drop_too_big; without DF it is cut to the tunnel's MTU (in-sequence
// segments carrying every byte, each a valid packet, IDs counting up). A
// UDP super-datagram without DF whose datagrams exceed it has each
// datagram fragmented, in order.
func TestSuperFrameCutPaths(t *testing.T) {
	dst := netip.MustParseAddr("10.244.1.9") // through the tunnel, MTU 1450
	t.Run("tcp DF", func(t *testing.T) {
		n, devs := newGSONode(t, Config{}, 1500)
		pa := n.pods[0]
		before := n.r.Stats()
		n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOTCPv4, Size: 1460}, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, dst, 64, true, nil, 10*1460)))
		if got := n.conn.take(); len(got) != 0 {
			t.Fatalf("%d datagrams on the tunnel, want none", len(got))
		}
		out := n.pods[0].dev.take()
		if len(out) != 1 {
			t.Fatalf("pod a got %d frames, want the frag-needed", len(out))
		}
		icmp := checkICMP(t, header.IPv4(out[0][14:]), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded)
		if icmp.MTU() != 1450 {
			t.Errorf("frag-needed announces MTU %d, want 1450", icmp.MTU())
		}
		wantDelta(t, n.r, before, map[string]uint64{"drop_too_big": 10, "icmp_frag_needed": 1, "forwarded": 1})
	})
	t.Run("tcp no DF", func(t *testing.T) {
		n, devs := newGSONode(t, Config{}, 1500)
		pa := n.pods[0]
		before := n.r.Stats()
		const payload = 10 * 1460
		n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOTCPv4, Size: 1460}, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, dst, 64, false, nil, payload)))
		got := n.conn.take()
		seq, total := uint32(1000), 0
		for i, d := range got {
			h := header.IPv4(d.Data)
			if len(h) > 1450 || !h.IsValid(len(h)) || !h.IsChecksumValid() || h.TTL() != 63 || h.ID() != 0x1234+uint16(i) {
				t.Fatalf("segment %d: %d bytes, TTL %d, ID %#x", i, len(h), h.TTL(), h.ID())
			}
			tcp := header.TCP(h.Payload())
			if !tcp.IsChecksumValid(h.SourceAddress(), h.DestinationAddress(), checksumOf(tcp.Payload()), uint16(len(tcp.Payload()))) {
				t.Fatalf("segment %d: bad TCP checksum", i)
			}
			if tcp.SequenceNumber() != seq {
				t.Fatalf("segment %d: seq %d, want %d", i, tcp.SequenceNumber(), seq)
			}
			seq += uint32(len(tcp.Payload()))
			total += len(tcp.Payload())
		}
		want := (payload + 1410 - 1) / 1410
		if len(got) != want || total != payload {
			t.Fatalf("%d segments with %d bytes, want %d with %d", len(got), total, want, payload)
		}
		wantDelta(t, n.r, before, map[string]uint64{"forwarded": uint64(want), "tunnel_tx_packets": uint64(want), "tunnel_tx_bytes": uint64(payload + 40*want)})
	})
	t.Run("udp no DF", func(t *testing.T) {
		n, devs := newGSONode(t, Config{}, 1500)
		pa := n.pods[0]
		before := n.r.Stats()
		const size, segs = 1472, 40
		n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOUDPv4, Size: size}, ethernet(gwMAC, pa.mac, etherTypeIP, udpSuper(pa.ip, dst, false, segs*size)))
		got := n.conn.take()
		if len(got) != 2*segs {
			t.Fatalf("%d datagrams on the tunnel, want %d fragments", len(got), 2*segs)
		}
		for i, d := range got {
			h := header.IPv4(d.Data)
			wantMore, wantOff := i%2 == 0, uint16(0)
			if !wantMore {
				wantOff = 1424
			}
			if h.ID() != 0x1234+uint16(i/2) || h.More() != wantMore || h.FragmentOffset() != wantOff || !h.IsChecksumValid() {
				t.Fatalf("fragment %d: ID %#x more %v offset %d, want ID %#x more %v offset %d", i, h.ID(), h.More(), h.FragmentOffset(), 0x1234+i/2, wantMore, wantOff)
			}
		}
		wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2 * segs, "fragments_sent": 2 * segs, "tunnel_tx_packets": 2 * segs, "tunnel_tx_bytes": segs * (size + 8 + 2*20)})
	})
}

func checksumOf(b []byte) uint16 { return checksum.Checksum(b, 0) }

// gsoDiscard is a discardDevice that is a link.GSODevice.
type gsoDiscard struct {
	discardDevice
	super []byte
}

func (d *gsoDiscard) GSO() bool { return true }
func (d *gsoDiscard) ReadGSO([][]byte, []int, []link.RxMeta, []link.GSO, int) (int, error) {
	return 0, link.ErrClosed
}
func (d *gsoDiscard) SuperFrame() []byte { return d.super }
func (d *gsoDiscard) WriteGSO(bufs [][]byte, _ []link.GSO, _ int) (int, error) {
	d.packets += len(bufs)
	return len(bufs), nil
}

// TestSuperFrameAllocatesNothing: the super-frame paths are the hot path
// of every TSO flow: written whole to a GSO pod port, and cut for a port
// without GSO (cutters from fixed slots), they allocate nothing once warm.
func TestSuperFrameAllocatesNothing(t *testing.T) {
	for _, whole := range []bool{true, false} {
		t.Run(fmt.Sprint("whole=", whole), func(t *testing.T) {
			r, err := New(Config{PodCIDR: podCIDR0, Gateway: gateway, GatewayMAC: gwMAC, NodeAddr: node1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			paMAC, pbIP := link.HardwareAddr{2, 0, 0, 0, 0, 4}, netip.MustParseAddr("10.244.0.5")
			in := &gsoDiscard{discardDevice: discardDevice{mtu: 1450}, super: make([]byte, 128+link.MaxLarge)}
			var out link.Device = &discardDevice{mtu: 1450}
			if whole {
				out = &gsoDiscard{discardDevice: discardDevice{mtu: 1450}}
			}
			pA, _ := r.AddPodPort("pa", in, netip.MustParseAddr("10.244.0.4"), paMAC, 1450)
			pB, _ := r.AddPodPort("pb", out, pbIP, link.HardwareAddr{2, 0, 0, 0, 0, 5}, 1450)
			r.neigh.SetStatic(pB.ID, pbIP, link.HardwareAddr{2, 0, 0, 0, 0, 5})
			w := r.newWorker(64, 1450+ethHeaderLen+64)
			f := ethernet(gwMAC, paMAC, etherTypeIP, tcpSuper(pA.IP, pbIP, 64, true, nil, 44*1400))
			round := func() {
				w.sizes[0] = copy(in.super[headroom:], f)
				w.gso[0] = link.GSO{Type: link.GSOTCPv4, Size: 1400}
				w.receivePort(pA, 1)
			}
			round()
			gc := debug.SetGCPercent(-1)
			defer debug.SetGCPercent(gc)
			if a := allocsPerOp(t, 100, round); a != 0 {
				t.Errorf("%v allocations per super-frame, want 0", a)
			}
			// round, then allocsPerOp: its warm-up and 100 runs.
			if got, want := r.Stats()["forwarded"], uint64(102*44); got != want {
				t.Errorf("forwarded %d, want %d", got, want)
			}
		})
	}
}

// TestSuperFrameUnresolvedAndTxError: every segment of a super-frame moves
// exactly one counter when its pod's MAC is not known yet (cut: 3 wait for
// ARP, the rest are queue drops; those waiting count forwarded when the
// pod answers) and when its write fails (all N tx errors, on the port too).
func TestSuperFrameUnresolvedAndTxError(t *testing.T) {
	const size, segs = 1000, 10
	g := link.GSO{Type: link.GSOTCPv4, Size: size}
	t.Run("unresolved", func(t *testing.T) {
		n, devs := newGSONode(t, Config{}, 1450, 1450)
		pa, pb := n.pods[0], n.pods[1]
		n.r.neigh.Remove(pb.port.ID, pb.ip)
		before := n.r.Stats()
		n.superFromPod(devs[0], 0, g, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, pb.ip, 64, true, nil, segs*size)))
		after := n.r.Stats()
		if q, d := after["neigh_queued"]-before["neigh_queued"], after["drop_neighbour_queue"]-before["drop_neighbour_queue"]; d != segs-3 {
			t.Errorf("queued %d, queue drops %d; want %d drops", q, d, segs-3)
		}
		for _, f := range devs[1].take() {
			if binary.BigEndian.Uint16(f[12:14]) == etherTypeIP {
				t.Fatal("an IPv4 frame before the pod's MAC was known")
			}
		}
		n.framesFromPod(1, n.arpFrom(1, 2)) // the pod's reply
		out := devs[1].take()
		if len(out) != 3 {
			t.Fatalf("%d frames to pod b after its reply, want the 3 queued segments", len(out))
		}
		for i, f := range out {
			h := header.IPv4(f[14:])
			if len(f) != 14+40+size || header.TCP(h.Payload()).SequenceNumber() != uint32(1000+(segs-3+i)*size) {
				t.Errorf("queued frame %d: %d bytes, seq %d", i, len(f), header.TCP(h.Payload()).SequenceNumber())
			}
		}
		if got := n.r.Stats()["forwarded"] - before["forwarded"]; got != 3 {
			t.Errorf("forwarded %d, want 3", got)
		}
	})
	t.Run("tx error", func(t *testing.T) {
		n, devs := newGSONode(t, Config{}, 1450, 1450)
		pa, pb := n.pods[0], n.pods[1]
		devs[1].fail = true
		before := n.r.Stats()
		n.superFromPod(devs[0], 0, g, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, pb.ip, 64, true, nil, segs*size)))
		wantDelta(t, n.r, before, map[string]uint64{"drop_tx_error": segs})
		if pb.port.Drops.Load() != segs || pb.port.TxPackets.Load() != 0 {
			t.Errorf("port b drops %d tx %d, want %d, 0", pb.port.Drops.Load(), pb.port.TxPackets.Load(), segs)
		}
	})
}

// TestSuperFramePolicedBySegment: a super-frame larger than what its
// policer's bucket holds is not dropped whole (a TSO flow with a burst
// under 64 KB would lose every super-frame, for as long as its sender
// makes them that big): its segments are policed one by one, as when the
// TAP cut it, the first ones passing. Egress (the pod's) and ingress (to
// the destination pod, which then gets segments, not the super-frame).
func TestSuperFramePolicedBySegment(t *testing.T) {
	const size, segs, burst = 1000, 10, 5000 // 4 segments of 1040 bytes fit
	g := link.GSO{Type: link.GSOTCPv4, Size: size}
	for _, way := range []string{"egress", "ingress"} {
		t.Run(way, func(t *testing.T) {
			n, devs := newGSONode(t, Config{}, 1450, 1450)
			pa, pb := n.pods[0], n.pods[1]
			port, bw := "p0", Bandwidth{EgressRate: 8000, EgressBurst: burst * 8}
			if way == "ingress" {
				port, bw = "p1", Bandwidth{IngressRate: 8000, IngressBurst: burst * 8}
			}
			if err := n.r.SetBandwidth(port, bw); err != nil {
				t.Fatal(err)
			}
			before := n.r.Stats()
			n.superFromPod(devs[0], 0, g, ethernet(gwMAC, pa.mac, etherTypeIP, tcpSuper(pa.ip, pb.ip, 64, true, nil, segs*size)))
			wantDelta(t, n.r, before, map[string]uint64{"forwarded": 4, "drop_rate_limited": segs - 4})
			out := devs[1].take()
			if len(out) != 4 {
				t.Fatalf("pod b got %d frames, want 4 segments", len(out))
			}
			for i, f := range out {
				h := header.IPv4(f[14:])
				if len(f) != 14+40+size || header.TCP(h.Payload()).SequenceNumber() != uint32(1000+i*size) || devs[1].outGSO[i].Type != link.GSONone {
					t.Errorf("frame %d: %d bytes, seq %d, %v", i, len(f), header.TCP(h.Payload()).SequenceNumber(), devs[1].outGSO[i])
				}
			}
			drops := pa.port.Drops.Load()
			if way == "ingress" {
				drops = pb.port.Drops.Load()
			}
			if drops != segs-4 {
				t.Errorf("%s port drops %d, want %d", port, drops, segs-4)
			}
		})
	}
}

// TestSuperFrameFragmentedDatagramsInOrder: a UDP super-datagram without
// DF whose datagrams exceed the egress MTU leaves in order: the fragments
// of each datagram before the next datagram, also when its last, shorter
// one fits unfragmented (it went out first, ahead of the fragments that
// waited for the end of the batch).
func TestSuperFrameFragmentedDatagramsInOrder(t *testing.T) {
	n, devs := newGSONode(t, Config{}, 1500)
	pa := n.pods[0]
	dst := netip.MustParseAddr("10.244.1.9") // MTU 1450
	const size = 1472
	n.superFromPod(devs[0], 0, link.GSO{Type: link.GSOUDPv4, Size: size}, ethernet(gwMAC, pa.mac, etherTypeIP, udpSuper(pa.ip, dst, false, 2*size+100)))
	var got []string
	for _, d := range n.conn.take() {
		h := header.IPv4(d.Data)
		got = append(got, fmt.Sprintf("%#x/%d", h.ID(), h.FragmentOffset()))
	}
	want := []string{"0x1234/0", "0x1234/1424", "0x1235/0", "0x1235/1424", "0x1236/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}
