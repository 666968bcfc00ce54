package gso_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link/gso"
)

const (
	seq0 = 0xfffff000 // wraps inside a 64 KB super-segment
	id0  = 0xfffe     // wraps after two segments
)

// superSegment builds an IPv4 TCP packet with optLen bytes of TCP options,
// the given flags and payload, and a partial TCP checksum, as a kernel
// sender hands it to a device with TSO.
func superSegment(payload []byte, optLen int, flags header.TCPFlags) []byte {
	thl := header.TCPMinimumSize + optLen
	pkt := make([]byte, header.IPv4MinimumSize+thl+len(payload))
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)), ID: id0, Flags: header.IPv4FlagDontFragment, TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber),
		SrcAddr:  tcpipAddr(10, 244, 1, 2), DstAddr: tcpipAddr(10, 244, 0, 2),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(pkt[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: seq0, AckNum: 7, DataOffset: uint8(thl), Flags: flags, WindowSize: 512})
	for i := range optLen {
		tcp[header.TCPMinimumSize+i] = 1 // NOP
	}
	copy(pkt[header.IPv4MinimumSize+thl:], payload)
	// Partial: the folded pseudo-header sum, not the checksum.
	tcp.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp))))
	return pkt
}

func payloadOf(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

func bufs(n, size int) ([][]byte, []int) {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b, make([]int, n)
}

// check verifies the segments of pkt against the invariant: each is valid
// IPv4/TCP with correct checksums and at most mtu long, their sequence
// numbers are contiguous from the original's, IDs count up, FIN/PSH only on
// the last and CWR only on the first, and their payloads concatenated are
// the original payload. It returns the segments' payload lengths.
func check(t *testing.T, pkt []byte, mtu int, segs [][]byte) []int {
	t.Helper()
	oip := header.IPv4(pkt)
	otcp := header.TCP(pkt[oip.HeaderLength():])
	hdr := int(oip.HeaderLength()) + int(otcp.DataOffset())
	var joined []byte
	var lens []int
	for i, seg := range segs {
		if len(seg) > mtu {
			t.Fatalf("segment %d: %d bytes > MTU %d", i, len(seg), mtu)
		}
		ip := header.IPv4(seg)
		if !ip.IsValid(len(seg)) || int(ip.TotalLength()) != len(seg) || !ip.IsChecksumValid() {
			t.Fatalf("segment %d: bad IPv4 header % x", i, seg[:20])
		}
		if ip.ID() != oip.ID()+uint16(i) {
			t.Errorf("segment %d: ID %#x, want %#x", i, ip.ID(), oip.ID()+uint16(i))
		}
		if !bytes.Equal(seg[:10], setLen(pkt[:10], len(seg), ip.ID())) || !bytes.Equal(seg[12:20], pkt[12:20]) {
			t.Errorf("segment %d: IPv4 header differs beyond length, ID and checksum", i)
		}
		tcp := header.TCP(seg[ip.HeaderLength():])
		pseudo := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
		if checksum.Checksum(tcp, pseudo) != 0xffff {
			t.Errorf("segment %d: TCP checksum does not verify", i)
		}
		if want := otcp.SequenceNumber() + uint32(len(joined)); tcp.SequenceNumber() != want {
			t.Errorf("segment %d: seq %#x, want %#x", i, tcp.SequenceNumber(), want)
		}
		want := otcp.Flags()
		if i < len(segs)-1 {
			want &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if i > 0 {
			want &^= header.TCPFlagCwr
		}
		if tcp.Flags() != want {
			t.Errorf("segment %d: flags %v, want %v", i, tcp.Flags(), want)
		}
		if !bytes.Equal(seg[ip.HeaderLength():][4:8], binary.BigEndian.AppendUint32(nil, tcp.SequenceNumber())) ||
			!bytes.Equal(seg[ip.HeaderLength()+8 : hdr][:5], pkt[oip.HeaderLength()+8:][:5]) || !bytes.Equal(seg[ip.HeaderLength()+14 : hdr][:2], pkt[oip.HeaderLength()+14:][:2]) ||
			!bytes.Equal(seg[ip.HeaderLength()+18:hdr], pkt[oip.HeaderLength()+18:hdr]) {
			t.Errorf("segment %d: TCP header differs beyond seq, flags and checksum", i)
		}
		joined = append(joined, seg[hdr:]...)
		lens = append(lens, len(seg)-hdr)
	}
	if !bytes.Equal(joined, pkt[hdr:]) {
		t.Errorf("joined payloads (%d bytes) differ from the original's (%d bytes)", len(joined), len(pkt)-hdr)
	}
	return lens
}

// setLen returns the first 10 bytes of an IPv4 header with total length n
// and ID id.
func setLen(h []byte, n int, id uint16) []byte {
	h = append([]byte(nil), h...)
	binary.BigEndian.PutUint16(h[2:], uint16(n))
	binary.BigEndian.PutUint16(h[4:], id)
	return h
}

func split(t *testing.T, pkt []byte, mtu, room int) [][]byte {
	t.Helper()
	dst, sizes := bufs(64, room)
	n, err := gso.Split(pkt, mtu, dst, sizes)
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	segs := make([][]byte, n)
	for i := range n {
		segs[i] = dst[i][:sizes[i]]
	}
	return segs
}

func TestSplit64K(t *testing.T) {
	// A 64 KB TSO segment with timestamps (12 bytes of options), cut for
	// MTU 1450: 1450-20-32 = 1398 payload bytes per segment.
	const plen = 65535 - 20 - 32
	pkt := superSegment(payloadOf(plen), 12, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagCwr|header.TCPFlagFin)
	segs := split(t, pkt, 1450, 2000)
	lens := check(t, pkt, 1450, segs)
	if want := (plen + 1397) / 1398; len(segs) != want {
		t.Fatalf("%d segments, want %d", len(segs), want)
	}
	for i, l := range lens[:len(lens)-1] {
		if l != 1398 {
			t.Errorf("segment %d: %d payload bytes, want 1398", i, l)
		}
	}
	if want := plen - 1398*(len(segs)-1); lens[len(lens)-1] != want {
		t.Errorf("last segment: %d payload bytes, want %d", lens[len(lens)-1], want)
	}
	if f := header.TCP(segs[0][20:]).Flags(); f != header.TCPFlagAck|header.TCPFlagCwr {
		t.Errorf("first flags %v, want ACK|CWR", f)
	}
	if f := header.TCP(segs[len(segs)-1][20:]).Flags(); f != header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin {
		t.Errorf("last flags %v, want ACK|PSH|FIN", f)
	}
}

func TestSplitExactAndSmall(t *testing.T) {
	for _, tc := range []struct {
		name       string
		plen, segs int
	}{
		{"two exact", 2 * 1460, 2},
		{"one byte over", 1461, 2},
		{"fits", 100, 1},
		{"no payload", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := superSegment(payloadOf(tc.plen), 0, header.TCPFlagAck)
			segs := split(t, pkt, 1500, 1500)
			check(t, pkt, 1500, segs)
			if len(segs) != tc.segs {
				t.Errorf("%d segments, want %d", len(segs), tc.segs)
			}
		})
	}
}

func TestSplitShortBuffers(t *testing.T) {
	// Buffers smaller than the MTU bound the segments too.
	pkt := superSegment(payloadOf(3000), 0, header.TCPFlagAck)
	segs := split(t, pkt, 9000, 1040)
	check(t, pkt, 1040, segs)
	if len(segs) != 3 {
		t.Errorf("%d segments, want 3 (1000+1000+1000)", len(segs))
	}
	var s gso.Segmenter
	if err := s.Reset(pkt, 1500); err != nil {
		t.Fatal(err)
	}
	if n := s.Next(make([]byte, 40)); n != 0 || s.Done() {
		t.Errorf("Next into a buffer with no room for payload = %d, done %v; want 0, not done", n, s.Done())
	}
	if s.Count() != 3 {
		t.Errorf("Count() = %d, want 3", s.Count())
	}
}

func TestResetRefuses(t *testing.T) {
	good := superSegment(payloadOf(2000), 0, header.TCPFlagAck)
	mod := func(f func(p []byte)) []byte {
		p := append([]byte(nil), good...)
		f(p)
		ip := header.IPv4(p)
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		return p
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		mtu  int
		want error
	}{
		{"short", good[:19], 1500, gso.ErrMalformed},
		{"IPv6", mod(func(p []byte) { p[0] = 0x65 }), 1500, gso.ErrMalformed},
		{"bad IP checksum", func() []byte { p := append([]byte(nil), good...); p[10] ^= 1; return p }(), 1500, gso.ErrMalformed},
		{"length mismatch", good[:len(good)-1], 1500, gso.ErrMalformed},
		{"fragment", mod(func(p []byte) { p[6] = 0x20 }), 1500, gso.ErrFragment},
		{"UDP", mod(func(p []byte) { p[9] = 17 }), 1500, gso.ErrNotTCP},
		{"TCP data offset too long", mod(func(p []byte) { p[32] = 0xf0; binary.BigEndian.PutUint16(p[2:], 60) })[:60], 1500, gso.ErrMalformed},
		{"MTU below headers", good, 40, gso.ErrMTU},
	} {
		var s gso.Segmenter
		if err := s.Reset(tc.pkt, tc.mtu); !errors.Is(err, tc.want) {
			t.Errorf("%s: Reset = %v, want %v", tc.name, err, tc.want)
		}
		if !s.Done() {
			t.Errorf("%s: a refused Segmenter is not done", tc.name)
		}
	}
}

func TestNextNoAllocs(t *testing.T) {
	pkt := superSegment(payloadOf(60000), 12, header.TCPFlagAck)
	dst := make([]byte, 1500)
	var s gso.Segmenter
	allocs := testing.AllocsPerRun(100, func() {
		s.Reset(pkt, 1500)
		for !s.Done() {
			s.Next(dst)
		}
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per super-segment, want 0", allocs)
	}
}

// FuzzSplit splits super-segments of any payload length (the payload is
// derived from plen and head, so that inputs stay small), options, flags,
// MTU and buffer size, and checks the invariant of check: valid segments
// within the MTU whose payloads join up to the original.
func FuzzSplit(f *testing.F) {
	f.Add(uint16(65535-40), []byte{1, 2, 3}, uint8(0), uint8(header.TCPFlagAck|header.TCPFlagPsh), uint16(1450), uint16(2000))
	f.Add(uint16(3000), []byte{0xff}, uint8(12), uint8(0xff), uint16(1500), uint16(1500))
	f.Add(uint16(1), []byte{}, uint8(40), uint8(header.TCPFlagFin), uint16(100), uint16(90))
	f.Add(uint16(0), []byte{}, uint8(0), uint8(0), uint16(41), uint16(41))
	f.Fuzz(func(t *testing.T, plen uint16, head []byte, opts, flags uint8, mtu, room uint16) {
		payload := payloadOf(int(plen))
		copy(payload, head)
		optLen := int(opts%11) * 4
		if len(payload) > 65535-20-20-optLen {
			payload = payload[:65535-20-20-optLen]
		}
		pkt := superSegment(payload, optLen, header.TCPFlags(flags))
		orig := append([]byte(nil), pkt...)
		dst, sizes := bufs(64, int(room))
		n, err := gso.Split(pkt, int(mtu), dst, sizes)
		if !bytes.Equal(pkt, orig) {
			t.Fatal("Split modified its input")
		}
		hdr := 40 + optLen
		if int(mtu) <= hdr {
			if !errors.Is(err, gso.ErrMTU) {
				t.Fatalf("MTU %d, headers %d: err %v, want ErrMTU", mtu, hdr, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		limit := min(int(mtu), int(room))
		segs := make([][]byte, n)
		for i := range n {
			segs[i] = dst[i][:sizes[i]]
		}
		mss := limit - hdr
		want := 1 // a packet without payload is one segment
		if mss > 0 && len(payload) > 0 {
			want = (len(payload) + mss - 1) / mss
		}
		if mss < 0 || mss == 0 && len(payload) > 0 {
			if n != 0 {
				t.Fatalf("no room for payload but %d segments", n)
			}
			return
		}
		if want > 64 {
			if n != 64 {
				t.Fatalf("%d segments, want all 64 buffers used", n)
			}
			return
		}
		if n != want {
			t.Fatalf("%d segments, want %d", n, want)
		}
		check(t, pkt, limit, segs)
	})
}

func BenchmarkSplit64K(b *testing.B) {
	pkt := superSegment(payloadOf(65535-20-32), 12, header.TCPFlagAck)
	dst := make([]byte, 1500)
	var s gso.Segmenter
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		s.Reset(pkt, 1450)
		for !s.Done() {
			s.Next(dst)
		}
	}
}
