package vnet

import (
	"encoding/binary"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
)

// superFrame is an Ethernet frame holding an IPv4 TCP packet with n payload
// bytes and the given TCP flags, as a kernel hands a TSO super-frame: valid
// IPv4 header, TCP checksum field holding the pseudo-header sum only.
func superFrame(n int, flags header.TCPFlags) []byte {
	f := make([]byte, 14+20+20+n)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - 14), ID: 100, TTL: 64, Protocol: 6, Flags: header.IPv4FlagDontFragment,
		SrcAddr: tcpipAddr(10, 244, 0, 4), DstAddr: tcpipAddr(10, 244, 1, 5)})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(f[14+20:])
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: 1000, AckNum: 1, DataOffset: 20, Flags: flags, WindowSize: 500})
	for i := range n {
		f[14+40+i] = byte(i)
	}
	return f
}

func vnetHeader(flags, gsoType uint8, gsoSize uint16) []byte {
	h := make([]byte, HdrLen)
	h[0], h[1] = flags, gsoType
	binary.NativeEndian.PutUint16(h[4:], gsoSize)
	return h
}

// FuzzVnetRead: whatever header and frame the kernel (or a pod writing
// virtio headers with PACKET_VNET_HDR) hands Read, nothing panics, every
// frame handed out fits its buffer and, if cut from a super-frame, is an
// IPv4 TCP segment or UDP datagram of at most the MTU with valid IPv4 and
// transport checksums and at most gso_size payload bytes (a UDP datagram
// exactly gso_size, but the last), and the segments' payloads are the
// super-frame's, in order.
func FuzzVnetRead(f *testing.F) {
	f.Add(vnetHeader(1, 1, 1360), superFrame(10000, header.TCPFlagAck|header.TCPFlagPsh), 1400)
	f.Add(vnetHeader(1, 0x81, 100), superFrame(1000, header.TCPFlagAck|header.TCPFlagCwr|header.TCPFlagFin), 1400)
	f.Add(vnetHeader(1, 0, 0), superFrame(100, header.TCPFlagAck), 1400)
	f.Add(vnetHeader(1, 5, 100), superFrame(1000, header.TCPFlagAck), 1400)
	f.Add(vnetHeader(1, 1, 0), superFrame(1000, header.TCPFlagAck), 1400)
	f.Add(vnetHeader(1, 5, 1000), superUDPFrame(10500), 1400)
	f.Add(vnetHeader(1, 5, 1), superUDPFrame(129), 1400)
	f.Fuzz(func(t *testing.T, hdr, frame []byte, mtu int) {
		if len(hdr) < HdrLen || mtu < 68 || mtu > 9000 || len(frame) > 65536+64 {
			return
		}
		r := &Reader{mtu: mtu, large: make([]byte, 65536+64)}
		copy(r.hdr[:], hdr)
		const bufLen = 2048
		bufs := make([][]byte, 8)
		sizes := make([]int, len(bufs))
		for i := range bufs {
			bufs[i] = make([]byte, bufLen)
		}
		// What a readv would have done: the head in bufs[0], the rest in
		// r.large behind it.
		p := bufs[0][2:]
		k := copy(p, frame)
		copy(r.large[len(p):], frame[k:])
		orig := append([]byte(nil), frame...)
		h := decodeHeader(r.hdr[:])

		var payload []byte
		var proto uint8
		r.bufs, r.sizes, r.offset = bufs, sizes, 2
		r.accept(len(frame), p, 0)
		for {
			cutting := !r.seg.Done() || r.superFrames.Load() > 0
			for i := range r.n {
				out := bufs[i][2:][:sizes[i]]
				if sizes[i] > bufLen-2 {
					t.Fatalf("frame %d of %d bytes in a buffer of %d", i, sizes[i], bufLen-2)
				}
				if !cutting {
					continue
				}
				if len(out) > mtu+14 || len(out) < 14+28 {
					t.Fatalf("segment of %d bytes, MTU %d", len(out), mtu)
				}
				ip := header.IPv4(out[14:])
				proto = ip.Protocol()
				if !ip.IsChecksumValid() || int(ip.TotalLength()) != len(out)-14 || proto != 6 && proto != 17 {
					t.Fatalf("segment with a bad IPv4 header: % x", out[14:34])
				}
				ihl := int(ip.HeaderLength())
				seg := out[14+ihl:]
				sum := checksum.Checksum(out[14+12:14+20], 0)
				sum = checksum.Combine(sum, uint16(proto))
				sum = checksum.Combine(sum, uint16(len(seg)))
				if checksum.Checksum(seg, sum) != 0xffff {
					t.Fatalf("segment with a bad checksum (protocol %d)", proto)
				}
				start := 8
				if proto == 6 {
					start = int(header.TCP(seg).DataOffset())
				} else if int(header.UDP(seg).Length()) != len(seg) {
					t.Fatalf("datagram of %d bytes with UDP length %d", len(seg), header.UDP(seg).Length())
				}
				n := len(seg) - start
				if n > int(h.gsoSize) {
					t.Fatalf("segment payload %d > gso_size %d", n, h.gsoSize)
				}
				if proto == 17 && n != int(h.gsoSize) && !r.seg.Done() {
					t.Fatalf("a datagram of %d payload bytes before the last, gso_size %d", n, h.gsoSize)
				}
				payload = append(payload, seg[start:]...)
			}
			if r.seg.Done() {
				break
			}
			r.n = 0
			r.cut()
		}
		if r.superFrames.Load() > 0 && r.dropped.Load() == 0 {
			ip := header.IPv4(orig[14:])
			ihl := int(ip.HeaderLength())
			start := 8
			if proto == 6 {
				start = int(header.TCP(orig[14+ihl:]).DataOffset())
			}
			if want := orig[14+ihl+start:]; string(payload) != string(want) {
				t.Fatalf("segments carry %d payload bytes, want the super-frame's %d", len(payload), len(want))
			}
		}
	})
}

