package vnet

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// seqpacketPair returns the RawConn of one end of a unix SOCK_SEQPACKET
// pair, which keeps every writev one message, and the other end's fd.
func seqpacketPair(t testing.TB) (syscall.RawConn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "coalescer")
	t.Cleanup(func() { f.Close(); unix.Close(fds[1]) })
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc, fds[1]
}

// readMessages reads every message waiting at fd.
func readMessages(t *testing.T, fd int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, HdrLen+link.MaxLarge+1)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

// atOffset copies frames behind offset bytes of headroom (filled with
// 0xee, which must not be written).
func atOffset(offset int, frames ...[]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = append(make([]byte, offset), f...)
		for j := range offset {
			out[i][j] = 0xee
		}
	}
	return out
}

func cloneAll(bufs [][]byte) [][]byte {
	out := make([][]byte, len(bufs))
	for i, b := range bufs {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// superHdr is the virtio header WriteGSO puts in front of a super-frame.
func superHdr(gsoType uint8, hdrLen, size, csumOffset uint16) virtioHdr {
	return virtioHdr{flags: unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType: gsoType, hdrLen: hdrLen, gsoSize: size, csumStart: 34, csumOffset: csumOffset}
}

// TestWriteGSOWhole: WriteGSO writes each super-frame with one writev,
// behind a virtio header asking for its GSO (GSO_ECN with CWR) and a
// partial checksum, the frame unchanged; runs of plain frames around them
// are coalesced, each on its own; and a run never takes in a super-frame,
// even one that would merge.
func TestWriteGSOWhole(t *testing.T) {
	const offset = 64
	a := flowOf(2, 1000, nil)
	b := flowOf(2, 1000, func(i int, s *segment) { s.sport = 5300 })
	tcp := tcpSuper(20000, header.TCPFlagAck, tsOptions)
	cwr := tcpSuper(5000, header.TCPFlagAck|header.TCPFlagCwr, nil)
	udp := partial(superUDPFrame(10500))
	c1 := plainFrame(1, 100)
	frames := [][]byte{a[0], a[1], tcp, b[0], b[1], cwr, udp, c1}
	gsos := []link.GSO{{}, {}, {Type: link.GSOTCPv4, Size: 1348}, {}, {}, {Type: link.GSOTCPv4, Size: 1448}, {Type: link.GSOUDPv4, Size: 1000}, {}}
	conn, peer := seqpacketPair(t)
	c := NewCoalescer(conn, fdio.StopAtReject)
	bufs := atOffset(offset, frames...)
	orig := cloneAll(bufs)
	n, err := c.WriteGSO(bufs, gsos, offset)
	if n != len(frames) || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want %d, nil", n, err, len(frames))
	}
	aHdr, aFrame := superFrameOf(&Coalescer{}, a)
	bHdr, bFrame := superFrameOf(&Coalescer{}, b)
	want := []struct {
		hdr   virtioHdr
		frame []byte
	}{
		{decodeHeader(aHdr), aFrame},
		{superHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 14+20+32, 1348, 16), tcp},
		{decodeHeader(bHdr), bFrame},
		{superHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4|unix.VIRTIO_NET_HDR_GSO_ECN, 14+20+20, 1448, 16), cwr},
		{superHdr(unix.VIRTIO_NET_HDR_GSO_UDP_L4, 14+20+8, 1000, 6), udp},
		{virtioHdr{}, c1},
	}
	if want[0].hdr != superHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 54, 1000, 16) {
		t.Fatalf("a coalesced run's header %+v", want[0].hdr)
	}
	msgs := readMessages(t, peer)
	if len(msgs) != len(want) {
		t.Fatalf("%d writes, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		m := msgs[i]
		if h := decodeHeader(m); h != w.hdr {
			t.Errorf("write %d: virtio header %+v, want %+v", i, h, w.hdr)
		}
		if string(m[HdrLen:]) != string(w.frame) {
			t.Errorf("write %d: %d bytes behind the header, want the %d of the frame", i, len(m)-HdrLen, len(w.frame))
		}
	}
	for i := range bufs {
		if string(bufs[i]) != string(orig[i]) {
			t.Errorf("buffer %d changed", i)
		}
	}
	if s, f, r := c.Coalesced(); s != 2 || f != 4 || r != 0 {
		t.Errorf("Coalesced() = %d, %d, %d; want 2, 4, 0", s, f, r)
	}
	if w, cut := c.Whole(); w != 3 || cut != 0 {
		t.Errorf("Whole() = %d, %d; want 3, 0", w, cut)
	}

	// Three frames of one flow, the middle one said to be a super-frame:
	// the run stops before it, and it goes whole.
	flow := flowOf(3, 1000, nil)
	n, err = c.WriteGSO(atOffset(0, flow...), []link.GSO{{}, {Type: link.GSOTCPv4, Size: 500}, {}}, 0)
	if n != 3 || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want 3, nil", n, err)
	}
	msgs = readMessages(t, peer)
	wantHdrs := []virtioHdr{{}, superHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 54, 500, 16), {}}
	if len(msgs) != 3 {
		t.Fatalf("%d writes, want 3", len(msgs))
	}
	for i, m := range msgs {
		if h := decodeHeader(m); h != wantHdrs[i] || string(m[HdrLen:]) != string(flow[i]) {
			t.Errorf("write %d: header %+v (%d bytes); want %+v and frame %d", i, h, len(m)-HdrLen, wantHdrs[i], i)
		}
	}
	if s, f, r := c.Coalesced(); s != 2 || f != 4 || r != 0 {
		t.Errorf("Coalesced() = %d, %d, %d; want still 2, 4, 0", s, f, r)
	}
}

