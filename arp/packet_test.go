package arp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/internal/allocs"
	"github.com/taprouter/taprouter/link"
)

var (
	podMAC = link.HardwareAddr{0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x05}
	gwMAC  = link.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	podIP  = netip.MustParseAddr("10.244.1.5")
	gwIP   = netip.MustParseAddr("10.244.1.1")
)

// requestPayload is a pod's request for its gateway, written out by hand
// from RFC 826.
const requestPayload = "0001" + "0800" + "06" + "04" + "0001" +
	"0a580af40105" + "0af40105" + "000000000000" + "0af40101"

func TestParseRequest(t *testing.T) {
	b, _ := hex.DecodeString(requestPayload)
	p, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Packet{Op: OpRequest, SenderMAC: podMAC, SenderIP: podIP, TargetIP: gwIP}
	if p != want {
		t.Fatalf("Parse = %+v, want %+v", p, want)
	}
}

func TestEncodeMatchesRFC826Layout(t *testing.T) {
	p := Packet{Op: OpRequest, SenderMAC: podMAC, SenderIP: podIP, TargetIP: gwIP}
	b := make([]byte, PayloadLen)
	if n := p.Encode(b); n != PayloadLen {
		t.Fatalf("Encode returned %d, want %d", n, PayloadLen)
	}
	if got := hex.EncodeToString(b); got != requestPayload {
		t.Fatalf("Encode = %s\nwant     %s", got, requestPayload)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range []Packet{
		{Op: OpRequest, SenderMAC: podMAC, SenderIP: podIP, TargetIP: gwIP},
		{Op: OpReply, SenderMAC: gwMAC, SenderIP: gwIP, TargetMAC: podMAC, TargetIP: podIP},
		{Op: OpRequest, SenderMAC: podMAC, SenderIP: netip.IPv4Unspecified(), TargetIP: podIP}, // RFC 5227 probe
	} {
		b := make([]byte, PayloadLen)
		p.Encode(b)
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Encode(%+v)): %v", p, err)
		}
		if got != p {
			t.Errorf("round trip = %+v, want %+v", got, p)
		}
	}
}

func TestParseIgnoresPadding(t *testing.T) {
	b, _ := hex.DecodeString(requestPayload)
	b = append(b, make([]byte, FrameLen-14-PayloadLen)...)
	if _, err := Parse(b); err != nil {
		t.Fatalf("Parse of padded payload: %v", err)
	}
}

func TestParseMalformed(t *testing.T) {
	valid, _ := hex.DecodeString(requestPayload)
	corrupt := func(i int, v ...byte) []byte {
		b := bytes.Clone(valid)
		copy(b[i:], v)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"27 bytes", valid[:27], ErrTruncated},
		{"htype 6 (IEEE 802)", corrupt(1, 6), ErrNotEthernet},
		{"hlen 8", corrupt(4, 8), ErrNotEthernet},
		{"ptype 0x86dd", corrupt(2, 0x86, 0xdd), ErrNotIPv4},
		{"plen 16", corrupt(5, 16), ErrNotIPv4},
	} {
		if _, err := Parse(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: Parse error = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeFramePadsTo60(t *testing.T) {
	b := bytes.Repeat([]byte{0xaa}, 100)
	p := Packet{Op: OpReply, SenderMAC: gwMAC, SenderIP: gwIP, TargetMAC: podMAC, TargetIP: podIP}
	if n := EncodeFrame(b, podMAC, gwMAC, &p); n != FrameLen {
		t.Fatalf("EncodeFrame returned %d, want %d", n, FrameLen)
	}
	if !bytes.Equal(b[0:6], podMAC[:]) || !bytes.Equal(b[6:12], gwMAC[:]) {
		t.Errorf("Ethernet addresses = %x %x, want %v %v", b[0:6], b[6:12], podMAC, gwMAC)
	}
	if b[12] != 0x08 || b[13] != 0x06 {
		t.Errorf("EtherType = %x, want 0806", b[12:14])
	}
	got, err := Parse(b[14:FrameLen])
	if err != nil || got != p {
		t.Errorf("Parse(frame payload) = %+v, %v; want %+v", got, err, p)
	}
	if pad := b[14+PayloadLen : FrameLen]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Errorf("padding = %x, want zeros", pad)
	}
	if b[FrameLen] != 0xaa {
		t.Errorf("EncodeFrame wrote past byte %d", FrameLen)
	}
}

func TestIsGratuitous(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Packet
		want bool
	}{
		{"announcement request", Packet{Op: OpRequest, SenderIP: podIP, TargetIP: podIP}, true},
		{"announcement reply", Packet{Op: OpReply, SenderIP: podIP, TargetIP: podIP, TargetMAC: link.Broadcast}, true},
		{"ordinary request", Packet{Op: OpRequest, SenderIP: podIP, TargetIP: gwIP}, false},
		{"RFC 5227 probe", Packet{Op: OpRequest, SenderIP: netip.IPv4Unspecified(), TargetIP: netip.IPv4Unspecified()}, false},
		{"zero packet", Packet{}, false},
	} {
		if got := IsGratuitous(&tc.p); got != tc.want {
			t.Errorf("%s: IsGratuitous = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCodecDoesNotAllocate(t *testing.T) {
	b := make([]byte, FrameLen)
	p := Packet{Op: OpRequest, SenderMAC: podMAC, SenderIP: podIP, TargetIP: gwIP}
	var sink Packet
	for name, f := range map[string]func(){
		"Parse":       func() { sink, _ = Parse(b[14:]) },
		"Encode":      func() { p.Encode(b[14:]) },
		"EncodeFrame": func() { EncodeFrame(b, link.Broadcast, podMAC, &p) },
	} {
		if n := allocs.PerOp(100, 1, f); n != 0 {
			t.Errorf("%s: %g allocations per call, want 0", name, n)
		}
	}
	_ = sink
}

func FuzzParse(f *testing.F) {
	valid, _ := hex.DecodeString(requestPayload)
	f.Add(valid)
	f.Add(valid[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		out := make([]byte, PayloadLen)
		p.Encode(out)
		if !bytes.Equal(out, b[:PayloadLen]) {
			t.Fatalf("Encode(Parse(%x)) = %x", b[:PayloadLen], out)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	buf, _ := hex.DecodeString(requestPayload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(buf); err != nil {
			b.Fatal(err)
		}
	}
}
