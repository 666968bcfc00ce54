package router

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// capGSODevice is a capDevice that moves super-frames whole
// (link.GSODevice): WriteGSO keeps each frame with its GSO, and the test
// puts a super-frame to read in super, behind headroom.
type capGSODevice struct {
	capDevice
	super []byte
	gso   []link.GSO // per frame in out
}

var _ link.GSODevice = (*capGSODevice)(nil)

func (d *capGSODevice) GSO() bool { return true }
func (d *capGSODevice) ReadGSO([][]byte, []int, []link.RxMeta, []link.GSO, int) (int, error) {
	return 0, link.ErrClosed
}
func (d *capGSODevice) SuperFrame() []byte { return d.super }
func (d *capGSODevice) WriteGSO(bufs [][]byte, g []link.GSO, offset int) (int, error) {
	n, err := d.capDevice.Write(bufs, offset)
	d.mu.Lock()
	d.gso = append(d.gso, g[:n]...)
	d.mu.Unlock()
	return n, err
}

// takeGSO returns and forgets what was written, with each frame's GSO.
func (d *capGSODevice) takeGSO() ([][]byte, []link.GSO) {
	out := d.take()
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.gso
	d.gso = nil
	return out, g
}

// addGSOPod attaches a pod 10.244.0.<last> whose device moves super-frames.
func (n *syncNode) addGSOPod(t *testing.T, last byte, mtu int) (*capGSODevice, *Port) {
	t.Helper()
	ip, mac := netip.AddrFrom4([4]byte{10, 244, 0, last}), link.HardwareAddr{2, 0, 0, 0, 0, last}
	d := &capGSODevice{capDevice: capDevice{name: fmt.Sprintf("g%d", last), mtu: mtu}, super: make([]byte, headroom+link.MaxLarge)}
	p, err := n.r.AddPodPort(d.name, d, ip, mac, mtu)
	if err != nil {
		t.Fatal(err)
	}
	n.r.SetStaticNeighbour(d.name, ip, mac)
	return d, p
}

// wholeFromPod feeds the TCP or UDP super-frame pkt (an IPv4 packet) as a
// batch of one from the pod behind port p and device d, described by g.
func (n *syncNode) wholeFromPod(d *capGSODevice, p *Port, pkt []byte, g link.GSO) {
	n.wholeFrameFromPod(d, p, ethernet(gwMAC, p.MAC, etherTypeIP, pkt), g)
}

// wholeFrameFromPod is wholeFromPod with the Ethernet frame f.
func (n *syncNode) wholeFrameFromPod(d *capGSODevice, p *Port, f []byte, g link.GSO) {
	n.w.sizes[0] = copy(d.super[headroom:], f)
	n.w.gso[0] = g
	n.w.receivePort(p, 1)
}

// tcpSuperSegment builds a TCP super-segment of segs segments of mss payload
// bytes (the last one short by short bytes) from src to dst, with DF as
// given and flags ACK|PSH (FIN too if fin), its checksum field the
// pseudo-header sum as a sender's TSO leaves it.
func tcpSuperSegment(src, dst netip.Addr, ttl uint8, df bool, segs, mss, short int, fin bool) []byte {
	payload := make([]byte, segs*mss-short)
	for i := range payload {
		payload[i] = byte(i*7 + i>>8)
	}
	tcp := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1_000_000)
	binary.BigEndian.PutUint32(tcp[8:], 77)
	tcp[12] = 5 << 4
	tcp[13] = tcpFlagACK | tcpFlagPSH
	if fin {
		tcp[13] |= tcpFlagFIN
	}
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], payload)
	pkt := ipv4(src, dst, ttl, header.TCPProtocolNumber, df, tcp)
	binary.BigEndian.PutUint16(pkt[20+16:], gso.PseudoHeaderSum(pkt, len(tcp)))
	return pkt
}

const (
	tcpFlagFIN = 0x01
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
)