// fakeWritev stands for writev(2) on a device: it refuses GSO writes of
// the kinds it is told with EINVAL, says EAGAIN on the calls it is told
// (counted from 0), and keeps what it takes, header and frame.
type fakeWritev struct {
	refuseTCP, refuseUDP bool
	eagain               map[int]bool
	discard              bool // count only (no allocations)

	calls   int
	refused int      // GSO writes refused
	sent    [][]byte // what it took
	taken   int
}

func (w *fakeWritev) writev(_ uintptr, iov []unix.Iovec) syscall.Errno {
	call := w.calls
	w.calls++
	if w.eagain[call] {
		return unix.EAGAIN
	}
	hdr := unsafe.Slice(iov[0].Base, iov[0].Len)
	switch t := hdr[1] &^ unix.VIRTIO_NET_HDR_GSO_ECN; {
	case t == unix.VIRTIO_NET_HDR_GSO_TCPV4 && w.refuseTCP, t == unix.VIRTIO_NET_HDR_GSO_UDP_L4 && w.refuseUDP:
		w.refused++
		return unix.EINVAL
	}
	w.taken++
	if !w.discard {
		var b []byte
		for _, v := range iov {
			b = append(b, unsafe.Slice(v.Base, v.Len)...)
		}
		w.sent = append(w.sent, b)
	}
	return 0
}

// newFakeCoalescer is a Coalescer writing through w.
func newFakeCoalescer(w *fakeWritev) (*Coalescer, *fakeConn) {
	conn := &fakeConn{}
	c := NewCoalescer(conn, fdio.StopAtReject)
	c.writev = w.writev
	return c, conn
}

