package tunnel

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/udp"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// flowPacket returns a packet of proto (TCP or UDP) from src:sport to
// dst:dport with n bytes of payload and correct checksums.
func flowPacket(src, dst string, proto byte, sport, dport uint16, n int) []byte {
	p := transportPacket(src, dst, proto, n)
	seg := p[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(seg[0:2], sport)
	binary.BigEndian.PutUint16(seg[2:4], dport)
	off := checksumOffset(proto)
	binary.BigEndian.PutUint16(seg[off:], 0)
	binary.BigEndian.PutUint16(seg[off:], ^checksum.Checksum(seg, pseudoHeaderSum(p, len(seg))))
	return p
}

// refFlowHash is flowHash written from the definition, field by field, for
// the fuzz target's invariant: the hash of a flow key taken apart with no
// shortcut.
func refFlowHash(p []byte) uint32 {
	if len(p) < 20 {
		return 0
	}
	src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	proto := p[9]
	ihl := int(p[0]%16) * 4
	mf := p[6]&0x20 != 0
	offset := int(p[6]%32)<<8 | int(p[7])
	var sport, dport uint16
	if (proto == 6 || proto == 17) && !mf && offset == 0 && ihl >= 20 && len(p) >= ihl+4 {
		sport, dport = uint16(p[ihl])<<8|uint16(p[ihl+1]), uint16(p[ihl+2])<<8|uint16(p[ihl+3])
	}
	s, d := src.As4(), dst.As4()
	addrs := uint64(binary.BigEndian.Uint32(s[:]))<<32 | uint64(binary.BigEndian.Uint32(d[:]))
	return flowKeyHash(addrs, uint32(sport)<<16|uint32(dport), proto)
}

// TestFlowHash: the hash counts the addresses, protocol and (TCP, UDP, not
// a fragment) ports, and nothing else.
func TestFlowHash(t *testing.T) {
	base := flowPacket("10.244.0.4", "10.244.1.5", protoTCP, 40000, 80, 100)
	h := flowHash(base)
	same := func(name string, edit func(p []byte) []byte) {
		t.Helper()
		p := edit(slices.Clone(base))
		if got := flowHash(p); got != h {
			t.Errorf("%s: hash %#x, want the flow's %#x", name, got, h)
		}
	}
	differ := func(name string, edit func(p []byte) []byte) {
		t.Helper()
		p := edit(slices.Clone(base))
		if got := flowHash(p); got == h {
			t.Errorf("%s: hash %#x, the same as the flow's", name, got)
		}
	}
	same("TTL", func(p []byte) []byte { p[8] = 3; return p })
	same("ID", func(p []byte) []byte { p[4], p[5] = 0xab, 0xcd; return p })
	same("TOS", func(p []byte) []byte { p[1] = 0xb8; return p })
	same("checksums", func(p []byte) []byte { p[10], p[36] = ^p[10], ^p[36]; return p })
	same("DF", func(p []byte) []byte { p[6] |= 0x40; return p })
	same("payload", func(p []byte) []byte { p[60] ^= 0xff; return p })
	same("sequence number", func(p []byte) []byte { p[24] ^= 0xff; return p })
	same("cut after the ports", func(p []byte) []byte { return p[:24] })
	differ("source port", func(p []byte) []byte { p[21]++; return p })
	differ("destination port", func(p []byte) []byte { p[23]++; return p })
	differ("source address", func(p []byte) []byte { p[15]++; return p })
	differ("destination address", func(p []byte) []byte { p[19]++; return p })
	differ("protocol", func(p []byte) []byte { p[9] = protoUDP; return p })
	differ("swapped ports", func(p []byte) []byte {
		p[20], p[21], p[22], p[23] = p[22], p[23], p[20], p[21]
		return p
	})

	// Without ports: every fragment (the first too, so that all of one
	// datagram go together), other protocols, and cut headers hash
	// like a packet whose ports are zero.
	noPorts := flowHash(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, 0, 0, 100))
	for name, edit := range map[string]func(p []byte) []byte{
		"first fragment (MF)":  func(p []byte) []byte { p[6] |= 0x20; return p },
		"later fragment":       func(p []byte) []byte { p[7] = 185; return p },
		"last fragment":        func(p []byte) []byte { p[6] |= 0x1f; return p },
		"cut in the ports":     func(p []byte) []byte { return p[:23] },
		"cut after the header": func(p []byte) []byte { return p[:20] },
		"IHL past the end":     func(p []byte) []byte { p[0] = 0x4f; return p[:60] },
		"IHL below 5":          func(p []byte) []byte { p[0] = 0x44; return p },
	} {
		p := edit(slices.Clone(base))
		if got := flowHash(p); got != noPorts {
			t.Errorf("%s: hash %#x, want %#x", name, got, noPorts)
		}
	}
	gre := slices.Clone(base)
	gre[9] = 47
	gre2 := slices.Clone(gre)
	gre2[21]++
	if flowHash(gre) != flowHash(gre2) {
		t.Error("a GRE packet's bytes where TCP has ports count")
	}
	icmp := icmpEcho("10.244.0.4", "10.244.1.5", 1)
	icmp2 := icmpEcho("10.244.0.4", "10.244.1.5", 2)
	if flowHash(icmp) != flowHash(icmp2) {
		t.Error("two ICMP echoes of one address pair hash differently")
	}
	for n := range ipv4HeaderLen {
		if got := flowHash(base[:n]); got != 0 {
			t.Errorf("a %d-byte packet hashes to %#x, want 0", n, got)
		}
	}
	// IP options move the ports.
	opts := make([]byte, 0, len(base)+4)
	opts = append(append(append(opts, base[:20]...), 1, 1, 1, 1), base[20:]...)
	opts[0] = 0x46
	if got := flowHash(opts); got != h {
		t.Errorf("with 4 bytes of IP options: hash %#x, want %#x", got, h)
	}
}

