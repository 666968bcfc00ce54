package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// transportPacket returns an IPv4 packet from src to dst carrying a TCP
// segment (proto 6, 20-byte header) or UDP datagram (proto 17) with n bytes
// of payload, and its checksum complete.
func transportPacket(src, dst string, proto byte, n int) []byte {
	hl := 8
	if proto == protoTCP {
		hl = 20
	}
	p := ipv4Header(src, dst, proto, hl+n)
	seg := p[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(seg[0:2], 40000)
	binary.BigEndian.PutUint16(seg[2:4], 5201)
	if proto == protoTCP {
		seg[12] = 5 << 4
		seg[13] = 0x18 // PSH ACK
	} else {
		binary.BigEndian.PutUint16(seg[4:6], uint16(len(seg)))
	}
	for i := hl; i < len(seg); i++ {
		seg[i] = byte(i * 7)
	}
	off := checksumOffset(proto)
	c := ^checksum.Checksum(seg, pseudoHeaderSum(p, len(seg)))
	if c == 0 && proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return p
}

func checksumOffset(proto byte) int {
	if proto == protoTCP {
		return 16
	}
	return 6
}

// partial returns p as a Linux sender leaves it with CHECKSUM_PARTIAL: the
// transport checksum field holds the folded pseudo-header sum.
func partial(p []byte) []byte {
	q := bytes.Clone(p)
	seg := q[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(seg[checksumOffset(q[9]):], pseudoHeaderSum(q, len(seg)))
	return q
}

// verifies reports whether p's transport checksum verifies.
func verifies(p []byte) bool {
	ihl := int(p[0]&0x0f) * 4
	return checksum.Checksum(p[ihl:], pseudoHeaderSum(p, len(p)-ihl)) == 0xffff
}

func TestCompleteChecksum(t *testing.T) {
	tcp := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 1000)
	udp := transportPacket("10.244.1.5", "10.244.0.4", protoUDP, 33)
	corrupt := bytes.Clone(tcp)
	corrupt[len(corrupt)-1] ^= 0xff
	frag := partial(tcp)
	frag[6] = 0x20 // more fragments
	noCsum := bytes.Clone(udp)
	noCsum[ipv4HeaderLen+6], noCsum[ipv4HeaderLen+7] = 0, 0
	for _, tc := range []struct {
		name string
		in   []byte
		mode completion
		want []byte // nil: unchanged
	}{
		{"partial TCP", partial(tcp), completeIfPartial, tcp},
		{"partial UDP", partial(udp), completeIfPartial, udp},
		{"complete TCP", tcp, completeIfPartial, nil},
		{"complete UDP", udp, completeIfPartial, nil},
		{"corrupt TCP is not repaired", corrupt, completeIfPartial, nil},
		{"fragment", frag, completeIfPartial, nil},
		{"UDP without checksum", noCsum, completeIfPartial, nil},
		{"ICMP", ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0), completeIfPartial, nil},
		{"truncated TCP header", partial(tcp)[:ipv4HeaderLen+17], completeIfPartial, nil},
		{"marked partial TCP", partial(tcp), completeAlways, tcp},
		{"marked partial UDP", partial(udp), completeAlways, udp},
		{"marked partial, UDP without checksum", noCsum, completeAlways, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := bytes.Clone(tc.in)
			if tc.name == "truncated TCP header" {
				binary.BigEndian.PutUint16(in[2:4], uint16(len(in)))
			}
			got := bytes.Clone(in)
			done := completeChecksum(got, tc.mode)
			want := tc.want
			if want == nil {
				want = in
			}
			if done != (tc.want != nil) || !bytes.Equal(got, want) {
				t.Fatalf("completeChecksum = %v\n got %x\nwant %x (completed: %v)", done, got, want, tc.want != nil)
			}
		})
	}
}

// A kernel sender's partial checksums are completed by the backends over
// UDP (vxlan and udp), which cannot be told which packets are partial.
func TestDatagramBackendsCompletePartialChecksums(t *testing.T) {
	tcp := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 1400)
	t.Run(NameVXLAN, func(t *testing.T) {
		_, b, _, connB := vxlanPair(t)
		got, _ := recvOne(t, b, connB, addrPort(nodeA, 40000), validDatagram(partial(tcp)))
		wantPacket(t, got, tcp)
		got, _ = recvOne(t, b, connB, addrPort(nodeA, 40000), validDatagram(tcp))
		wantPacket(t, got, tcp)
		wantStats(t, b.Stats(), Stats{RxPackets: 2, RxBytes: 2 * uint64(len(tcp)), ChecksumsCompleted: 1})
	})
	t.Run(NameUDP, func(t *testing.T) {
		_, b, _, connB := udpPair(t)
		got, _ := recvOne(t, b, connB, addrPort(nodeA, DefaultUDPPort), partial(tcp))
		wantPacket(t, got, tcp)
		wantStats(t, b.Stats(), Stats{RxPackets: 1, RxBytes: uint64(len(tcp)), ChecksumsCompleted: 1})
	})
}

