package gso

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// FuzzPseudoHeaderSum holds PseudoHeaderSum's 32-bit sum to the 16-bit one
// over gVisor's checksum package (source and destination, then protocol
// and length combined in) for any addresses, protocol and length.
func FuzzPseudoHeaderSum(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 244, 0, 4, 10, 244, 1, 5}, 1480)
	f.Add(make([]byte, 20), 0)
	f.Add([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffff)
	f.Add([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0x1ffee)
	f.Fuzz(func(t *testing.T, pkt []byte, n int) {
		if len(pkt) < 20 {
			return
		}
		want := checksum.Combine(checksum.Combine(checksum.Checksum(pkt[12:20], 0), uint16(pkt[9])), uint16(n))
		if got := PseudoHeaderSum(pkt, n); got != want {
			t.Fatalf("PseudoHeaderSum(%x, %d) = %#04x, want %#04x", pkt[:20], n, got, want)
		}
	})
}
