package vnet

import (
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// rxFrame is one frame a queueRecv hands out: its virtio header and bytes.
type rxFrame struct {
	hdr, frame []byte
	meta       link.RxMeta
}

// queueRecv is a RecvFunc that receives q[next:] one by one, as readv(2)
// would (the header into iov[0], the frame across the other iovecs,
// truncated to them), then says EAGAIN. Setting next to 0 replays q.
type queueRecv struct {
	q     []rxFrame
	next  int
	calls int
}

func (s *queueRecv) recv(_ uintptr, iov []unix.Iovec) (int, link.RxMeta, syscall.Errno) {
	s.calls++
	if s.next == len(s.q) {
		return 0, 0, unix.EAGAIN
	}
	f := s.q[s.next]
	s.next++
	hdr := unsafe.Slice(iov[0].Base, iov[0].Len)
	clear(hdr)
	copy(hdr, f.hdr)
	n := 0
	for _, v := range iov[1:] {
		n += copy(unsafe.Slice(v.Base, v.Len), f.frame[n:])
	}
	return HdrLen + n, f.meta, 0
}

// gsoHdr is the virtio header a kernel puts in front of a super-frame (or,
// with gsoType 0, a partial-checksum frame): NEEDS_CSUM, where the
// checksum is, the gso type and size.
func gsoHdr(gsoType uint8, size, csumStart, csumOffset uint16) []byte {
	h := vnetHeader(unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType, size)
	binary.NativeEndian.PutUint16(h[6:], csumStart)
	binary.NativeEndian.PutUint16(h[8:], csumOffset)
	return h
}

// partial returns a copy of the frame f (Ethernet, IPv4, TCP or UDP) with
// its transport checksum field holding the pseudo-header sum, as a
// CHECKSUM_PARTIAL sender leaves it.
func partial(f []byte) []byte {
	p := append([]byte(nil), f...)
	ip := p[14:]
	ihl := int(ip[0]&0x0f) * 4
	field := 16
	if ip[9] == 17 {
		field = 6
	}
	binary.BigEndian.PutUint16(ip[ihl+field:], gso.PseudoHeaderSum(ip, len(ip)-ihl))
	return p
}

// fixIPv4 recomputes the IPv4 header checksum of the frame f.
func fixIPv4(f []byte) []byte {
	ihl := int(f[14]&0x0f) * 4
	f[14+10], f[14+11] = 0, 0
	binary.BigEndian.PutUint16(f[14+10:], ^checksum.Checksum(f[14:14+ihl], 0))
	return f
}

// tcpSuper is a TCP super-frame of n payload bytes with the given flags
// and TCP options, its checksum partial.
func tcpSuper(n int, flags header.TCPFlags, options []byte) []byte {
	return partial(segment{sport: 5201, seq: 7000, flags: flags, n: n, options: options, id: 300}.frame())
}

// plainFrame is a full-checksum TCP frame of n payload bytes from port
// sport.
func plainFrame(sport uint16, n int) []byte {
	return segment{sport: sport, seq: 1, flags: header.TCPFlagAck | header.TCPFlagPsh, n: n}.frame()
}

var (
	plainHdr  = vnetHeader(0, 0, 0)
	tsOptions = []byte{1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9} // NOP, NOP, timestamps: thl 32
)

// gsoBatch is a ReadGSO batch: count buffers of offset+1514 bytes (a
// super-frame's head lands in one, its rest in the Reader's buffer).
type gsoBatch struct {
	bufs  [][]byte
	sizes []int
	meta  []link.RxMeta
	gso   []link.GSO
}

func newGSOBatch(count, offset int) *gsoBatch {
	b := &gsoBatch{bufs: make([][]byte, count), sizes: make([]int, count), meta: make([]link.RxMeta, count), gso: make([]link.GSO, count)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, offset+1514)
	}
	return b
}