// metaDevice is a fake AF_PACKET socket that reports receive metadata: the
// next Read's frame carries next.
type metaDevice struct {
	*linktest.Device
	next link.RxMeta
}

func (m *metaDevice) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	n, err := m.Device.Read(bufs[:1], sizes, offset)
	meta[0] = m.next
	return n, err
}

func newMetaDirectA(t *testing.T, clk arp.Clock) (*Direct, *metaDevice) {
	t.Helper()
	dev := &metaDevice{Device: linktest.NewDevice("underlay", 1500, 8)}
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.SetPeers(indexed(Peer{Node: "b", Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}}))
	expectFrame(t, dev.Device, arpRequestFromA(nodeB))
	return d, dev
}

// TestDirectChecksumPartial: the direct backend completes exactly the frames
// the socket marks partial (TP_STATUS_CSUMNOTREADY) and guesses nothing.
func TestDirectChecksumPartial(t *testing.T) {
	d, dev := newMetaDirectA(t, &fakeClock{})
	learnPeer(t, d, dev.Device)
	tcp := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 1400)
	dev.next = link.RxChecksumPartial
	got, _ := recvFrame(t, d, dev.Device, ipv4Frame(underlayMACA, underlayMACB, partial(tcp)))
	wantPacket(t, got, tcp)
	dev.next = 0
	got, _ = recvFrame(t, d, dev.Device, ipv4Frame(underlayMACA, underlayMACB, partial(tcp)))
	wantPacket(t, got, partial(tcp))
	wantStats(t, d.Stats(), Stats{RxPackets: 2, RxBytes: 2 * uint64(len(tcp)), ChecksumsCompleted: 1, ARPLearned: 1, ARPRequests: 1})
}

// TestDirectVLANDropped: a frame that carried an 802.1Q tag is another
// network's, an IPv4 frame to us and an ARP reply from a peer alike.
func TestDirectVLANDropped(t *testing.T) {
	d, dev := newMetaDirectA(t, &fakeClock{})
	dev.next = link.RxVLAN
	recvFrame(t, d, dev.Device, arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA))
	inner := ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee)
	if got, _ := recvFrame(t, d, dev.Device, ipv4Frame(underlayMACA, underlayMACB, inner)); got != nil {
		t.Fatalf("VLAN-tagged frame delivered: %x", got)
	}
	if n := d.Neighbours(); len(n) != 1 || n[0].State != arp.Incomplete || !n[0].MAC.IsZero() {
		t.Fatalf("learned from a VLAN-tagged ARP reply: %+v, want B still Incomplete", n)
	}
	dev.next = 0
	if got, _ := recvFrame(t, d, dev.Device, ipv4Frame(underlayMACA, underlayMACB, inner)); got == nil {
		t.Fatal("untagged frame not delivered")
	}
	wantStats(t, d.Stats(), Stats{DropVLAN: 2, RxPackets: 1, RxBytes: uint64(len(inner)), ARPRequests: 1})
}

// TestDirectARPImpostor: a host on the underlay answers ARP for peer B. The
// table keeps B's MAC and re-probes it, B answers, and B's traffic keeps
// flowing both ways; the impostor's claim is counted as a conflict.
func TestDirectARPImpostor(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	var conflicts []string
	dev := linktest.NewDevice("underlay", 1500, 8)
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: clk,
		OnConflict: func(peer netip.Addr, known, claimed link.HardwareAddr) {
			conflicts = append(conflicts, peer.String()+" "+known.String()+" "+claimed.String())
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetPeers(indexed(Peer{Node: "b", Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}}))
	expectFrame(t, dev, arpRequestFromA(nodeB))
	learnPeer(t, d, dev)

	toB := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	fromB := ipv4Frame(underlayMACA, underlayMACB, ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee))
	sendToB := func() {
		t.Helper()
		if n, err := d.Send([][]byte{withHeadroom(toB)}, []uint32{0}, testOffset); n != 1 || err != nil {
			t.Fatalf("Send = %d, %v; want 1, nil", n, err)
		}
		expectFrame(t, dev, ipv4Frame(underlayMACB, underlayMACA, toB))
	}

	// The impostor's unsolicited reply, and a gratuitous request.
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, strangerMAC, nodeB, nodeA))
	expectFrame(t, dev, arpFrame(arp.OpRequest, underlayMACB, underlayMACA, nodeA, nodeB)) // re-probe of B's MAC
	recvFrame(t, d, dev, arpFrame(arp.OpRequest, link.Broadcast, strangerMAC, nodeB, nodeB))
	expectNoFrame(t, dev)
	sendToB()
	if got, peer := recvFrame(t, d, dev, fromB); got == nil || peer != 0 {
		t.Fatalf("B's frame during the conflict: delivered %v from peer %d", got != nil, peer)
	}
	// B answers the probe; the conflict is over.
	clk.advance(500 * time.Millisecond)
	d.Tick()
	learnPeer(t, d, dev)
	for range 100 {
		clk.advance(100 * time.Millisecond)
		d.Tick()
	}
	expectNoFrame(t, dev)
	sendToB()
	if got, _ := recvFrame(t, d, dev, fromB); got == nil {
		t.Fatal("B's frame after the conflict was dropped")
	}
	if n := d.Neighbours(); len(n) != 1 || n[0].MAC != underlayMACB || n[0].State != arp.Reachable {
		t.Fatalf("Neighbours() = %+v, want B at %v, REACHABLE", n, underlayMACB)
	}
	if want := []string{"192.0.2.2 02:00:00:00:00:0b 02:00:00:00:00:0c"}; len(conflicts) != 1 || conflicts[0] != want[0] {
		t.Errorf("OnConflict calls %q, want %q", conflicts, want)
	}
	n := uint64(len(toB))
	wantStats(t, d.Stats(), Stats{ARPRequests: 2, ARPLearned: 2, ARPConflicts: 2, TxPackets: 2, TxBytes: 2 * n, RxPackets: 2, RxBytes: 2 * n})
}

