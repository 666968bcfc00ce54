package router

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// FuzzHeaderChecksum holds headerChecksumValid, the forwarding path's
// 32-bit-at-a-time header check, to gVisor's IsChecksumValid on every
// header length (5 to 15 words) and content: each prefix of the input
// that is a header length long, with its IHL set to match, as found and
// with its checksum field set right.
func FuzzHeaderChecksum(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 244, 0, 4, 10, 244, 1, 5})
	f.Add(make([]byte, 20))
	f.Add(bytesOf(0xff, 60))
	f.Add(append([]byte{0x4f}, bytesOf(0xff, 59)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		for n := header.IPv4MinimumSize; n <= min(len(b), header.IPv4MaximumHeaderSize); n += 4 {
			h := append([]byte(nil), b[:n]...)
			h[0] = h[0]&0xf0 | byte(n/4) // gVisor reads the length from the IHL
			if got, want := headerChecksumValid(h), header.IPv4(h).IsChecksumValid(); got != want {
				t.Fatalf("header %x: headerChecksumValid %v, IsChecksumValid %v", h, got, want)
			}
			binary.BigEndian.PutUint16(h[10:], 0)
			binary.BigEndian.PutUint16(h[10:], ^header.IPv4(h).CalculateChecksum())
			if !headerChecksumValid(h) {
				t.Fatalf("header %x with its checksum set: not valid", h)
			}
		}
	})
}

func bytesOf(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}
