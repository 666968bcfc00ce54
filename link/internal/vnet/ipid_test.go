package vnet

import (
	"encoding/binary"
	"testing"
)

// withID returns frame f with IPv4 ID id and the DF bit as df says, its
// header checksum recomputed.
func withID(f []byte, id uint16, df bool) []byte {
	ip := f[14:34]
	binary.BigEndian.PutUint16(ip[4:6], id)
	ip[6] &^= 0x40
	if df {
		ip[6] |= 0x40
	}
	return fixIPv4(f)
}

// TestCoalesceKeepsIPv4IDs: a super-frame's segments get the first one's
// IPv4 ID plus their number when they are cut again, by the peer's kernel
// or socket. Without DF the ID is what reassembles a fragment, so segments
// merge only if their IDs count up by one already, as the kernel's GRO
// requires (inet_gro_receive); with DF (RFC 6864: an atomic datagram's ID
// means nothing) any IDs merge.
func TestCoalesceKeepsIPv4IDs(t *testing.T) {
	for _, tc := range []struct {
		name string
		df   bool
		ids  []uint16
		want int // coalesceRun of the 4 frames
	}{
		{"DF, IDs counting up", true, []uint16{7, 8, 9, 10}, 4},
		{"DF, IDs all 0", true, []uint16{0, 0, 0, 0}, 4},
		{"DF, random IDs", true, []uint16{7, 3, 9000, 1}, 4},
		{"no DF, IDs counting up", false, []uint16{7, 8, 9, 10}, 4},
		{"no DF, IDs wrapping", false, []uint16{0xfffe, 0xffff, 0, 1}, 4},
		{"no DF, the third ID off", false, []uint16{7, 8, 20, 21}, 2},
		{"no DF, IDs all 0", false, []uint16{0, 0, 0, 0}, 1},
	} {
		bufs := flowOf(4, 1000, nil)
		for i, b := range bufs {
			withID(b, tc.ids[i], tc.df)
		}
		if got := coalesceRun(bufs, 0); got != tc.want {
			t.Errorf("%s: coalesceRun = %d, want %d", tc.name, got, tc.want)
		}
	}
}