// checkCut checks that msgs are the super-frame super (Ethernet, IPv4,
// TCP or UDP) cut into segments of size payload bytes, each behind a zero
// virtio header, as gso.Segmenter cuts: the Ethernet and transport headers
// copied, every segment of at most the headers and size bytes (all but the
// last exactly), valid IPv4 header with its total length and the ID
// counting up, a valid TCP or UDP checksum, sequence numbers contiguous
// (TCP), PSH and FIN only on the last and CWR only on the first, UDP
// lengths right, and the payloads together the super-frame's.
func checkCut(t *testing.T, super []byte, size int, msgs [][]byte) {
	t.Helper()
	oip := header.IPv4(super[14:])
	ihl := int(oip.HeaderLength())
	udp := oip.Protocol() == 17
	hdrs := ihl + 8
	if !udp {
		hdrs = ihl + int(header.TCP(oip.Payload()).DataOffset())
	}
	opayload := super[14+hdrs:]
	want := max(1, (len(opayload)+size-1)/size)
	if len(msgs) != want {
		t.Fatalf("%d segments, want %d", len(msgs), want)
	}
	var payload []byte
	for i, m := range msgs {
		last := i == want-1
		if h := decodeHeader(m); h != (virtioHdr{}) {
			t.Errorf("segment %d: virtio header %+v, want zero", i, h)
		}
		f := m[HdrLen:]
		if string(f[:14]) != string(super[:14]) {
			t.Errorf("segment %d: Ethernet header % x", i, f[:14])
		}
		ip := header.IPv4(f[14:])
		if len(ip) > hdrs+size || !last && len(ip) != hdrs+size {
			t.Errorf("segment %d: %d bytes of IPv4, want %d (at most, the last)", i, len(ip), hdrs+size)
		}
		if !ip.IsValid(len(ip)) || int(ip.TotalLength()) != len(ip) || !ip.IsChecksumValid() || ip.ID() != oip.ID()+uint16(i) {
			t.Fatalf("segment %d: bad IPv4 header % x", i, f[14:34])
		}
		if string(ip[:2]) != string(oip[:2]) || string(ip[6:10]) != string(oip[6:10]) || string(ip[12:ihl]) != string(oip[12:ihl]) {
			t.Errorf("segment %d: IPv4 header % x, want the super-frame's % x but length, ID and checksum", i, ip[:ihl], oip[:ihl])
		}
		seg := ip[ihl:]
		sum := header.PseudoHeaderChecksum(ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress(), uint16(len(seg)))
		if checksum.Checksum(seg, sum) != 0xffff {
			t.Errorf("segment %d: transport checksum does not verify", i)
		}
		ot := super[14+ihl : 14+hdrs]
		if udp {
			u := header.UDP(seg)
			if int(u.Length()) != len(seg) || u.Checksum() == 0 || string(seg[:4]) != string(ot[:4]) {
				t.Errorf("segment %d: UDP length %d of %d bytes, checksum %#x, ports % x", i, u.Length(), len(seg), u.Checksum(), seg[:4])
			}
		} else {
			tcp := header.TCP(seg)
			otcp := header.TCP(ot)
			if tcp.SequenceNumber() != otcp.SequenceNumber()+uint32(len(payload)) {
				t.Errorf("segment %d: seq %d, want %d", i, tcp.SequenceNumber(), otcp.SequenceNumber()+uint32(len(payload)))
			}
			wantFlags := otcp.Flags()
			if !last {
				wantFlags &^= header.TCPFlagPsh | header.TCPFlagFin
			}
			if i > 0 {
				wantFlags &^= header.TCPFlagCwr
			}
			if tcp.Flags() != wantFlags {
				t.Errorf("segment %d: flags %v, want %v", i, tcp.Flags(), wantFlags)
			}
			// Ports, ack, offset, window, urgent pointer, options.
			if string(seg[:4]) != string(ot[:4]) || string(seg[8:13]) != string(ot[8:13]) || string(seg[14:16]) != string(ot[14:16]) || string(seg[18:hdrs-ihl]) != string(ot[18:]) {
				t.Errorf("segment %d: TCP header % x, want % x", i, seg[:hdrs-ihl], ot)
			}
		}
		payload = append(payload, seg[hdrs-ihl:]...)
	}
	if string(payload) != string(opayload) {
		t.Errorf("segments carry %d payload bytes, want the super-frame's %d", len(payload), len(opayload))
	}
}

