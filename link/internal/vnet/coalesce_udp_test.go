package vnet

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link/gso"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// datagram is one UDP datagram in an Ethernet frame, as the router hands
// a port: valid checksums, n payload bytes (seeded by id).
type datagram struct {
	sport uint16
	n     int
	tos   uint8
	ttl   uint8
	id    uint16
	df    bool
}

func (d datagram) frame() []byte {
	f := make([]byte, udpHeadersLen+d.n)
	copy(f, []byte{2, 0, 0, 0, 0, 5, 2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ttl := d.ttl
	if ttl == 0 {
		ttl = 63
	}
	var flags uint8
	if d.df {
		flags = header.IPv4FlagDontFragment
	}
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TOS: d.tos, TotalLength: uint16(len(f) - 14), ID: d.id, TTL: ttl, Protocol: 17, Flags: flags,
		SrcAddr: tcpipAddr(10, 244, 0, 4), DstAddr: tcpipAddr(10, 244, 1, 5)})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(f[34:])
	udp.Encode(&header.UDPFields{SrcPort: d.sport, DstPort: 5201, Length: uint16(8 + d.n)})
	for i := range d.n {
		f[udpHeadersLen+i] = byte(d.id) + byte(i)
	}
	udp.SetChecksum(1) // CompleteChecksum leaves a datagram without one alone
	gso.CompleteChecksum(f[14:])
	return f
}

// datagramsOf makes count datagrams of n payload bytes of one flow, IDs
// counting up from 100 (DF clear, so the IDs must count up to merge).
func datagramsOf(count, n int, mod func(i int, d *datagram)) [][]byte {
	var out [][]byte
	for i := range count {
		d := datagram{sport: 40000, n: n, id: uint16(100 + i)}
		if mod != nil {
			mod(i, &d)
		}
		out = append(out, d.frame())
	}
	return out
}

func runsUDP(bufs [][]byte) []int {
	var out []int
	for i := 0; i < len(bufs); {
		k := coalesceRunUDP(bufs[i:], 0)
		out = append(out, k)
		i += k
	}
	return out
}

