package vnet

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link/gso"
)

// segment is one TCP segment in an Ethernet frame, as the router hands a
// pod port: valid checksums, flags, seq, n payload bytes (seeded).
type segment struct {
	sport   uint16
	seq     uint32
	flags   header.TCPFlags
	n       int
	options []byte // TCP options, a multiple of 4 bytes
	tos     uint8
	ttl     uint8
	id      uint16
	window  uint16
}

func (s segment) frame() []byte {
	thl := 20 + len(s.options)
	f := make([]byte, 14+20+thl+s.n)
	copy(f, []byte{2, 0, 0, 0, 0, 5, 2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ttl := s.ttl
	if ttl == 0 {
		ttl = 63
	}
	window := s.window
	if window == 0 {
		window = 1000
	}
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TOS: s.tos, TotalLength: uint16(len(f) - 14), ID: s.id, TTL: ttl, Protocol: 6, Flags: header.IPv4FlagDontFragment,
		SrcAddr: tcpipAddr(10, 244, 1, 5), DstAddr: tcpipAddr(10, 244, 0, 4)})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(f[34:])
	tcp.Encode(&header.TCPFields{SrcPort: s.sport, DstPort: 40000, SeqNum: s.seq, AckNum: 77, DataOffset: uint8(thl), Flags: s.flags, WindowSize: window})
	copy(tcp[20:], s.options)
	for i := range s.n {
		tcp[thl+i] = byte(s.seq) + byte(i)
	}
	gso.CompleteChecksum(f[14:])
	return f
}

// flowOf makes count full segments of n bytes, in sequence, from seq.
func flowOf(count, n int, mod func(i int, s *segment)) [][]byte {
	var out [][]byte
	for i := range count {
		s := segment{sport: 5201, seq: uint32(1000 + i*n), flags: header.TCPFlagAck, n: n, options: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}[:0]}
		if mod != nil {
			mod(i, &s)
		}
		out = append(out, s.frame())
	}
	return out
}