// superUDPFrame is an Ethernet frame holding an IPv4 UDP super-datagram
// with n payload bytes, as a kernel with UDP_SEGMENT hands it to a TAP with
// USO: valid IPv4 header, UDP length of the whole, partial checksum.
func superUDPFrame(n int) []byte {
	f := make([]byte, 14+20+8+n)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - 14), ID: 7, TTL: 64, Protocol: 17,
		SrcAddr: tcpipAddr(10, 244, 0, 4), DstAddr: tcpipAddr(10, 244, 1, 5)})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(ip.Payload())
	udp.Encode(&header.UDPFields{SrcPort: 4433, DstPort: 443, Length: uint16(len(udp))})
	for i := range n {
		udp[8+i] = byte(i * 3)
	}
	udp.SetChecksum(header.PseudoHeaderChecksum(17, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(udp))))
	return f
}

func tcpipAddr(a, b, c, d byte) tcpip.Address { return tcpip.AddrFrom4([4]byte{a, b, c, d}) }

// TestVnetCutsSuperFrameForTunnel: a 64,000-byte super-frame for a pod MTU
// of 1450 with the sender's segment size 1410 (1450 - 40) becomes exactly
// 46 segments over two Reads of a 32-frame batch: every one at most 1450
// bytes of IPv4, valid checksums, sequence numbers advancing by 1410, IPv4
// IDs by 1, PSH and FIN only on the last, CWR only on the first, the
// Ethernet header copied.
func TestVnetCutsSuperFrameForTunnel(t *testing.T) {
	const mtu, gsoSize, payload = 1450, 1410, 64000
	frame := superFrame(payload, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr)
	copy(frame[0:12], []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2})
	r := &Reader{mtu: mtu, large: make([]byte, 65536+64)}
	copy(r.hdr[:], vnetHeader(1, 1, gsoSize))
	bufs := make([][]byte, 32)
	sizes := make([]int, len(bufs))
	for i := range bufs {
		bufs[i] = make([]byte, 64+1514)
	}
	r.bufs, r.sizes, r.offset = bufs, sizes, 64
	p := bufs[0][64:]
	k := copy(p, frame)
	copy(r.large[len(p):], frame[k:])
	r.accept(len(frame), p, 0)
	var segs [][]byte
	for reads := 1; ; reads++ {
		for i := range r.n {
			segs = append(segs, append([]byte(nil), bufs[i][64:64+sizes[i]]...))
		}
		if r.seg.Done() {
			if reads != 2 {
				t.Errorf("%d Reads, want 2", reads)
			}
			break
		}
		r.n = 0
		r.cut()
	}
	const want = (payload + gsoSize - 1) / gsoSize // 46
	if len(segs) != want {
		t.Fatalf("%d segments, want %d", len(segs), want)
	}
	for i, s := range segs {
		if string(s[:14]) != string(frame[:14]) {
			t.Errorf("segment %d: Ethernet header % x, want % x", i, s[:14], frame[:14])
		}
		ip := header.IPv4(s[14:])
		if len(ip) > mtu || int(ip.TotalLength()) != len(ip) || !ip.IsChecksumValid() {
			t.Errorf("segment %d: %d bytes, total length %d, IPv4 checksum valid %v; want ≤ %d", i, len(ip), ip.TotalLength(), ip.IsChecksumValid(), mtu)
		}
		if ip.ID() != uint16(100+i) {
			t.Errorf("segment %d: IPv4 ID %d, want %d", i, ip.ID(), 100+i)
		}
		tcp := header.TCP(ip.Payload())
		wantLen := gsoSize
		if i == want-1 {
			wantLen = payload - (want-1)*gsoSize
		}
		if len(tcp.Payload()) != wantLen || tcp.SequenceNumber() != uint32(1000+i*gsoSize) {
			t.Errorf("segment %d: %d bytes at seq %d, want %d at %d", i, len(tcp.Payload()), tcp.SequenceNumber(), wantLen, 1000+i*gsoSize)
		}
		sum := checksum.Checksum(s[14+12:14+20], 0)
		sum = checksum.Combine(checksum.Combine(sum, 6), uint16(len(tcp)))
		if checksum.Checksum(tcp, sum) != 0xffff {
			t.Errorf("segment %d: TCP checksum does not verify", i)
		}
		f := tcp.Flags()
		last, first := i == want-1, i == 0
		if (f&header.TCPFlagPsh != 0) != last || (f&header.TCPFlagFin != 0) != last || (f&header.TCPFlagCwr != 0) != first || f&header.TCPFlagAck == 0 {
			t.Errorf("segment %d: flags %v", i, f)
		}
	}
	if st := r.Stats(); st != (link.OffloadStats{Checksums: want, SuperFrames: 1, Segments: want}) {
		t.Errorf("stats %+v", st)
	}
}