// poison fills gso with what no read returns for a plain frame, so that a
// slot the read leaves unset shows.
func (b *gsoBatch) poison() {
	for i := range b.gso {
		b.gso[i] = link.GSO{Type: link.GSOTCPv4, Size: 1}
		b.sizes[i] = -1
	}
}

// frame is frame i of a read at offset: from bufs, or from SuperFrame.
func (b *gsoBatch) frame(r *Reader, i, offset int) []byte {
	if b.gso[i].Type != link.GSONone {
		return r.SuperFrame()[offset : offset+b.sizes[i]]
	}
	return b.bufs[i][offset : offset+b.sizes[i]]
}

// TestReadGSOTCPBehindPlainFrames: two partial-checksum frames, then a
// 30,000-byte TCP super-frame: one ReadGSO returns all three, the
// super-frame last and whole at SuperFrame()[64:64+size], byte for byte as
// sent (its checksum field still the pseudo-header sum), gso_size 1448
// kept (it fits MTU 1500), the plain frames' checksums completed. Nothing
// is cut.
func TestReadGSOTCPBehindPlainFrames(t *testing.T) {
	const offset = 64
	a, b := plainFrame(1, 200), plainFrame(2, 333)
	super := tcpSuper(30000, header.TCPFlagAck|header.TCPFlagPsh, nil)
	q := &queueRecv{q: []rxFrame{
		{hdr: gsoHdr(0, 0, 34, 16), frame: partial(a), meta: link.RxVLAN},
		{hdr: gsoHdr(0, 0, 34, 16), frame: partial(b)},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16), frame: super, meta: link.RxVLAN},
	}}
	if string(partial(a)) == string(a) {
		t.Fatal("test frame broken: partial checksum equals the full one")
	}
	r := NewReader(&fakeConn{}, 1500, q.recv)
	bt := newGSOBatch(8, offset)
	bt.poison()
	n, err := r.ReadGSO(bt.bufs, bt.sizes, bt.meta, bt.gso, offset)
	if err != nil || n != 3 {
		t.Fatalf("ReadGSO = %d, %v; want 3, nil", n, err)
	}
	wantGSO := []link.GSO{{}, {}, {Type: link.GSOTCPv4, Size: 1448}}
	wantSizes := []int{len(a), len(b), len(super)}
	wantMeta := []link.RxMeta{link.RxVLAN, 0, link.RxVLAN}
	for i := range 3 {
		if bt.gso[i] != wantGSO[i] || bt.sizes[i] != wantSizes[i] || bt.meta[i] != wantMeta[i] {
			t.Errorf("frame %d: gso %+v, size %d, meta %v; want %+v, %d, %v", i, bt.gso[i], bt.sizes[i], bt.meta[i], wantGSO[i], wantSizes[i], wantMeta[i])
		}
	}
	for i, want := range [][]byte{a, b, super} {
		if got := bt.frame(r, i, offset); string(got) != string(want) {
			t.Errorf("frame %d differs from what was sent (checksum field % x, want % x)", i, got[50:52], want[50:52])
		}
	}
	if q.next != 3 {
		t.Errorf("%d frames received, want 3", q.next)
	}
	if st := r.Stats(); st != (link.OffloadStats{Checksums: 2, ReadWhole: 1}) {
		t.Errorf("stats %+v, want Checksums 2, ReadWhole 1", st)
	}
	if pkt := r.SuperFrame()[offset+14 : offset+len(super)]; link.Segments(pkt, bt.gso[2]) != 21 { // ceil(30000/1448)
		t.Errorf("Segments = %d, want 21", link.Segments(pkt, bt.gso[2]))
	}
}