// TestSenderOfSpreads: flows spread over the senders; 1 sender takes all.
func TestSenderOfSpreads(t *testing.T) {
	const n, flows = 8, 8000
	var count [n]int
	for i := range flows {
		p := flowPacket("10.244.0.4", "10.244.1.5", protoTCP, uint16(32768+i), 5201, 0)
		count[senderOf(p, n)]++
		if k := senderOf(p, 1); k != 0 {
			t.Fatalf("senderOf(p, 1) = %d", k)
		}
	}
	// Each sender's share is binomial(8000, 1/8): mean 1000, σ ≈ 30. The
	// hash is fixed, so this is a fixed outcome, not a chance.
	for k, c := range count {
		if c < 850 || c > 1150 {
			t.Errorf("sender %d took %d of %d flows, want about %d: %v", k, c, flows, flows/n, count)
		}
	}
}

func FuzzFlowHash(f *testing.F) {
	f.Add(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, 40000, 80, 20), uint8(8))
	f.Add(flowPacket("10.244.0.4", "10.244.1.5", protoUDP, 53, 53, 0)[:22], uint8(64))
	f.Add(icmpEcho("10.244.0.4", "10.244.1.5", 1), uint8(3))
	f.Add([]byte{0x4f, 0, 0, 20}, uint8(1))
	f.Fuzz(func(t *testing.T, p []byte, n uint8) {
		h := flowHash(p)
		if ref := refFlowHash(p); h != ref {
			t.Fatalf("flowHash %#x, from the flow's fields %#x: %x", h, ref, p)
		}
		// The fields outside the flow do not count.
		if len(p) >= ipv4HeaderLen {
			q := slices.Clone(p)
			q[1], q[2], q[3], q[4], q[5], q[8], q[10], q[11] = ^q[1], ^q[2], ^q[3], ^q[4], ^q[5], ^q[8], ^q[10], ^q[11]
			q[6] ^= 0x40 // DF
			ihl := int(p[0]&0x0f) * 4
			for i := max(ihl, ipv4HeaderLen) + 4; i < len(q); i++ {
				q[i] ^= 0x5a
			}
			if g := flowHash(q); g != h {
				t.Fatalf("changing TOS, length, ID, DF, TTL, checksum and payload changed the hash: %#x, then %#x", h, g)
			}
		}
		senders := int(n%MaxSenders) + 1
		if k := senderOf(p, senders); k < 0 || k >= senders {
			t.Fatalf("senderOf(p, %d) = %d", senders, k)
		}
	})
}