// TestVnetCompletesPartialChecksum: a NEEDS_CSUM frame gets its checksum
// where csum_start and csum_offset say, as the kernel's skb_checksum_help
// computes it; offsets outside the frame change nothing.
func TestVnetCompletesPartialChecksum(t *testing.T) {
	full := superFrame(300, header.TCPFlagAck|header.TCPFlagPsh)
	tcp := header.TCP(full[34:])
	want := append([]byte(nil), full...)
	sum := checksum.Checksum(want[14+12:14+20], 0)
	sum = checksum.Combine(checksum.Combine(sum, 6), uint16(len(tcp)))
	binary.BigEndian.PutUint16(want[34+16:], ^checksum.Checksum(header.TCP(want[34:]).Payload(), checksum.Checksum(want[34:34+16], sum)))
	partial := append([]byte(nil), full...)
	binary.BigEndian.PutUint16(partial[34+16:], sum) // what a CHECKSUM_PARTIAL sender leaves
	for _, tc := range []struct {
		name          string
		start, offset uint16
		want          []byte
	}{
		{"TCP", 34, 16, want},
		{"start in the Ethernet header", 10, 16, partial},
		{"field past the end", 34, uint16(len(partial)), partial},
	} {
		r := &Reader{mtu: 1500, large: make([]byte, 65536+64)}
		h := vnetHeader(1, 0, 0)
		binary.NativeEndian.PutUint16(h[6:], tc.start)
		binary.NativeEndian.PutUint16(h[8:], tc.offset)
		copy(r.hdr[:], h)
		bufs := [][]byte{make([]byte, 2048)}
		r.bufs, r.sizes = bufs, make([]int, 1)
		copy(bufs[0], partial)
		r.accept(len(partial), bufs[0], 0)
		if got := bufs[0][:r.sizes[0]]; string(got) != string(tc.want) {
			t.Errorf("%s: checksum field % x, want % x", tc.name, got[50:52], tc.want[50:52])
		}
	}
	if !header.IPv4(want[14:]).IsChecksumValid() {
		t.Fatal("test frame broken")
	}
}