// TestWriteGSOCutsRefusedKind: a kernel that refuses TCP super-frames
// (EINVAL) gets the first one cut into segments, each written alone, TCP
// GSO turned off for good (refused once); the next TCP super-frame is cut
// without asking again, a plain run is no longer coalesced, and a UDP
// super-frame, another kind, still goes whole. And the other way round.
func TestWriteGSOCutsRefusedKind(t *testing.T) {
	p1, p2 := plainFrame(1, 100), plainFrame(2, 100)
	s1 := tcpSuper(10000, header.TCPFlagAck|header.TCPFlagPsh|header.TCPFlagFin|header.TCPFlagCwr, tsOptions)
	w := &fakeWritev{refuseTCP: true}
	c, _ := newFakeCoalescer(w)
	n, err := c.WriteGSO(atOffset(32, p1, s1, p2), []link.GSO{{}, {Type: link.GSOTCPv4, Size: 1348}, {}}, 32)
	if n != 3 || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want 3, nil", n, err)
	}
	if len(w.sent) != 1+8+1 || w.refused != 1 { // ceil(10000/1348) = 8 segments
		t.Fatalf("%d writes taken, %d refused; want 10, 1", len(w.sent), w.refused)
	}
	for i, p := range map[int][]byte{0: p1, 9: p2} {
		if decodeHeader(w.sent[i]) != (virtioHdr{}) || string(w.sent[i][HdrLen:]) != string(p) {
			t.Errorf("write %d is not the plain frame", i)
		}
	}
	checkCut(t, s1, 1348, w.sent[1:9])
	if _, _, r := c.Coalesced(); r != 1 {
		t.Errorf("refused %d, want 1", r)
	}
	if wh, cut := c.Whole(); wh != 0 || cut != 1 {
		t.Errorf("Whole() = %d, %d; want 0, 1", wh, cut)
	}

	// The next TCP super-frame: cut at once. A UDP one: whole. A run of
	// plain frames: each alone.
	s2 := tcpSuper(3000, header.TCPFlagAck, nil)
	u := partial(superUDPFrame(10500))
	flow := flowOf(3, 1000, nil)
	w.sent = nil
	n, err = c.WriteGSO(atOffset(0, s2, u, flow[0], flow[1], flow[2]), []link.GSO{{Type: link.GSOTCPv4, Size: 1000}, {Type: link.GSOUDPv4, Size: 1000}, {}, {}, {}}, 0)
	if n != 5 || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want 5, nil", n, err)
	}
	if len(w.sent) != 3+1+3 || w.refused != 1 {
		t.Fatalf("%d writes taken, %d refused; want 7, still 1", len(w.sent), w.refused)
	}
	checkCut(t, s2, 1000, w.sent[:3])
	if h := decodeHeader(w.sent[3]); h != superHdr(unix.VIRTIO_NET_HDR_GSO_UDP_L4, 42, 1000, 6) || string(w.sent[3][HdrLen:]) != string(u) {
		t.Errorf("UDP super-frame written with header %+v (%d bytes), want whole", h, len(w.sent[3])-HdrLen)
	}
	for i, f := range flow {
		if m := w.sent[4+i]; decodeHeader(m) != (virtioHdr{}) || string(m[HdrLen:]) != string(f) {
			t.Errorf("plain frame %d not written alone", i)
		}
	}
	if s, f, r := c.Coalesced(); s != 0 || f != 0 || r != 1 {
		t.Errorf("Coalesced() = %d, %d, %d; want 0, 0, 1", s, f, r)
	}
	if wh, cut := c.Whole(); wh != 1 || cut != 2 {
		t.Errorf("Whole() = %d, %d; want 1, 2", wh, cut)
	}

	// A kernel without USO: UDP cut, TCP (and coalescing) still whole.
	w = &fakeWritev{refuseUDP: true}
	c, _ = newFakeCoalescer(w)
	n, err = c.WriteGSO(atOffset(0, u, s2, flow[0], flow[1], flow[2], u), []link.GSO{{Type: link.GSOUDPv4, Size: 1000}, {Type: link.GSOTCPv4, Size: 1000}, {}, {}, {}, {Type: link.GSOUDPv4, Size: 1000}}, 0)
	if n != 6 || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want 6, nil", n, err)
	}
	if len(w.sent) != 11+1+1+11 || w.refused != 1 {
		t.Fatalf("%d writes taken, %d refused; want 24, 1", len(w.sent), w.refused)
	}
	checkCut(t, u, 1000, w.sent[:11])
	if h := decodeHeader(w.sent[11]); h != superHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, 54, 1000, 16) {
		t.Errorf("TCP super-frame written with header %+v, want whole", h)
	}
	if h := decodeHeader(w.sent[12]); h.gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 || len(w.sent[12]) != HdrLen+14+40+3000 {
		t.Errorf("plain run written with header %+v, %d bytes; want coalesced", h, len(w.sent[12]))
	}
	checkCut(t, u, 1000, w.sent[13:])
	if s, f, r := c.Coalesced(); s != 1 || f != 3 || r != 1 {
		t.Errorf("Coalesced() = %d, %d, %d; want 1, 3, 1", s, f, r)
	}
	if wh, cut := c.Whole(); wh != 1 || cut != 2 {
		t.Errorf("Whole() = %d, %d; want 1, 2", wh, cut)
	}
}

// TestWriteGSOEAGAIN: EAGAIN anywhere (the whole write, a segment of a cut,
// the first one, the frame after) waits for the device and goes on where it
// stopped: every segment written once, none lost, nothing else repeated.
func TestWriteGSOEAGAIN(t *testing.T) {
	s := tcpSuper(10000, header.TCPFlagAck|header.TCPFlagPsh, nil) // 7 segments of 1448
	p := plainFrame(1, 100)
	for _, tc := range []struct {
		name      string
		refuseTCP bool
		eagain    []int // calls (from 0) that say EAGAIN
		whole     bool
	}{
		{"whole write", false, []int{0}, true},
		{"the frame after a whole one", false, []int{1, 2}, true},
		{"first segment", true, []int{1}, false},
		{"third segment", true, []int{3}, false},
		{"third segment, twice, and the sixth", true, []int{3, 4, 7}, false},
		{"last segment", true, []int{7}, false},
		{"the frame after the cut", true, []int{8}, false},
	} {
		w := &fakeWritev{refuseTCP: tc.refuseTCP, eagain: map[int]bool{}}
		for _, k := range tc.eagain {
			w.eagain[k] = true
		}
		c, conn := newFakeCoalescer(w)
		n, err := c.WriteGSO(atOffset(0, s, p), []link.GSO{{Type: link.GSOTCPv4, Size: 1448}, {}}, 0)
		if n != 2 || err != nil || conn.waits != len(tc.eagain) {
			t.Errorf("%s: WriteGSO = %d, %v after %d waits; want 2, nil after %d", tc.name, n, err, conn.waits, len(tc.eagain))
			continue
		}
		last := w.sent[len(w.sent)-1]
		if decodeHeader(last) != (virtioHdr{}) || string(last[HdrLen:]) != string(p) {
			t.Errorf("%s: the last write is not the plain frame", tc.name)
		}
		wh, cut := c.Whole()
		if tc.whole {
			if len(w.sent) != 2 || wh != 1 || cut != 0 || string(w.sent[0][HdrLen:]) != string(s) {
				t.Errorf("%s: %d writes, Whole() = %d, %d; want the super-frame whole once, then the frame", tc.name, len(w.sent), wh, cut)
			}
			continue
		}
		if wh != 0 || cut != 1 || w.refused != 1 {
			t.Errorf("%s: Whole() = %d, %d, %d refused; want 0, 1, 1", tc.name, wh, cut, w.refused)
		}
		t.Run(tc.name, func(t *testing.T) { checkCut(t, s, 1448, w.sent[:len(w.sent)-1]) })
	}
}