// TestReadGSOSizeCapped: the segment size ReadGSO reports is the sender's
// gso_size, capped so that a segment fits the MTU: MTU minus the IPv4 and
// TCP headers (options included). A UDP datagram's size is never changed
// (one over the MTU is dropped: TestReadGSODropsInvalid).
func TestReadGSOSizeCapped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mtu     int
		gsoType uint8
		size    uint16
		frame   []byte
		want    link.GSO
	}{
		{"gso_size over MTU 1400", 1400, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, tcpSuper(20000, header.TCPFlagAck, nil), link.GSO{Type: link.GSOTCPv4, Size: 1360}},
		{"over MTU 1400, timestamps", 1400, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, tcpSuper(20000, header.TCPFlagAck, tsOptions), link.GSO{Type: link.GSOTCPv4, Size: 1348}},
		{"exactly MTU 1500", 1500, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1460, tcpSuper(20000, header.TCPFlagAck, nil), link.GSO{Type: link.GSOTCPv4, Size: 1460}},
		{"one over MTU 1500", 1500, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1461, tcpSuper(20000, header.TCPFlagAck, nil), link.GSO{Type: link.GSOTCPv4, Size: 1460}},
		{"under the MTU: the sender's MSS", 9000, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1000, tcpSuper(20000, header.TCPFlagAck, nil), link.GSO{Type: link.GSOTCPv4, Size: 1000}},
		{"ECN bit", 1400, unix.VIRTIO_NET_HDR_GSO_TCPV4 | unix.VIRTIO_NET_HDR_GSO_ECN, 1448, tcpSuper(20000, header.TCPFlagAck|header.TCPFlagCwr, nil), link.GSO{Type: link.GSOTCPv4, Size: 1360}},
		{"UDP", 1400, unix.VIRTIO_NET_HDR_GSO_UDP_L4, 1200, partial(superUDPFrame(12000)), link.GSO{Type: link.GSOUDPv4, Size: 1200}},
	} {
		q := &queueRecv{q: []rxFrame{{hdr: gsoHdr(tc.gsoType, tc.size, 34, 16), frame: tc.frame}}}
		r := NewReader(&fakeConn{}, tc.mtu, q.recv)
		bt := newGSOBatch(4, 0)
		n, err := r.ReadGSO(bt.bufs, bt.sizes, nil, bt.gso, 0)
		if err != nil || n != 1 || bt.gso[0] != tc.want || string(bt.frame(r, 0, 0)) != string(tc.frame) {
			t.Errorf("%s: ReadGSO = %d, %v, gso %+v (frame intact %v); want 1, nil, %+v", tc.name, n, err, bt.gso[0], string(bt.frame(r, 0, 0)) == string(tc.frame), tc.want)
		}
	}
}

// TestReadGSOUDPAndOrder: a UDP super-datagram goes whole too, and a
// super-frame ends its batch: frames queued behind it come with the next
// ReadGSO, none lost, in order. Five frames (plain, UDP super, plain, TCP
// super, plain) take three reads of an 8-frame batch.
func TestReadGSOUDPAndOrder(t *testing.T) {
	const offset = 128 // MaxHeadroom: still whole
	p1, p2, p3 := plainFrame(1, 100), plainFrame(2, 100), plainFrame(3, 100)
	udp := partial(superUDPFrame(10500))
	tcp := tcpSuper(64000, header.TCPFlagAck, tsOptions)
	q := &queueRecv{q: []rxFrame{
		{hdr: plainHdr, frame: p1},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_UDP_L4, 1000, 34, 6), frame: udp},
		{hdr: plainHdr, frame: p2},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16), frame: tcp},
		{hdr: plainHdr, frame: p3},
	}}
	r := NewReader(&fakeConn{}, 1500, q.recv)
	bt := newGSOBatch(8, offset)
	for read, want := range []struct {
		frames   [][]byte
		gso      link.GSO // the last frame's
		received int      // frames received by the end of this read
	}{
		{[][]byte{p1, udp}, link.GSO{Type: link.GSOUDPv4, Size: 1000}, 2},
		{[][]byte{p2, tcp}, link.GSO{Type: link.GSOTCPv4, Size: 1448}, 4},
		{[][]byte{p3}, link.GSO{}, 5},
	} {
		bt.poison()
		n, err := r.ReadGSO(bt.bufs, bt.sizes, bt.meta, bt.gso, offset)
		if err != nil || n != len(want.frames) || q.next != want.received {
			t.Fatalf("read %d: ReadGSO = %d, %v after %d frames received; want %d, nil after %d", read, n, err, q.next, len(want.frames), want.received)
		}
		for i, f := range want.frames {
			wantGSO := link.GSO{}
			if i == n-1 {
				wantGSO = want.gso
			}
			if bt.gso[i] != wantGSO || string(bt.frame(r, i, offset)) != string(f) {
				t.Errorf("read %d, frame %d: gso %+v, size %d; want %+v, %d, the bytes sent", read, i, bt.gso[i], bt.sizes[i], wantGSO, len(f))
			}
		}
	}
	if st := r.Stats(); st != (link.OffloadStats{ReadWhole: 2}) {
		t.Errorf("stats %+v, want ReadWhole 2", st)
	}
	if got := link.Segments(udp[14:], link.GSO{Type: link.GSOUDPv4, Size: 1000}); got != 11 {
		t.Errorf("UDP Segments = %d, want 11", got)
	}
}