// recordingConn is a DatagramConn that records the inner source ports of
// the packets of each WriteTo and reports the WriteStats it is given.
type recordingConn struct {
	checkingConn
	calls  [][]uint16 // per WriteTo: the inner source port of each packet
	closed bool
	stats  udp.WriteStats
}

func (c *recordingConn) WriteTo(bufs [][]byte, _ []netip.AddrPort, offset int) (int, error) {
	var ports []uint16
	for _, b := range bufs {
		ports = append(ports, binary.BigEndian.Uint16(b[testOffset+ipv4HeaderLen:]))
	}
	c.calls = append(c.calls, ports)
	return len(bufs), nil
}
func (c *recordingConn) Close() error               { c.closed = true; return nil }
func (c *recordingConn) WriteStats() udp.WriteStats { return c.stats }

// TestSendSpread: Send groups a batch by the sender of each packet's flow,
// keeping each flow's order, one WriteTo per sender; a batch of one flow
// goes out whole; Stats sums the senders' write counters; Close closes
// every socket.
func TestSendSpread(t *testing.T) {
	const n = 4
	senders := make([]*recordingConn, n)
	cfg := VXLANConfig{LocalMAC: macA}
	for i := range senders {
		senders[i] = &recordingConn{}
		cfg.Senders = append(cfg.Senders, senders[i])
	}
	recv := &recordingConn{}
	v, err := NewVXLAN(recv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.SetPeers(indexed(Peer{Addr: nodeB}))

	// Source ports of flows on senders 0, 1 and 3 (none on 2), found by
	// senderOf: the test knows where each must go.
	flowOn := map[int]uint16{}
	for port := uint16(40000); len(flowOn) < 3; port++ {
		k := senderOf(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, port, 80, 0), n)
		if _, ok := flowOn[k]; !ok && k != 2 {
			flowOn[k] = port
		}
	}
	a, b, c := flowOn[0], flowOn[1], flowOn[3]
	order := []uint16{a, b, a, c, b, a, c}
	var bufs [][]byte
	for i, port := range order {
		// Equal flows, different payload lengths: order shows.
		bufs = append(bufs, withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, port, 80, i)))
	}
	if sent, err := v.Send(bufs, make([]uint32, len(bufs)), testOffset); sent != len(bufs) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, len(bufs))
	}
	want := [n][][]uint16{{{a, a, a}}, {{b, b}}, nil, {{c, c}}}
	for k, s := range senders {
		if !equalCalls(s.calls, want[k]) {
			t.Errorf("sender %d wrote %v, want %v", k, s.calls, want[k])
		}
	}
	if len(recv.calls) != 0 {
		t.Errorf("the receiving socket wrote %v, want nothing", recv.calls)
	}

	// One flow: one WriteTo of the batch as it is.
	bufs = bufs[:0]
	for i := range 5 {
		bufs = append(bufs, withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, b, 80, i)))
	}
	if sent, err := v.Send(bufs, make([]uint32, len(bufs)), testOffset); sent != len(bufs) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", sent, err, len(bufs))
	}
	if got, want := senders[1].calls, [][]uint16{{b, b}, {b, b, b, b, b}}; !equalCalls(got, want) {
		t.Errorf("sender 1 wrote %v, want %v", got, want)
	}

	senders[0].stats = udp.WriteStats{Messages: 10, GSOMessages: 1, GSODatagrams: 2, GSORefused: 3, GSOOversize: 4}
	senders[3].stats = udp.WriteStats{Messages: 20, GSOMessages: 10, GSODatagrams: 20, GSORefused: 30, GSOOversize: 40}
	recv.stats = udp.WriteStats{Messages: 100}
	s := v.Stats()
	if s.TxPackets != 12 || s.TxMessages != 100+10+20 || s.TxGSOMessages != 11 || s.TxGSODatagrams != 22 || s.TxGSORefused != 33 || s.TxGSOOversize != 44 {
		t.Errorf("stats %+v: want 12 packets, 130 messages, gso 11/22/33/44 (the sums)", s)
	}

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for k, s := range senders {
		if !s.closed {
			t.Errorf("Close left sender %d open", k)
		}
	}
	if !recv.closed {
		t.Error("Close left the receiving socket open")
	}
}

