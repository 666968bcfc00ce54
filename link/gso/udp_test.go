package gso_test

import (
	"bytes"
	"errors"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link/gso"
)

// superDatagram builds an IPv4 UDP super-datagram with the given payload
// and a partial checksum, as a kernel sender with UDP_SEGMENT hands it to a
// device with USO.
func superDatagram(payload []byte) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(pkt)), ID: id0, TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpipAddr(10, 244, 1, 2), DstAddr: tcpipAddr(10, 244, 0, 2),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip.Payload())
	udp.Encode(&header.UDPFields{SrcPort: 4433, DstPort: 443, Length: uint16(len(udp))})
	copy(udp.Payload(), payload)
	udp.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(udp))))
	return pkt
}

// cutUDP cuts pkt into datagrams of size payload bytes into buffers of room
// bytes, and returns them.
func cutUDP(t *testing.T, pkt []byte, size, room int) [][]byte {
	t.Helper()
	var s gso.Segmenter
	if err := s.ResetUDP(pkt, size); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for !s.Done() {
		b := make([]byte, room)
		n := s.Next(b)
		if n == 0 {
			t.Fatalf("Next = 0 after %d datagrams", len(out))
		}
		out = append(out, b[:n])
	}
	return out
}

// TestSegmentUDP: 10,500 bytes with UDP_SEGMENT 1000 become exactly 11
// datagrams, 10 of 1000 bytes and one of 500, in order, each with its own
// IPv4 total length, ID (wrapping) and header checksum, UDP length and a
// full UDP checksum.
func TestSegmentUDP(t *testing.T) {
	payload := payloadOf(10500)
	segs := cutUDP(t, superDatagram(payload), 1000, 2048)
	if len(segs) != 11 {
		t.Fatalf("%d datagrams, want 11", len(segs))
	}
	var got []byte
	for i, seg := range segs {
		ip := header.IPv4(seg)
		udp := header.UDP(ip.Payload())
		want := 1000
		if i == 10 {
			want = 500
		}
		if len(udp.Payload()) != want || int(ip.TotalLength()) != len(seg) || int(udp.Length()) != len(udp) {
			t.Errorf("datagram %d: %d payload bytes, total length %d of %d, UDP length %d; want %d", i, len(udp.Payload()), ip.TotalLength(), len(seg), udp.Length(), want)
		}
		if !ip.IsChecksumValid() || ip.ID() != uint16(id0+i) {
			t.Errorf("datagram %d: IPv4 checksum valid %v, ID %#x; want valid, %#x", i, ip.IsChecksumValid(), ip.ID(), uint16(id0+i))
		}
		if !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) || udp.Checksum() == 0 {
			t.Errorf("datagram %d: UDP checksum %#04x does not verify", i, udp.Checksum())
		}
		got = append(got, udp.Payload()...)
	}
	if !bytes.Equal(got, payload) {
		t.Error("the datagrams do not carry the super-datagram's payload in order")
	}
}

// TestSegmentUDPNeverShort: a buffer that cannot hold the next whole
// datagram gets none (Next returns 0); a TCP segment would have been cut
// shorter, a datagram must not.
func TestSegmentUDPNeverShort(t *testing.T) {
	var s gso.Segmenter
	if err := s.ResetUDP(superDatagram(payloadOf(3000)), 1000); err != nil {
		t.Fatal(err)
	}
	if n := s.Next(make([]byte, 20+8+999)); n != 0 {
		t.Errorf("Next into a buffer one byte short = %d, want 0", n)
	}
	if n := s.Next(make([]byte, 20+8+1000)); n != 1028 {
		t.Errorf("Next into a buffer of exactly one datagram = %d, want 1028", n)
	}
}

// TestResetUDPRefuses: what ResetUDP must not cut.
func TestResetUDPRefuses(t *testing.T) {
	good := superDatagram(payloadOf(2000))
	edit := func(f func(p []byte)) []byte {
		p := bytes.Clone(good)
		f(p)
		return p
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		size int
		want error
	}{
		{"TCP", superSegment(payloadOf(2000), 0, header.TCPFlagAck), 1000, gso.ErrNotUDP},
		{"fragment", edit(func(p []byte) {
			p[6] |= 0x20
			header.IPv4(p).SetChecksum(0)
			header.IPv4(p).SetChecksum(^header.IPv4(p).CalculateChecksum())
		}), 1000, gso.ErrFragment},
		{"wrong UDP length", edit(func(p []byte) { p[20+4], p[20+5] = 0, 9 }), 1000, gso.ErrMalformed},
		{"no room for a UDP header", good[:24], 1000, gso.ErrMalformed},
		{"size 0", good, 0, gso.ErrMTU},
		{"129 datagrams", superDatagram(payloadOf(129)), 1, gso.ErrMTU},
	} {
		var s gso.Segmenter
		if err := s.ResetUDP(tc.pkt, tc.size); !errors.Is(err, tc.want) {
			t.Errorf("%s: ResetUDP = %v, want %v", tc.name, err, tc.want)
		}
	}
	var s gso.Segmenter
	if err := s.ResetUDP(superDatagram(payloadOf(128)), 1); err != nil || s.Count() != 128 {
		t.Errorf("128 datagrams of 1 byte: ResetUDP = %v, Count %d; want nil, 128", err, s.Count())
	}
}