// TestReadGSODropsInvalid: a super-frame that is not what its virtio
// header says is dropped and counted once, and the frame behind it still
// arrives, in the same read; at the limits, the valid ones go whole.
func TestReadGSODropsInvalid(t *testing.T) {
	const mtu = 1500
	tcpV, udpV := unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.VIRTIO_NET_HDR_GSO_UDP_L4
	good := func() []byte { return tcpSuper(10000, header.TCPFlagAck, nil) }
	mod := func(f []byte, fn func(ip []byte)) []byte { fn(f[14:]); return f }
	for _, tc := range []struct {
		name    string
		gsoType int
		size    uint16
		frame   []byte
		want    link.GSO // zero: dropped
	}{
		{"GSO_UDP (UFO)", unix.VIRTIO_NET_HDR_GSO_UDP, 1448, good(), link.GSO{}},
		{"GSO_TCPV6 of IPv4", unix.VIRTIO_NET_HDR_GSO_TCPV6, 1448, good(), link.GSO{}},
		{"GSO type 2", 2, 1448, good(), link.GSO{}},
		{"TCP gso_size 0", tcpV, 0, good(), link.GSO{}},
		{"TCP gso_size 47", tcpV, 47, good(), link.GSO{}},
		{"TCP gso_size 48", tcpV, 48, good(), link.GSO{Type: link.GSOTCPv4, Size: 48}},
		{"UDP gso_size 0", udpV, 0, partial(superUDPFrame(3000)), link.GSO{}},
		{"UDP datagram one over the MTU", udpV, mtu - 28 + 1, partial(superUDPFrame(3000)), link.GSO{}},
		{"UDP datagram of the MTU", udpV, mtu - 28, partial(superUDPFrame(3000)), link.GSO{Type: link.GSOUDPv4, Size: mtu - 28}},
		{"129 UDP datagrams", udpV, 100, partial(superUDPFrame(128*100 + 1)), link.GSO{}},
		{"128 UDP datagrams", udpV, 100, partial(superUDPFrame(128 * 100)), link.GSO{Type: link.GSOUDPv4, Size: 100}},
		{"UDP length wrong", udpV, 1000, mod(partial(superUDPFrame(3000)), func(ip []byte) { ip[20+5]-- }), link.GSO{}},
		{"UDP_L4 of a TCP packet", udpV, 1000, good(), link.GSO{}},
		{"TCPV4 of a UDP packet", tcpV, 1000, partial(superUDPFrame(3000)), link.GSO{}},
		{"IPv4 header checksum wrong", tcpV, 1448, mod(good(), func(ip []byte) { ip[10]++ }), link.GSO{}},
		{"total length one short", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)-1)) })), link.GSO{}},
		{"total length one long", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+1)) })), link.GSO{}},
		{"MF", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { ip[6] |= 0x20 })), link.GSO{}},
		{"fragment offset", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { ip[7] = 1 })), link.GSO{}},
		{"not IPv4 (EtherType)", tcpV, 1448, mod(good(), func([]byte) {}), link.GSO{}}, // EtherType set below
		{"IPv6 version", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { ip[0] = 0x65 })), link.GSO{}},
		{"IPv4 header length 16", tcpV, 1448, fixIPv4(mod(good(), func(ip []byte) { ip[0] = 0x44 })), link.GSO{}},
		{"TCP header length 16", tcpV, 1448, mod(good(), func(ip []byte) { ip[20+12] = 4 << 4 }), link.GSO{}},
		{"only headers, too short", tcpV, 1448, good()[:14+30], link.GSO{}},
		{"valid", tcpV, 1448, good(), link.GSO{Type: link.GSOTCPv4, Size: 1448}},
	} {
		if tc.name == "not IPv4 (EtherType)" {
			binary.BigEndian.PutUint16(tc.frame[12:], 0x86dd)
		}
		next := plainFrame(9, 64)
		q := &queueRecv{q: []rxFrame{
			{hdr: gsoHdr(uint8(tc.gsoType), tc.size, 34, 16), frame: tc.frame},
			{hdr: plainHdr, frame: next},
		}}
		r := NewReader(&fakeConn{}, mtu, q.recv)
		bt := newGSOBatch(8, 32)
		bt.poison()
		n, err := r.ReadGSO(bt.bufs, bt.sizes, nil, bt.gso, 32)
		if tc.want.Type != link.GSONone {
			// Valid: whole, the batch ends there; the plain frame next.
			if err != nil || n != 1 || bt.gso[0] != tc.want || string(bt.frame(r, 0, 32)) != string(tc.frame) {
				t.Errorf("%s: ReadGSO = %d, %v, gso %+v; want 1, nil, %+v, the frame intact", tc.name, n, err, bt.gso[0], tc.want)
			}
			if st := r.Stats(); st != (link.OffloadStats{ReadWhole: 1}) {
				t.Errorf("%s: stats %+v, want ReadWhole 1", tc.name, st)
			}
			continue
		}
		if err != nil || n != 1 || bt.gso[0] != (link.GSO{}) || bt.sizes[0] != len(next) || string(bt.frame(r, 0, 32)) != string(next) {
			t.Errorf("%s: ReadGSO = %d, %v, gso %+v, size %d; want 1, nil, the plain frame of %d behind it", tc.name, n, err, bt.gso[0], bt.sizes[0], len(next))
		}
		if st := r.Stats(); st != (link.OffloadStats{Dropped: 1}) {
			t.Errorf("%s: stats %+v, want Dropped 1", tc.name, st)
		}
	}
}