// TestWriteGSOAbandonedCut: a WriteGSO that ends in the middle of a cut
// (the device never became writable again) leaves nothing behind: the
// next WriteGSO writes its own super-frame, not the rest of the last one,
// which was the caller's buffer and may hold anything now.
func TestWriteGSOAbandonedCut(t *testing.T) {
	s1 := tcpSuper(10000, header.TCPFlagAck, nil)
	s2 := segment{sport: 6000, seq: 90000, flags: header.TCPFlagAck, n: 5000, id: 5}.frame()
	w := &fakeWritev{refuseTCP: true, eagain: map[int]bool{}}
	for k := 3; k < 3+1001; k++ {
		w.eagain[k] = true // the third segment on: never writable
	}
	c, _ := newFakeCoalescer(w)
	b1 := atOffset(0, s1)
	if n, err := c.WriteGSO(b1, []link.GSO{{Type: link.GSOTCPv4, Size: 1448}}, 0); n != 0 || err == nil {
		t.Fatalf("WriteGSO = %d, %v; want 0 and the conn's error", n, err)
	}
	if len(w.sent) != 2 {
		t.Fatalf("%d segments written before the device stuck, want 2", len(w.sent))
	}
	clear(b1[0]) // the caller's buffer, reused
	w.sent, w.eagain = nil, nil
	if n, err := c.WriteGSO(atOffset(0, s2), []link.GSO{{Type: link.GSOTCPv4, Size: 1000}}, 0); n != 1 || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want 1, nil", n, err)
	}
	checkCut(t, s2, 1000, w.sent)
	if wh, cut := c.Whole(); wh != 0 || cut != 2 {
		t.Errorf("Whole() = %d, %d; want 0, 2", wh, cut)
	}
}

// TestWriteGSOAllocs: WriteGSO allocates nothing, whole or cut (after the
// first cut, which allocates the buffer segments are written from), nor
// on a real socket.
func TestWriteGSOAllocs(t *testing.T) {
	flow := flowOf(4, 1000, nil)
	frames := [][]byte{flow[0], flow[1], tcpSuper(30000, header.TCPFlagAck, nil), flow[2], flow[3], partial(superUDPFrame(10000))}
	gsos := []link.GSO{{}, {}, {Type: link.GSOTCPv4, Size: 1448}, {}, {}, {Type: link.GSOUDPv4, Size: 1200}}
	bufs := atOffset(64, frames...)
	for _, refuse := range []bool{false, true} {
		w := &fakeWritev{refuseTCP: refuse, refuseUDP: refuse, discard: true}
		c, _ := newFakeCoalescer(w)
		allocs := testing.AllocsPerRun(50, func() {
			if n, err := c.WriteGSO(bufs, gsos, 64); n != len(bufs) || err != nil {
				t.Fatalf("WriteGSO = %d, %v", n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("refused %v: WriteGSO allocates %.1f times, want 0", refuse, allocs)
		}
	}
	conn, peer := seqpacketPair(t)
	c := NewCoalescer(conn, fdio.StopAtReject)
	drain := make([]byte, HdrLen+link.MaxLarge)
	allocs := testing.AllocsPerRun(50, func() {
		if n, err := c.WriteGSO(bufs, gsos, 64); n != len(bufs) || err != nil {
			t.Fatalf("WriteGSO = %d, %v", n, err)
		}
		for {
			if _, err := unix.Read(peer, drain); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("socket: WriteGSO allocates %.1f times, want 0", allocs)
	}
}