// checkSegments checks that segs (IPv4 packets) are the super-segment
// super cut for an MTU of mtu: every one at most mtu bytes with valid IPv4
// and TCP checksums, TTL ttl, sequence numbers following on, PSH and FIN
// only on the last, the payloads together super's.
func checkSegments(t *testing.T, segs [][]byte, super []byte, mtu int, ttl uint8) {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	var payload []byte
	seq := binary.BigEndian.Uint32(super[20+4:])
	for i, s := range segs {
		h := header.IPv4(s)
		if len(s) > mtu || !h.IsValid(len(s)) || !h.IsChecksumValid() || int(h.TotalLength()) != len(s) {
			t.Fatalf("segment %d: %d bytes (MTU %d), IPv4 valid %v, checksum valid %v", i, len(s), mtu, h.IsValid(len(s)), h.IsChecksumValid())
		}
		if h.TTL() != ttl {
			t.Errorf("segment %d: TTL %d, want %d", i, h.TTL(), ttl)
		}
		tcp := s[20:]
		if c := checksum.Checksum(tcp, gso.PseudoHeaderSum(s, len(tcp))); c != 0xffff {
			t.Errorf("segment %d: TCP checksum invalid (sum %#x)", i, c)
		}
		if got := binary.BigEndian.Uint32(tcp[4:]); got != seq {
			t.Errorf("segment %d: seq %d, want %d", i, got, seq)
		}
		last := i == len(segs)-1
		want := super[20+13]
		if !last {
			want &^= tcpFlagPSH | tcpFlagFIN
		}
		if tcp[13] != want {
			t.Errorf("segment %d: flags %#x, want %#x", i, tcp[13], want)
		}
		seq += uint32(len(tcp) - 20)
		payload = append(payload, tcp[20:]...)
	}
	if !bytes.Equal(payload, super[40:]) {
		t.Errorf("the segments carry %d payload bytes, not the super-segment's %d", len(payload), len(super)-40)
	}
}

// A super-frame between two pods whose devices take super-frames crosses
// whole: one frame out, its GSO as it came, TTL 63 with a valid header
// checksum, the rest (the partial TCP checksum included) untouched; the
// counters count its 10 segments.
func TestSuperFrameSameNodeWhole(t *testing.T) {
	n := newSyncNode(t, Config{})
	da, pa := n.addGSOPod(t, 20, 1500)
	db, pb := n.addGSOPod(t, 21, 1500)
	super := tcpSuperSegment(pa.IP, pb.IP, 64, true, 10, 1448, 100, false)
	before := n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1448})
	out, g := db.takeGSO()
	if len(out) != 1 || g[0] != (link.GSO{Type: link.GSOTCPv4, Size: 1448}) {
		t.Fatalf("pb got %d frames with GSO %v, want 1 with {TCPv4 1448}", len(out), g)
	}
	f := out[0]
	if link.HardwareAddr(f[0:6]) != pb.MAC || link.HardwareAddr(f[6:12]) != gwMAC || len(f) != 14+len(super) {
		t.Fatalf("pb got %d bytes %x → %x, want %d from the gateway", len(f), f[6:12], f[0:6], 14+len(super))
	}
	h := header.IPv4(f[14:])
	if h.TTL() != 63 || !h.IsChecksumValid() {
		t.Errorf("TTL %d checksum valid %v, want 63, true", h.TTL(), h.IsChecksumValid())
	}
	want := append([]byte(nil), super...)
	want[8] = 63
	copy(want[10:12], f[14+10:14+12])
	if !bytes.Equal(f[14:], want) {
		t.Error("the super-frame changed beyond its TTL and header checksum")
	}
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 10})
	if pa.RxPackets.Load() != 10 || pb.TxPackets.Load() != 10 || pa.RxBytes.Load() != uint64(len(super)+14) || pb.TxBytes.Load() != uint64(len(super)+14) {
		t.Errorf("pa rx %d packets %d bytes, pb tx %d packets %d bytes; want 10 and %d each", pa.RxPackets.Load(), pa.RxBytes.Load(), pb.TxPackets.Load(), pb.TxBytes.Load(), len(super)+14)
	}
}

// To a pod whose device takes no super-frames, and to the tunnel, the
// router cuts one: segments of the sender's size, checksums computed,
// sequence numbers following on, PSH and FIN on the last only.
func TestSuperFrameCutForPlainEgress(t *testing.T) {
	n := newSyncNode(t, Config{}, 1500)
	da, pa := n.addGSOPod(t, 20, 1500)
	plain := n.pods[0]
	super := tcpSuperSegment(pa.IP, plain.ip, 64, true, 7, 1400, 33, true)
	before := n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1400})
	out := plain.dev.take()
	segs := make([][]byte, len(out))
	for i, f := range out {
		segs[i] = f[14:]
	}
	if len(segs) != 7 {
		t.Fatalf("pod got %d frames, want 7 segments", len(segs))
	}
	checkSegments(t, segs, super, 1440, 63)
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 7})

	// Through the tunnel (udp, inner MTU 1450): the same 7 segments.
	remote := netip.MustParseAddr("10.244.1.9")
	super = tcpSuperSegment(pa.IP, remote, 64, true, 7, 1400, 33, false)
	before = n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1400})
	dgrams := n.conn.take()
	segs = segs[:0]
	for _, d := range dgrams {
		segs = append(segs, d.Data)
	}
	if len(segs) != 7 {
		t.Fatalf("tunnel got %d datagrams, want 7", len(segs))
	}
	checkSegments(t, segs, super, 1450, 63)
	var bytes uint64
	for _, s := range segs {
		bytes += uint64(len(s))
	}
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 7, "tunnel_tx_packets": 7, "tunnel_tx_bytes": bytes})
}