// TestCoalesceRunsUDP: what UDP coalescing merges and what it must not,
// exactly.
func TestCoalesceRunsUDP(t *testing.T) {
	for _, tc := range []struct {
		name string
		bufs [][]byte
		want []int
	}{
		{"one flow, 10 datagrams of 64 bytes", datagramsOf(10, 64, nil), []int{10}},
		{"short last datagram", datagramsOf(5, 1000, func(i int, d *datagram) {
			if i == 4 {
				d.n = 1
			}
		}), []int{5}},
		{"short datagram in the middle ends the run", datagramsOf(5, 1000, func(i int, d *datagram) {
			if i == 2 {
				d.n = 999
			}
		}), []int{3, 2}},
		{"longer datagram starts a new run", datagramsOf(4, 100, func(i int, d *datagram) {
			if i >= 2 {
				d.n = 101
			}
		}), []int{2, 2}},
		{"two flows interleaved", datagramsOf(4, 64, func(i int, d *datagram) {
			d.sport = uint16(40000 + i%2)
		}), []int{1, 1, 1, 1}},
		{"two flows one after the other", datagramsOf(6, 64, func(i int, d *datagram) {
			if i >= 3 {
				d.sport = 40001
			}
		}), []int{3, 3}},
		{"IDs not counting up, without DF", datagramsOf(3, 64, func(i int, d *datagram) {
			if i == 2 {
				d.id = 7
			}
		}), []int{2, 1}},
		{"any IDs with DF", datagramsOf(3, 64, func(i int, d *datagram) {
			d.df, d.id = true, uint16(9-i)
		}), []int{3}},
		{"DF on some only", datagramsOf(3, 64, func(i int, d *datagram) {
			d.df = i == 1
		}), []int{1, 1, 1}},
		{"TOS differs", datagramsOf(3, 64, func(i int, d *datagram) {
			if i == 1 {
				d.tos = 3
			}
		}), []int{1, 1, 1}},
		{"TTL differs", datagramsOf(3, 64, func(i int, d *datagram) {
			if i == 2 {
				d.ttl = 62
			}
		}), []int{2, 1}},
		{"payloads under 48 bytes go alone", datagramsOf(3, 47, nil), []int{1, 1, 1}},
		{"48 bytes merge", datagramsOf(3, 48, nil), []int{3}},
		{"64 at most", datagramsOf(70, 64, nil), []int{64, 6}},
		{"65535 bytes of IPv4 at most", datagramsOf(50, 1472, nil), []int{44, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runsUDP(tc.bufs); !equalInts(got, tc.want) {
				t.Errorf("runs %v, want %v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		mod  func(bufs [][]byte)
		want []int
	}{
		{"corrupt payload", func(b [][]byte) { b[1][60] ^= 1 }, []int{1, 1, 1}},
		{"no UDP checksum", func(b [][]byte) { b[0][14+20+6], b[0][14+20+7] = 0, 0 }, []int{1, 2}},
		{"bad IPv4 checksum", func(b [][]byte) { b[2][14+10] ^= 1 }, []int{2, 1}},
		{"IPv4 options", func(b [][]byte) { b[0][14] = 0x46 }, []int{1, 2}},
		{"fragment", func(b [][]byte) { b[1][14+6] |= 0x20 }, []int{1, 1, 1}},
		{"UDP length short of the packet", func(b [][]byte) { b[1][14+20+5]-- }, []int{1, 1, 1}},
		{"other MAC", func(b [][]byte) { b[1][5] = 6 }, []int{1, 1, 1}},
		{"other destination port", func(b [][]byte) {
			b[2][14+20+3]++
			gso.CompleteChecksum(b[2][14:])
		}, []int{2, 1}},
		{"UDP length short of the packet, checksum right", func(b [][]byte) {
			b[1][14+20+5]--
			gso.CompleteChecksum(b[1][14:])
		}, []int{1, 1, 1}},
		{"no UDP checksum, the bytes summing as if there were one", func(b [][]byte) {
			seg := b[0][14+20:]
			seg[6], seg[7], seg[8], seg[9] = 0, 0, 0, 0
			binary.BigEndian.PutUint16(seg[8:], ^checksum.Checksum(seg, gso.PseudoHeaderSum(b[0][14:], len(seg))))
			if checksum.Checksum(seg, gso.PseudoHeaderSum(b[0][14:], len(seg))) != 0xffff {
				t.Fatal("the test's datagram does not sum to 0xffff")
			}
		}, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bufs := datagramsOf(3, 64, nil)
			tc.mod(bufs)
			if got := runsUDP(bufs); !equalInts(got, tc.want) {
				t.Errorf("runs %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCoalesceRoundTripUDP: a UDP super-datagram, cut as the kernel cuts
// it (by gso_size), gives back exactly the datagrams that went in.
func TestCoalesceRoundTripUDP(t *testing.T) {
	roundTrip(t, datagramsOf(10, 64, nil))
	roundTrip(t, datagramsOf(44, 1472, func(i int, d *datagram) {
		if i == 43 {
			d.n = 5
		}
	}))
	roundTrip(t, datagramsOf(3, 100, func(i int, d *datagram) { d.df = true }))
}

// FuzzCoalesceUDP: whatever datagrams a port is handed, UDP coalescing
// merges only runs that cut back into exactly those datagrams, and never
// more than maxCoalesce of them or 65535 bytes.
func FuzzCoalesceUDP(f *testing.F) {
	f.Add(uint8(10), uint16(64), uint8(0), uint16(0), false)
	f.Add(uint8(44), uint16(1472), uint8(43), uint16(0x1234), true)
	f.Add(uint8(6), uint16(100), uint8(3), uint16(1), false)
	f.Fuzz(func(t *testing.T, count uint8, n uint16, which uint8, tweak uint16, df bool) {
		if count == 0 || count > 80 || n > 1472 {
			return
		}
		bufs := datagramsOf(int(count), int(n), func(i int, d *datagram) {
			d.df = df
			if i == int(which)%int(count) {
				d.n -= min(d.n, int(tweak&3))
				d.id += tweak >> 2 & 3
				d.sport += tweak >> 4 & 1
				d.ttl = uint8(tweak >> 5 & 1)
			}
		})
		for i := 0; i < len(bufs); {
			k := coalesceRunUDP(bufs[i:], 0)
			if k < 1 || k > maxCoalesce || i+k > len(bufs) {
				t.Fatalf("run of %d at %d of %d", k, i, len(bufs))
			}
			if k > 1 {
				total := 0
				for _, b := range bufs[i : i+k] {
					total += len(b) - udpHeadersLen
				}
				if total+udpHeadersLen-14 > 0xffff {
					t.Fatalf("a run of %d datagrams makes %d bytes of IPv4", k, total+udpHeadersLen-14)
				}
				roundTrip(t, bufs[i:i+k])
			}
			i += k
		}
	})
}

// TestCoalesceUDPWrite: Write merges a run of datagrams into one writev
// behind a GSO_UDP_L4 header (segment size = the datagrams' payload), the
// TCP run after it into another; a kernel that refuses UDP super-frames
// turns UDP coalescing off, and only that: the refused run and every
// datagram after it go alone, TCP runs are still merged.
func TestCoalesceUDPWrite(t *testing.T) {
	udp, tcp := datagramsOf(10, 64, nil), flowOf(3, 1000, nil)
	w := &fakeWritev{}
	c, _ := newFakeCoalescer(w)
	if n, err := c.Write(append(cloneAll(udp), tcp...), 0); n != 13 || err != nil {
		t.Fatalf("Write = %d, %v; want 13, nil", n, err)
	}
	if len(w.sent) != 2 {
		t.Fatalf("%d writes, want 2", len(w.sent))
	}
	if h := decodeHeader(w.sent[0]); h != superHdr(unix.VIRTIO_NET_HDR_GSO_UDP_L4, 42, 64, 6) || len(w.sent[0]) != HdrLen+42+640 {
		t.Errorf("UDP run written with header %+v, %d bytes; want GSO_UDP_L4 of 64, %d bytes", h, len(w.sent[0]), HdrLen+42+640)
	}
	if h := decodeHeader(w.sent[1]); h.gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 || len(w.sent[1]) != HdrLen+14+40+3000 {
		t.Errorf("TCP run written with header %+v, %d bytes; want coalesced", h, len(w.sent[1]))
	}
	if s, f, r := c.Coalesced(); s != 2 || f != 13 || r != 0 {
		t.Errorf("Coalesced() = %d, %d, %d; want 2, 13, 0", s, f, r)
	}

	w = &fakeWritev{refuseUDP: true}
	c, _ = newFakeCoalescer(w)
	u1, u2 := datagramsOf(3, 64, nil), datagramsOf(3, 64, nil)
	bufs := append(append(cloneAll(u1), tcp...), u2...)
	if n, err := c.Write(bufs, 0); n != 9 || err != nil {
		t.Fatalf("Write = %d, %v; want 9, nil", n, err)
	}
	if len(w.sent) != 3+1+3 || w.refused != 1 {
		t.Fatalf("%d writes taken, %d refused; want 7, 1", len(w.sent), w.refused)
	}
	for i, m := range w.sent {
		h := decodeHeader(m)
		if i == 3 {
			if h.gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 {
				t.Errorf("write 3: header %+v, want the TCP run coalesced", h)
			}
			continue
		}
		want := bufs[i]
		if i > 3 {
			want = bufs[i+2]
		}
		if h != (virtioHdr{}) || string(m[HdrLen:]) != string(want) {
			t.Errorf("write %d is not datagram alone", i)
		}
	}
	if s, f, r := c.Coalesced(); s != 1 || f != 3 || r != 1 {
		t.Errorf("Coalesced() = %d, %d, %d; want 1, 3, 1", s, f, r)
	}
}

// TestBatchCoalescerRefusedRun: a packet socket's Coalescer that finds a
// run behind frames that go alone, and whose kernel refuses that run's
// kind (UDP's on kernels before 6.2, TCP's on broken ones), writes the
// run's frames alone and goes on: every frame written once, one refusal.
// (It once wrote the refused run again and again.)
func TestBatchCoalescerRefusedRun(t *testing.T) {
	for _, udp := range []bool{true, false} {
		w := &fakeWritev{refuseUDP: udp, refuseTCP: !udp}
		alone := 0 // messages sent with the batch's sendmmsg
		send := func(_ uintptr, msgs []unix.Mmsghdr) (int, syscall.Errno) {
			alone += len(msgs)
			return len(msgs), 0
		}
		c := NewBatchCoalescer(&fakeConn{}, fdio.SkipRejected, 8, send)
		c.writev = w.writev
		run := datagramsOf(4, 64, nil)
		if !udp {
			run = flowOf(4, 1000, nil)
		}
		lone := datagramsOf(2, 64, func(i int, d *datagram) { d.sport = uint16(50000 + i) })
		bufs := append(cloneAll(lone), run...)
		done := make(chan struct{})
		var n int
		var err error
		go func() { n, err = c.Write(bufs, 0); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("udp=%v: Write still running after 5 s: %d writes refused", udp, w.refused)
		}
		// The 2 lone frames with one sendmmsg; the run refused as one
		// writev, tried twice (a packet socket's EINVAL can be an earlier
		// receive's, see retryEINVAL); its 4 frames with one sendmmsg.
		_, _, refused := c.Coalesced()
		if n != 6 || err != nil || w.refused != 2 || refused != 1 || w.taken != 0 || alone != 6 {
			t.Errorf("udp=%v: Write = %d, %v; %d sent alone, %d writevs taken, %d refused (%d counted); want 6, nil, 6, 0, 2 (1)",
				udp, n, err, alone, w.taken, w.refused, refused)
		}
	}
}