// TestReadGSOCutsBeyondMaxHeadroom: with an offset beyond MaxHeadroom
// ReadGSO cuts a super-frame as ReadMeta does, exactly the same frames,
// and says every one of them is plain (gso[i] cleared, whatever the slot
// held before).
func TestReadGSOCutsBeyondMaxHeadroom(t *testing.T) {
	const offset = MaxHeadroom + 1
	super := tcpSuper(5000, header.TCPFlagAck|header.TCPFlagPsh, nil)
	plain := plainFrame(1, 100)
	frames := []rxFrame{
		{hdr: plainHdr, frame: plain},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16), frame: super},
	}
	qm, qg := &queueRecv{q: frames}, &queueRecv{q: frames}
	rm, rg := NewReader(&fakeConn{}, 1500, qm.recv), NewReader(&fakeConn{}, 1500, qg.recv)
	bm, bg := newGSOBatch(8, offset), newGSOBatch(8, offset)
	bg.poison()
	nm, errm := rm.ReadMeta(bm.bufs, bm.sizes, bm.meta, offset)
	ng, errg := rg.ReadGSO(bg.bufs, bg.sizes, bg.meta, bg.gso, offset)
	if errm != nil || errg != nil || nm != 5 || ng != nm { // the plain frame and ceil(5000/1448) = 4 segments
		t.Fatalf("ReadMeta = %d, %v; ReadGSO = %d, %v; want 5, nil both", nm, errm, ng, errg)
	}
	for i := range ng {
		if bg.gso[i] != (link.GSO{}) {
			t.Errorf("frame %d: gso %+v, want GSONone", i, bg.gso[i])
		}
		if bg.sizes[i] != bm.sizes[i] || string(bg.bufs[i][offset:offset+bg.sizes[i]]) != string(bm.bufs[i][offset:offset+bm.sizes[i]]) {
			t.Errorf("frame %d: ReadGSO's (%d bytes) differs from ReadMeta's (%d)", i, bg.sizes[i], bm.sizes[i])
		}
	}
	want := link.OffloadStats{Checksums: 4, SuperFrames: 1, Segments: 4}
	if sm, sg := rm.Stats(), rg.Stats(); sm != want || sg != want {
		t.Errorf("stats: ReadMeta's %+v, ReadGSO's %+v; want %+v", sm, sg, want)
	}
}