// runs returns the run lengths coalesceRun cuts bufs into.
func runs(bufs [][]byte) []int {
	var out []int
	for i := 0; i < len(bufs); {
		k := coalesceRun(bufs[i:], 0)
		out = append(out, k)
		i += k
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCoalesceRuns: what coalescing merges and what it must not, exactly.
func TestCoalesceRuns(t *testing.T) {
	const n = 1398
	ts := func(v byte) []byte { return []byte{1, 1, 8, 10, 0, 0, 0, v, 0, 0, 0, 9} }
	for _, tc := range []struct {
		name string
		bufs [][]byte
		want []int
	}{
		{"one flow, 10 full segments", flowOf(10, n, nil), []int{10}},
		{"short last segment", flowOf(5, n, func(i int, s *segment) {
			if i == 4 {
				s.n = 100
			}
		}), []int{5}},
		{"short segment in the middle ends the run", flowOf(5, n, func(i int, s *segment) {
			if i == 2 {
				s.n = 100
			}
			if i > 2 {
				s.seq = uint32(1000+2*n) + 100 + uint32((i-3)*n)
			}
		}), []int{3, 2}},
		{"PSH on the last of a run", flowOf(6, n, func(i int, s *segment) {
			if i == 2 {
				s.flags |= header.TCPFlagPsh
			}
		}), []int{3, 3}},
		{"PSH first: alone", flowOf(3, n, func(i int, s *segment) {
			if i == 0 {
				s.flags |= header.TCPFlagPsh
			}
		}), []int{1, 2}},
		{"two flows interleaved", flowOf(4, n, func(i int, s *segment) {
			s.sport = uint16(5201 + i%2)
			s.seq = uint32(1000 + (i/2)*n)
		}), []int{1, 1, 1, 1}},
		{"two flows one after the other", flowOf(6, n, func(i int, s *segment) {
			if i >= 3 {
				s.sport, s.seq = 5202, uint32(1000+(i-3)*n)
			}
		}), []int{3, 3}},
		{"gap in sequence", flowOf(4, n, func(i int, s *segment) {
			if i >= 2 {
				s.seq += 1
			}
		}), []int{2, 2}},
		{"retransmission (same seq)", flowOf(3, n, func(i int, s *segment) {
			if i == 2 {
				s.seq = uint32(1000 + n)
			}
		}), []int{2, 1}},
		{"FIN travels alone", flowOf(3, n, func(i int, s *segment) {
			if i == 1 {
				s.flags |= header.TCPFlagFin
			}
		}), []int{1, 1, 1}},
		{"CWR, ECE, URG, SYN, RST each alone", flowOf(6, n, func(i int, s *segment) {
			s.flags |= []header.TCPFlags{0, header.TCPFlagCwr, header.TCPFlagEce, header.TCPFlagUrg, header.TCPFlagSyn, header.TCPFlagRst}[i]
		}), []int{1, 1, 1, 1, 1, 1}},
		{"different timestamps", flowOf(3, n-12, func(i int, s *segment) {
			s.options = ts(byte(i/2 + 1))
		}), []int{2, 1}},
		{"same timestamps", flowOf(3, n-12, func(i int, s *segment) { s.options = ts(1) }), []int{3}},
		{"options appear", flowOf(3, n, func(i int, s *segment) {
			if i == 1 {
				s.options, s.n = ts(1), n-12
			}
		}), []int{1, 1, 1}},
		{"TOS (ECN CE) differs", flowOf(3, n, func(i int, s *segment) {
			if i == 1 {
				s.tos = 3
			}
		}), []int{1, 1, 1}},
		{"TTL differs", flowOf(3, n, func(i int, s *segment) {
			if i == 2 {
				s.ttl = 62
			}
		}), []int{2, 1}},
		{"window differs", flowOf(3, n, func(i int, s *segment) {
			if i == 2 {
				s.window = 999
			}
		}), []int{2, 1}},
		{"no payload (pure ACKs)", flowOf(3, 0, nil), []int{1, 1, 1}},
		{"64 at most", flowOf(70, 900, nil), []int{64, 6}},
		{"65535 bytes of IPv4 at most", flowOf(50, 1460, nil), []int{44, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runs(tc.bufs); !equalInts(got, tc.want) {
				t.Errorf("runs %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("corrupt TCP checksum", func(t *testing.T) {
		bufs := flowOf(3, n, nil)
		bufs[1][100] ^= 1
		if got := runs(bufs); !equalInts(got, []int{1, 1, 1}) {
			t.Errorf("runs %v, want [1 1 1]", got)
		}
	})
	t.Run("bad IPv4 checksum", func(t *testing.T) {
		bufs := flowOf(3, n, nil)
		bufs[2][14+10] ^= 1
		if got := runs(bufs); !equalInts(got, []int{2, 1}) {
			t.Errorf("runs %v, want [2 1]", got)
		}
	})
	t.Run("IPv4 options", func(t *testing.T) {
		bufs := flowOf(2, n, nil)
		bufs[0][14] = 0x46
		if got := runs(bufs); !equalInts(got, []int{1, 1}) {
			t.Errorf("runs %v, want [1 1]", got)
		}
	})
	t.Run("fragment", func(t *testing.T) {
		bufs := flowOf(2, n, nil)
		bufs[1][14+6] |= 0x20 // MF
		if got := runs(bufs); !equalInts(got, []int{1, 1}) {
			t.Errorf("runs %v, want [1 1]", got)
		}
	})
	t.Run("other MAC", func(t *testing.T) {
		bufs := flowOf(2, n, nil)
		bufs[1][5] = 6
		if got := runs(bufs); !equalInts(got, []int{1, 1}) {
			t.Errorf("runs %v, want [1 1]", got)
		}
	})
}

// superFrameOf is the bytes the Coalescer's writev would hand the kernel
// for bufs[:k]: the virtio header, then the frame.
func superFrameOf(c *Coalescer, bufs [][]byte) (hdr, frame []byte) {
	n := c.prepare(bufs, 0)
	for i := 1; i < n; i++ {
		frame = append(frame, unsafe.Slice(c.iov[i].Base, c.iov[i].Len)...)
	}
	return append([]byte(nil), c.vhdr[:]...), frame
}

// roundTrip cuts the super-frame of bufs (coalesced as one run) with the
// reader and checks that it gives back bufs, byte for byte but, with DF,
// the IPv4 ID and header checksum (the cut numbers the IDs from the
// first).
func roundTrip(t *testing.T, bufs [][]byte) {
	t.Helper()
	hdr, frame := superFrameOf(&Coalescer{}, bufs)
	r := &Reader{mtu: 65535, large: make([]byte, 65536+64)}
	copy(r.hdr[:], hdr)
	out := make([][]byte, len(bufs)+1)
	sizes := make([]int, len(out))
	for i := range out {
		out[i] = make([]byte, 66000)
	}
	r.bufs, r.sizes = out, sizes
	copy(out[0], frame)
	r.accept(len(frame), out[0][:len(frame)], 0)
	if r.n != len(bufs) || !r.seg.Done() {
		t.Fatalf("the super-frame of %d frames cut into %d (done %v, stats %+v)", len(bufs), r.n, r.seg.Done(), r.Stats())
	}
	for i, want := range bufs {
		got := out[i][:sizes[i]]
		if len(got) != len(want) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
		}
		g, w := append([]byte(nil), got...), append([]byte(nil), want...)
		if w[14+6]&0x40 != 0 { // DF: the ID means nothing (RFC 6864); without, it must be the same
			for _, b := range [][]byte{g, w} {
				copy(b[14+4:14+6], []byte{0, 0})   // ID
				copy(b[14+10:14+12], []byte{0, 0}) // header checksum
			}
		}
		if string(g) != string(w) {
			t.Fatalf("frame %d differs after coalescing and cutting:\n got % x\nwant % x", i, g[:80], w[:80])
		}
	}
}

// TestCoalesceRoundTrip: a coalesced super-frame, cut as the kernel would
// cut it (by the virtio header's gso_size), gives back exactly the frames
// that went in: payloads, sequence numbers, flags (PSH on the last),
// options and checksums.
func TestCoalesceRoundTrip(t *testing.T) {
	roundTrip(t, flowOf(10, 1398, nil))
	roundTrip(t, flowOf(44, 1460, func(i int, s *segment) {
		if i == 43 {
			s.n, s.flags = 7, s.flags|header.TCPFlagPsh
		}
	}))
	roundTrip(t, flowOf(5, 1386, func(i int, s *segment) {
		s.options = []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9}
	}))
}

// FuzzCoalesce: whatever frames a pod port is handed, coalescing merges
// only runs that cut back into exactly those frames, and never more than
// maxCoalesce of them or 65535 bytes.
func FuzzCoalesce(f *testing.F) {
	f.Add(uint8(10), uint16(1398), uint8(0), uint8(0), uint16(0), []byte{})
	f.Add(uint8(5), uint16(1386), uint8(2), uint8(0x08), uint16(3), []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9})
	f.Add(uint8(6), uint16(100), uint8(3), uint8(0x01), uint16(1), []byte{})
	f.Fuzz(func(t *testing.T, count uint8, n uint16, which uint8, flags uint8, tweak uint16, opts []byte) {
		if count == 0 || count > 80 || n > 1500 || len(opts)%4 != 0 || len(opts) > 40 {
			return
		}
		bufs := flowOf(int(count), int(n), func(i int, s *segment) {
			s.options = opts
			if i == int(which)%int(count) {
				s.flags |= header.TCPFlags(flags)
				s.seq += uint32(tweak & 3)
				s.n -= min(s.n, int(tweak>>2)%4)
				s.window += tweak >> 4
			}
		})
		for i := 0; i < len(bufs); {
			k := coalesceRun(bufs[i:], 0)
			if k < 1 || k > maxCoalesce || i+k > len(bufs) {
				t.Fatalf("run of %d at %d of %d", k, i, len(bufs))
			}
			if k > 1 {
				total := 0
				for _, b := range bufs[i : i+k] {
					total += len(b) - headersLen(b)
				}
				if total+headersLen(bufs[i])-14 > 0xffff {
					t.Fatalf("a run of %d frames makes %d bytes of IPv4", k, total+headersLen(bufs[i])-14)
				}
				roundTrip(t, bufs[i:i+k])
			}
			i += k
		}
	})
}