func equalCalls(a, b [][]uint16) bool {
	return slices.EqualFunc(a, b, func(x, y []uint16) bool { return slices.Equal(x, y) })
}

// failingConn fails every WriteTo after sending its first packet.
type failingConn struct{ recordingConn }

var errWrite = errors.New("write failed")

func (c *failingConn) WriteTo(bufs [][]byte, addrs []netip.AddrPort, offset int) (int, error) {
	c.recordingConn.WriteTo(bufs[:1], addrs, offset)
	return 1, errWrite
}

// TestSendSpreadErrors: a sender that fails part of its packets does not
// hold up the others; Send returns the packets sent and the first error,
// and the rest count as tx errors.
func TestSendSpreadErrors(t *testing.T) {
	ok, bad := &recordingConn{}, &failingConn{}
	v, err := NewUDP(&recordingConn{}, UDPConfig{Senders: []link.DatagramConn{bad, ok}})
	if err != nil {
		t.Fatal(err)
	}
	v.SetPeers(indexed(Peer{Addr: nodeB}))
	onBad, onOK := uint16(0), uint16(0)
	for port := uint16(1); onBad == 0 || onOK == 0; port++ {
		if senderOf(flowPacket("10.244.0.4", "10.244.1.5", protoUDP, port, 53, 0), 2) == 0 {
			onBad = port
		} else {
			onOK = port
		}
	}
	var bufs [][]byte
	for _, port := range []uint16{onBad, onOK, onBad, onOK, onBad} {
		bufs = append(bufs, withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoUDP, port, 53, 8)))
	}
	sent, err := v.Send(bufs, make([]uint32, len(bufs)), testOffset)
	if sent != 3 || !errors.Is(err, errWrite) {
		t.Fatalf("Send = %d, %v; want 3 (1 of 3 on the failing sender, 2 on the other), %v", sent, err, errWrite)
	}
	if s := v.Stats(); s.TxPackets != 3 || s.TxErrors != 2 {
		t.Errorf("stats: %d sent, %d errors; want 3, 2", s.TxPackets, s.TxErrors)
	}
	if !equalCalls(ok.calls, [][]uint16{{onOK, onOK}}) || !equalCalls(bad.calls, [][]uint16{{onBad}}) {
		t.Errorf("wrote %v and %v", ok.calls, bad.calls)
	}
}

// TestTooManySenders: more than MaxSenders is refused.
func TestTooManySenders(t *testing.T) {
	senders := make([]link.DatagramConn, MaxSenders+1)
	for i := range senders {
		senders[i] = &recordingConn{}
	}
	if _, err := NewVXLAN(&recordingConn{}, VXLANConfig{LocalMAC: macA, Senders: senders}); err == nil {
		t.Error("NewVXLAN took 65 senders")
	}
	if _, err := NewUDP(&recordingConn{}, UDPConfig{Senders: senders[:MaxSenders]}); err != nil {
		t.Errorf("NewUDP refused 64 senders: %v", err)
	}
}

// BenchmarkFlowHash is the cost of choosing a sender for one packet.
func BenchmarkFlowHash(b *testing.B) {
	p := flowPacket("10.244.0.4", "10.244.1.5", protoTCP, 40000, 5201, 1360)
	k := 0
	for b.Loop() {
		k += senderOf(p, 8)
	}
	if k < 0 {
		b.Fatal(k)
	}
}

// TestOneSender: with one sender, Send writes every batch through it
// whole, never through the receiving socket.
func TestOneSender(t *testing.T) {
	recv, only := &recordingConn{}, &recordingConn{}
	u, err := NewUDP(recv, UDPConfig{Senders: []link.DatagramConn{only}})
	if err != nil {
		t.Fatal(err)
	}
	u.SetPeers(indexed(Peer{Addr: nodeB}))
	bufs := [][]byte{
		withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoUDP, 1, 53, 8)),
		withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoUDP, 2, 53, 8)),
	}
	if n, err := u.Send(bufs, []uint32{0, 0}, testOffset); n != 2 || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	if !equalCalls(only.calls, [][]uint16{{1, 2}}) || len(recv.calls) != 0 {
		t.Errorf("the sender wrote %v, the receiving socket %v; want [[1 2]] and nothing", only.calls, recv.calls)
	}
}