// TestReadGSOAfterPendingCut: segments ReadMeta left pending go out with
// the next ReadGSO, marked plain, and it reads nothing more; the one after
// reads the next super-frame and hands it out whole.
func TestReadGSOAfterPendingCut(t *testing.T) {
	super := tcpSuper(10*1000, header.TCPFlagAck, nil) // 10 segments
	next := tcpSuper(3000, header.TCPFlagAck, nil)
	q := &queueRecv{q: []rxFrame{
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1000, 34, 16), frame: super},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1000, 34, 16), frame: next},
	}}
	r := NewReader(&fakeConn{}, 1500, q.recv)
	bt := newGSOBatch(6, 64)
	if n, err := r.ReadMeta(bt.bufs, bt.sizes, nil, 64); n != 6 || err != nil {
		t.Fatalf("ReadMeta = %d, %v; want 6, nil", n, err)
	}
	bt.poison()
	n, err := r.ReadGSO(bt.bufs, bt.sizes, nil, bt.gso, 64)
	if err != nil || n != 4 || q.next != 1 {
		t.Fatalf("ReadGSO = %d, %v after %d frames received; want the 4 segments left, nil after 1", n, err, q.next)
	}
	for i := range 4 {
		if bt.gso[i] != (link.GSO{}) || bt.sizes[i] != 14+40+1000 {
			t.Errorf("frame %d: gso %+v, size %d; want a plain segment of %d", i, bt.gso[i], bt.sizes[i], 14+40+1000)
		}
	}
	bt.poison()
	n, err = r.ReadGSO(bt.bufs, bt.sizes, nil, bt.gso, 64)
	if err != nil || n != 1 || bt.gso[0] != (link.GSO{Type: link.GSOTCPv4, Size: 1000}) || string(bt.frame(r, 0, 64)) != string(next) {
		t.Errorf("ReadGSO = %d, %v, gso %+v; want the second super-frame whole", n, err, bt.gso[0])
	}
	if st := r.Stats(); st != (link.OffloadStats{Checksums: 10, SuperFrames: 1, Segments: 10, ReadWhole: 1}) {
		t.Errorf("stats %+v", st)
	}
}