// TestDirectPeerMACMoves: B really moved to another MAC and its old one is
// silent: after the re-probes the claimed MAC is taken and probed, and Send
// follows it.
func TestDirectPeerMACMoves(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	dev := linktest.NewDevice("underlay", 1500, 16)
	d := newDirectA(t, dev, clk)
	defer d.Close()
	learnPeer(t, d, dev)
	newMAC := link.HardwareAddr{0x02, 0, 0, 0, 0, 0xbb}
	recvFrame(t, d, dev, arpFrame(arp.OpRequest, link.Broadcast, newMAC, nodeB, nodeB))
	for range 30 {
		clk.advance(100 * time.Millisecond)
		d.Tick()
	}
	probe := func(mac link.HardwareAddr) []byte { return arpFrame(arp.OpRequest, mac, underlayMACA, nodeA, nodeB) }
	for _, want := range [][]byte{probe(underlayMACB), probe(underlayMACB), probe(underlayMACB), probe(newMAC)} {
		expectFrame(t, dev, want)
	}
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, newMAC, nodeB, nodeA))
	toB := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, _ := d.Send([][]byte{withHeadroom(toB)}, []uint32{0}, testOffset); n != 1 {
		t.Fatalf("Send = %d, want 1", n)
	}
	expectFrame(t, dev, ipv4Frame(newMAC, underlayMACA, toB))
	wantStats(t, d.Stats(), Stats{ARPRequests: 5, ARPLearned: 2, ARPConflicts: 1, ARPMACChanges: 1, TxPackets: 1, TxBytes: uint64(len(toB))})
}

// failingDevice refuses every write.
type failingDevice struct{ *linktest.Device }

func (failingDevice) Write([][]byte, int) (int, error) { return 0, errors.New("no buffer space") }

// TestDirectARPSendErrors: ARP requests the underlay refuses are counted in
// arp_send_errors, not as sent packets' errors, and in the table's stats.
func TestDirectARPSendErrors(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	d, err := NewDirect(failingDevice{linktest.NewDevice("underlay", 1500, 1)}, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetPeers(indexed(Peer{Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}})) // the first request, through the table
	d.Send([][]byte{withHeadroom(ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0))}, []uint32{0}, testOffset)
	for range 4 {
		clk.advance(time.Second)
		d.Tick()
	}
	wantStats(t, d.Stats(), Stats{ARPRequests: 3, ARPSendErrors: 3, ARPFailures: 1, DropNoNeighbour: 1})
	if s := d.table.Stats(); s.SendFailures != 3 {
		t.Errorf("table SendFailures = %d, want 3", s.SendFailures)
	}
}

func TestCompleteChecksumAllocs(t *testing.T) {
	p := partial(transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 1400))
	if a := allocs.PerOp(100, 1, func() { completeChecksum(p, completeAlways) }); a != 0 {
		t.Errorf("completeChecksum: %g allocations per packet, want 0", a)
	}
}

// BenchmarkCompleteChecksum measures what Recv pays per TCP packet: the
// pseudo-header test alone for a complete packet (every packet from a
// taprouter or NIC-offloaded peer), the full completion for a partial one.
func BenchmarkCompleteChecksum(b *testing.B) {
	full := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 1400)
	part := partial(full)
	b.Run("complete", func(b *testing.B) {
		b.SetBytes(int64(len(full)))
		b.ReportAllocs()
		for b.Loop() {
			completeChecksum(full, completeIfPartial)
		}
	})
	b.Run("partial", func(b *testing.B) {
		p := bytes.Clone(part)
		b.SetBytes(int64(len(p)))
		b.ReportAllocs()
		for b.Loop() {
			copy(p[ipv4HeaderLen+16:], part[ipv4HeaderLen+16:ipv4HeaderLen+18])
			completeChecksum(p, completeIfPartial)
		}
	})
}