// Segments bigger than the egress MTU: with DF, one "fragmentation needed"
// naming the MTU, and the super-frame's segments dropped as too big;
// without DF, segments cut to the MTU instead (the payload all there).
func TestSuperFrameEgressMTU(t *testing.T) {
	n := newSyncNode(t, Config{})
	da, pa := n.addGSOPod(t, 20, 1500)
	db, pb := n.addGSOPod(t, 21, 1200)
	super := tcpSuperSegment(pa.IP, pb.IP, 64, true, 4, 1460, 0, false)
	before := n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1460})
	icmp := onlyICMPBack(t, da, db, pa.IP, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded)
	if icmp.MTU() != 1200 {
		t.Errorf("frag-needed MTU %d, want 1200", icmp.MTU())
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_too_big": 4, "icmp_frag_needed": 1, "forwarded": 1})

	super = tcpSuperSegment(pa.IP, pb.IP, 64, false, 4, 1460, 0, false)
	before = n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1460})
	out, g := db.takeGSO()
	segs := make([][]byte, len(out))
	for i, f := range out {
		if g[i].Type != link.GSONone {
			t.Errorf("frame %d to pb: GSO %v, want a plain segment", i, g[i])
		}
		segs[i] = f[14:]
	}
	// 5840 payload bytes in segments of 1200-40.
	if len(segs) != 6 {
		t.Fatalf("pb got %d segments, want 6", len(segs))
	}
	checkSegments(t, segs, super, 1200, 63)
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 6})
}

// onlyICMPBack checks that a super-frame from the pod behind from, to the
// pod behind to, reached no one but came back to from as one ICMP error of
// type typ and code code from the gateway, and returns that message.
func onlyICMPBack(t *testing.T, from, to *capGSODevice, fromIP netip.Addr, typ header.ICMPv4Type, code header.ICMPv4Code) header.ICMPv4 {
	t.Helper()
	if out, _ := to.takeGSO(); len(out) != 0 {
		t.Fatalf("%s got %d frames, want none", to.name, len(out))
	}
	back := from.take()
	if len(back) != 1 {
		t.Fatalf("%s got %d frames, want 1 ICMP", from.name, len(back))
	}
	return checkICMP(t, header.IPv4(back[0][14:]), gateway, fromIP, typ, code)
}

// TTL 1: one "time exceeded" for the super-frame, its 3 segments dropped.
func TestSuperFrameTTLExceeded(t *testing.T) {
	n := newSyncNode(t, Config{})
	da, pa := n.addGSOPod(t, 20, 1500)
	db, pb := n.addGSOPod(t, 21, 1500)
	super := tcpSuperSegment(pa.IP, pb.IP, 1, true, 3, 1000, 0, false)
	before := n.r.Stats()
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1000})
	onlyICMPBack(t, da, db, pa.IP, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded)
	wantDelta(t, n.r, before, map[string]uint64{"drop_ttl": 3, "icmp_time_exceeded": 1, "forwarded": 1})
}

// A pod whose MAC the router does not know yet gets the segments, queued
// for ARP one by one (a 64 KB frame does not wait in the neighbour queue).
func TestSuperFrameUnresolvedNeighbourCut(t *testing.T) {
	n := newSyncNode(t, Config{})
	da, pa := n.addGSOPod(t, 20, 1500)
	ip := netip.AddrFrom4([4]byte{10, 244, 0, 30})
	db := &capGSODevice{capDevice: capDevice{name: "g30", mtu: 1500}, super: make([]byte, headroom+link.MaxLarge)}
	if _, err := n.r.AddPodPort(db.name, db, ip, link.HardwareAddr{2, 0, 0, 0, 0, 30}, 1500); err != nil {
		t.Fatal(err)
	}
	db.takeGSO() // the port's ARP announcement and request
	super := tcpSuperSegment(pa.IP, ip, 64, true, 3, 1000, 0, false)
	n.wholeFromPod(da, pa, super, link.GSO{Type: link.GSOTCPv4, Size: 1000})
	out, _ := db.takeGSO()
	if len(out) != 1 || binary.BigEndian.Uint16(out[0][12:14]) != etherTypeARP {
		t.Fatalf("g30 got %d frames before its MAC is known, want 1, the router's ARP request", len(out))
	}
	if !hasQueued(n.r, ip) {
		t.Fatal("nothing queued for 10.244.0.30")
	}
}