// TestVnetRefusesTinySegments: a super-frame asking for segments under
// Linux's minimum MSS (48) is dropped, not cut into thousands.
func TestVnetRefusesTinySegments(t *testing.T) {
	frame := superFrame(60000, header.TCPFlagAck)
	for _, tc := range []struct {
		gso  uint16
		want int // segments handed out by the first Read of 64
	}{{1, 0}, {47, 0}, {48, 64}} {
		r := &Reader{mtu: 1500, large: make([]byte, 65536+64)}
		copy(r.hdr[:], vnetHeader(1, 1, tc.gso))
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		r.bufs, r.sizes = bufs, make([]int, 64)
		p := bufs[0]
		k := copy(p, frame)
		copy(r.large[len(p):], frame[k:])
		r.accept(len(frame), p, 0)
		if r.n != tc.want {
			t.Errorf("gso_size %d: %d segments, want %d (stats %+v)", tc.gso, r.n, tc.want, r.Stats())
		}
	}
}

// TestVnetHoldsSuperFrameForNextRead: a super-frame of 40 segments read
// behind another frame in a 40-frame batch (39 slots free) is held, and
// the next Read hands out all 40 of them; where the free slots hold it
// (40 of 64) or no batch could (32), it is cut at once, as before.
func TestVnetHoldsSuperFrameForNextRead(t *testing.T) {
	const gsoSize, segs = 1000, 40
	frame := superFrame(segs*gsoSize, header.TCPFlagAck)
	small := superFrame(100, header.TCPFlagAck)
	for _, tc := range []struct {
		batch     int
		wantFirst int // frames the first Read hands out
		held      bool
	}{{64, 64, false}, {40, 1, true}, {32, 32, false}} {
		r := &Reader{mtu: 1500, large: make([]byte, 65536+64)}
		bufs := make([][]byte, tc.batch)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		r.bufs, r.sizes = bufs, make([]int, tc.batch)
		if tc.batch == 64 {
			r.n = 23 // behind the small frame, 40 slots free: cut at once
		}
		copy(r.hdr[:], vnetHeader(0, 0, 0))
		copy(bufs[r.n], small)
		r.accept(len(small), bufs[r.n], 0)
		copy(r.hdr[:], vnetHeader(1, 1, gsoSize))
		p := bufs[r.n]
		k := copy(p, frame)
		copy(r.large[len(p):], frame[k:])
		r.accept(len(frame), p, 0)
		if r.n != tc.wantFirst || r.held != tc.held {
			t.Errorf("batch %d: the first Read hands out %d frames (held %v), want %d (held %v)", tc.batch, r.n, r.held, tc.wantFirst, tc.held)
		}
		if !tc.held {
			continue
		}
		r.n, r.held = 0, false // the next Read
		r.cut()
		if r.n != segs || !r.seg.Done() {
			t.Errorf("batch %d: the next Read hands out %d segments (done %v, stats %+v), want all %d", tc.batch, r.n, r.seg.Done(), r.Stats(), segs)
		}
	}
}