// TestReadGSOAllocs: a ReadGSO of plain frames and a super-frame
// allocates nothing.
func TestReadGSOAllocs(t *testing.T) {
	q := &queueRecv{q: []rxFrame{
		{hdr: gsoHdr(0, 0, 34, 16), frame: partial(plainFrame(1, 200))},
		{hdr: gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16), frame: tcpSuper(60000, header.TCPFlagAck, nil)},
	}}
	r := NewReader(&fakeConn{}, 1500, q.recv)
	bt := newGSOBatch(8, 64)
	allocs := testing.AllocsPerRun(100, func() {
		q.next = 0
		if n, err := r.ReadGSO(bt.bufs, bt.sizes, bt.meta, bt.gso, 64); n != 2 || err != nil {
			t.Fatalf("ReadGSO = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadGSO allocates %.1f times, want 0", allocs)
	}
}

// FuzzReadGSO: whatever virtio header and frame arrive, at any offset and
// MTU, ReadGSO does not panic, every frame it returns fits its buffer (a
// super-frame SuperFrame), only the last frame of a read is a super-frame,
// a super-frame is the frame as received, byte for byte, of exactly its
// IPv4 total length, TCP or UDP of a segment size that fits the MTU, at
// most 128 UDP datagrams; beyond MaxHeadroom none is; and the plain frame
// queued behind it always arrives, last.
func FuzzReadGSO(f *testing.F) {
	f.Add(gsoHdr(1, 1448, 34, 16), tcpSuper(30000, header.TCPFlagAck, nil), 1500, uint8(64))
	f.Add(gsoHdr(0x81, 1448, 34, 16), tcpSuper(3000, header.TCPFlagAck|header.TCPFlagCwr, tsOptions), 1400, uint8(0))
	f.Add(gsoHdr(5, 1000, 34, 6), partial(superUDPFrame(10500)), 1500, uint8(128))
	f.Add(gsoHdr(5, 100, 34, 6), partial(superUDPFrame(12801)), 1500, uint8(2))
	f.Add(gsoHdr(1, 1448, 34, 16), tcpSuper(30000, header.TCPFlagAck, nil), 1500, uint8(200))
	f.Add(gsoHdr(1, 48, 34, 16), tcpSuper(100, header.TCPFlagAck, nil), 68, uint8(1))
	f.Add(gsoHdr(0, 0, 34, 16), partial(plainFrame(1, 100)), 1500, uint8(0))
	f.Fuzz(func(t *testing.T, hdr, frame []byte, mtu int, offset uint8) {
		if mtu < 68 || mtu > 9000 || len(frame) > link.MaxLarge {
			return
		}
		const bufLen = 2048
		off := int(offset)
		last := plainFrame(7, 10)
		q := &queueRecv{q: []rxFrame{{hdr: hdr, frame: frame}, {hdr: plainHdr, frame: last}}}
		r := NewReader(&fakeConn{}, mtu, q.recv)
		bufs := make([][]byte, 4)
		for i := range bufs {
			bufs[i] = make([]byte, off+bufLen)
		}
		sizes, gsos := make([]int, len(bufs)), make([]link.GSO, len(bufs))
		var lastOut []byte
		whole := 0
		for reads := 0; q.next < len(q.q) || !r.seg.Done(); reads++ {
			// A super-frame cut (offset beyond MaxHeadroom) into segments
			// of 48 bytes fills 4 buffers per read.
			if reads > 100+len(frame)/48 {
				t.Fatal("no end of reads")
			}
			for i := range gsos {
				gsos[i] = link.GSO{Type: 99}
			}
			n, err := r.ReadGSO(bufs, sizes, nil, gsos, off)
			if err != nil || n < 1 || n > len(bufs) {
				t.Fatalf("ReadGSO = %d, %v", n, err)
			}
			for i := range n {
				g := gsos[i]
				if g.Type == link.GSONone {
					if sizes[i] < 0 || sizes[i] > bufLen {
						t.Fatalf("frame %d of %d bytes in a buffer of %d", i, sizes[i], bufLen)
					}
					lastOut = bufs[i][off : off+sizes[i]]
					continue
				}
				whole++
				if i != n-1 || off > MaxHeadroom || g.Type != link.GSOTCPv4 && g.Type != link.GSOUDPv4 {
					t.Fatalf("frame %d of %d, offset %d: gso %+v", i, n, off, g)
				}
				if sizes[i] < 14 || off+sizes[i] > len(r.SuperFrame()) {
					t.Fatalf("super-frame of %d bytes at %d in a buffer of %d", sizes[i], off, len(r.SuperFrame()))
				}
				sf := r.SuperFrame()[off : off+sizes[i]]
				lastOut = sf
				pkt := sf[14:]
				if len(sf) != len(frame) || len(pkt) < 28 || int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) {
					t.Fatalf("super-frame of %d bytes (%d received) of IPv4, total length % x", len(sf), len(frame), pkt[2:min(4, len(pkt))])
				}
				ihl := int(pkt[0]&0x0f) * 4
				// The frame as received, but its transport checksum field,
				// which holds the pseudo-header sum (the Reader writes it
				// where the sender's header did not say so).
				field := 14 + ihl + 16
				if g.Type == link.GSOUDPv4 {
					field = 14 + ihl + 6
				}
				if string(sf[:field]) != string(frame[:field]) || string(sf[field+2:]) != string(frame[field+2:]) {
					t.Fatalf("super-frame of %d bytes differs from the frame received beyond its checksum field", len(sf))
				}
				var h [HdrLen]byte // as queueRecv hands it over
				copy(h[:], hdr)
				saidPartial := h[0]&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && int(binary.NativeEndian.Uint16(h[6:])) == 14+ihl && int(binary.NativeEndian.Uint16(h[8:])) == field-14-ihl
				got, want := binary.BigEndian.Uint16(sf[field:]), gso.PseudoHeaderSum(pkt, len(pkt)-ihl)
				if saidPartial {
					want = binary.BigEndian.Uint16(frame[field:]) // the sender's, kept
				}
				if got != want {
					t.Fatalf("checksum field %#04x, want %#04x (the header said partial there: %v)", got, want, saidPartial)
				}
				hdrs := ihl + 8
				if g.Type == link.GSOTCPv4 {
					hdrs = ihl + int(pkt[ihl+12]>>4)*4
				}
				segs := link.Segments(pkt, g)
				if g.Size == 0 || hdrs+int(g.Size) > mtu || segs < 1 || g.Type == link.GSOUDPv4 && segs > 128 {
					t.Fatalf("gso %+v, %d segments of headers %d, MTU %d", g, segs, hdrs, mtu)
				}
			}
		}
		if string(lastOut) != string(last) {
			t.Fatalf("the last frame handed out is not the plain frame queued last")
		}
		if st := r.Stats(); st.ReadWhole != uint64(whole) {
			t.Fatalf("ReadWhole %d, %d super-frames handed out", st.ReadWhole, whole)
		}
	})
}

// TestReadGSOPseudoHeaderSum: a super-frame whose virtio header does not
// say its checksum is partial where link.GSO says (no NEEDS_CSUM, or
// another csum_start or csum_offset: a pod writing its own headers) gets
// the pseudo-header sum written into its checksum field, so that a device
// writing it whole with NEEDS_CSUM makes the right checksums; with the
// kernel's header it is left byte for byte.
func TestReadGSOPseudoHeaderSum(t *testing.T) {
	const offset = 64
	want := tcpSuper(5000, header.TCPFlagAck, nil)
	garbled := append([]byte(nil), want...)
	garbled[14+20+16], garbled[14+20+17] = 0xde, 0xad
	for _, tc := range []struct {
		name  string
		hdr   []byte
		frame []byte
	}{
		{"kernel's", gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 16), want},
		{"no NEEDS_CSUM", vnetHeader(0, unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448), garbled},
		{"csum_start elsewhere", gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 14, 16), garbled},
		{"csum_offset elsewhere", gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 1448, 34, 6), garbled},
	} {
		q := &queueRecv{q: []rxFrame{{hdr: tc.hdr, frame: append([]byte(nil), tc.frame...)}}}
		r := NewReader(&fakeConn{}, 1500, q.recv)
		bt := newGSOBatch(4, offset)
		n, err := r.ReadGSO(bt.bufs, bt.sizes, bt.meta, bt.gso, offset)
		if err != nil || n != 1 || bt.gso[0].Type != link.GSOTCPv4 {
			t.Fatalf("%s: ReadGSO = %d, %v, gso %+v; want 1 whole TCP super-frame", tc.name, n, err, bt.gso[0])
		}
		if got := bt.frame(r, 0, offset); string(got) != string(want) {
			t.Errorf("%s: checksum field % x, want the pseudo-header sum % x (and nothing else changed)", tc.name, got[50:52], want[50:52])
		}
	}
}
