package vnet

import (
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
)

// batchEntry is a frame in a batchQueue: what the kernel writes for it
// (virtio header and frame) and its metadata, or an errno.
type batchEntry struct {
	raw   []byte
	meta  link.RxMeta
	errno syscall.Errno
}

// batchQueue is a BatchRecvFunc over a queue of frames, as recvmmsg(2) on
// a packet socket: each frame is scattered over its message's iovecs in
// order and the message's Len set to the bytes written (a frame longer
// than the iovecs is cut short, as the kernel truncates it). An errno
// fails the call if it comes first (its frame consumed), else ends the
// call before it and fails the next, as the kernel's sk_err.
type batchQueue struct {
	q     []batchEntry
	calls int
}

func (s *batchQueue) recv(_ uintptr, msgs []unix.Mmsghdr, meta []link.RxMeta) (int, syscall.Errno) {
	s.calls++
	n := 0
	for n < len(msgs) && len(s.q) > 0 {
		e := s.q[0]
		if e.errno != 0 {
			if n == 0 {
				s.q = s.q[1:]
				return 0, e.errno
			}
			break
		}
		s.q = s.q[1:]
		raw, k := e.raw, 0
		for _, iov := range unsafe.Slice(msgs[n].Hdr.Iov, msgs[n].Hdr.Iovlen) {
			c := copy(unsafe.Slice(iov.Base, iov.Len), raw)
			raw, k = raw[c:], k+c
		}
		msgs[n].Len = uint32(k)
		meta[n] = e.meta
		n++
	}
	if n == 0 {
		return 0, unix.EAGAIN
	}
	return n, 0
}

func plainEntry(f []byte, meta link.RxMeta) batchEntry {
	return batchEntry{raw: append(vnetHeader(0, 0, 0), f...), meta: meta}
}

// superEntry is f behind a GSO_TCPV4 header with segments of gsoSize.
func superEntry(f []byte, gsoSize uint16) batchEntry {
	return batchEntry{raw: append(gsoHdr(unix.VIRTIO_NET_HDR_GSO_TCPV4, gsoSize, 14+20, 16), f...)}
}

// markerFrame is a frame of n bytes (at least 14) of an experimental
// EtherType, its bytes seeded by seed.
func markerFrame(seed byte, n int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i)
	}
	f[12], f[13] = 0x88, 0xb5
	return f
}

// TestBatchReaderDropInsideBatch: in one batch of five messages, one
// shorter than a virtio header and one super-frame that is not IPv4 are
// dropped and counted, and the plain frames behind them (spilled, then
// copied into the buffers the dropped ones left) come out of the same Read,
// in order, byte for byte, with their own metadata; the headroom untouched.
func TestBatchReaderDropInsideBatch(t *testing.T) {
	a, b, c := markerFrame(1, 60), markerFrame(2, 1514), markerFrame(3, 100)
	notIPv4 := superFrame(5000, header.TCPFlagAck)
	notIPv4[12] = 0x86 // EtherType 0x86.. (not IPv4)
	s := &batchQueue{q: []batchEntry{
		plainEntry(a, link.RxVLAN),
		{raw: make([]byte, 4)},
		plainEntry(b, 0),
		superEntry(notIPv4, 1000),
		plainEntry(c, link.RxVLAN),
	}}
	r := NewBatchReader(&fakeConn{}, 1500, 64, s.recv)
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2+1514)
		bufs[i][0], bufs[i][1] = 0xee, 0xee
	}
	sizes, meta := make([]int, 8), make([]link.RxMeta, 8)
	n, err := r.ReadMeta(bufs, sizes, meta, 2)
	if n != 3 || err != nil {
		t.Fatalf("ReadMeta = %d, %v; want 3, nil", n, err)
	}
	for i, want := range [][]byte{a, b, c} {
		if got := bufs[i][2 : 2+sizes[i]]; string(got) != string(want) {
			t.Errorf("frame %d: %d bytes, want %d bytes % x...", i, len(got), len(want), want[:16])
		}
		if bufs[i][0] != 0xee || bufs[i][1] != 0xee {
			t.Errorf("frame %d: the headroom was written", i)
		}
	}
	if meta[0] != link.RxVLAN || meta[1] != 0 || meta[2] != link.RxVLAN {
		t.Errorf("meta %v, want [vlan 0 vlan]", meta[:3])
	}
	if st := r.Stats(); st != (link.OffloadStats{Dropped: 2}) || s.calls != 1 {
		t.Errorf("stats %+v after %d receive calls, want Dropped 2 after 1", st, s.calls)
	}
}

// TestBatchReaderRefusedFrames: frames the kernel refuses to describe
// (EINVAL), however many in a row, are dropped and counted and never make
// Read fail (see TestReaderRefusedFramesAreNotAnError): a frame, then
// refused ones, then a frame; the first Read returns the first frame (its
// call stops at the refusal), the second the other.
func TestBatchReaderRefusedFrames(t *testing.T) {
	one, two := markerFrame(1, 60), markerFrame(2, 61)
	for _, refuse := range []int{1, 63, 64, 200} {
		s := &batchQueue{q: []batchEntry{plainEntry(one, 0)}}
		for range refuse {
			s.q = append(s.q, batchEntry{errno: unix.EINVAL})
		}
		s.q = append(s.q, plainEntry(two, 0))
		r := NewBatchReader(&fakeConn{}, 1500, 64, s.recv)
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		for i, want := range [][]byte{one, two} {
			n, err := r.Read(bufs, sizes, 0)
			if n != 1 || err != nil || string(bufs[0][:sizes[0]]) != string(want) {
				t.Errorf("%d refused: Read %d = %d, %v (%d bytes); want frame %d, nil", refuse, i, n, err, sizes[0], i)
			}
		}
		if st := r.Stats(); st != (link.OffloadStats{Dropped: uint64(refuse)}) {
			t.Errorf("%d refused: stats %+v, want Dropped %d", refuse, st, refuse)
		}
	}
}

// TestBatchReaderPendingSuperFrames: three super-frames of 10 segments and
// a plain frame arrive in one batch. ReadGSO with headroom 0 hands out the
// first whole; the second, spilled at headroom 0, is handed out whole by a
// ReadGSO with headroom 64, at SuperFrame()[64:]; ReadMeta cuts the third
// into its 10 segments and hands out the plain frame behind them. One
// receive call; the frames byte for byte, the segments' payloads the
// super-frame's.
func TestBatchReaderPendingSuperFrames(t *testing.T) {
	var supers [3][]byte
	for i := range supers {
		supers[i] = partial(superFrame(10*1000, header.TCPFlagAck)) // as a kernel's TSO leaves it
		supers[i][0] = byte(i)                                      // tell them apart
	}
	p := markerFrame(9, 200)
	s := &batchQueue{q: []batchEntry{superEntry(supers[0], 1000), superEntry(supers[1], 1000), superEntry(supers[2], 1000), plainEntry(p, link.RxVLAN)}}
	r := NewBatchReader(&fakeConn{}, 1500, 64, s.recv)
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, 64+1514)
	}
	sizes, meta, gso := make([]int, 16), make([]link.RxMeta, 16), make([]link.GSO, 16)
	for i, offset := range []int{0, 64} {
		n, err := r.ReadGSO(bufs, sizes, meta, gso, offset)
		if n != 1 || err != nil || gso[0] != (link.GSO{Type: link.GSOTCPv4, Size: 1000}) {
			t.Fatalf("ReadGSO %d = %d, %v, gso %+v; want the super-frame whole", i, n, err, gso[0])
		}
		if got := r.SuperFrame()[offset : offset+sizes[0]]; string(got) != string(supers[i]) {
			t.Errorf("super-frame %d at offset %d: %d bytes % x..., want %d bytes % x...", i, offset, len(got), got[:16], len(supers[i]), supers[i][:16])
		}
	}
	n, err := r.ReadMeta(bufs, sizes, meta, 2)
	if n != 11 || err != nil {
		t.Fatalf("ReadMeta = %d, %v; want 10 segments and the plain frame", n, err)
	}
	var payload []byte
	for i := range 10 {
		seg := bufs[i][2 : 2+sizes[i]]
		if string(seg[:14]) != string(supers[2][:14]) || len(seg) != 14+40+1000 || meta[i] != 0 {
			t.Errorf("segment %d: %d bytes, Ethernet header % x, meta %v", i, len(seg), seg[:14], meta[i])
		}
		payload = append(payload, seg[54:]...)
	}
	if string(payload) != string(supers[2][54:]) {
		t.Errorf("the segments' payload is not the third super-frame's")
	}
	if got := bufs[10][2 : 2+sizes[10]]; string(got) != string(p) || meta[10] != link.RxVLAN {
		t.Errorf("plain frame: %d bytes, meta %v; want %d bytes, vlan", len(got), meta[10], len(p))
	}
	if st := r.Stats(); st != (link.OffloadStats{ReadWhole: 2, SuperFrames: 1, Segments: 10, Checksums: 10}) || s.calls != 1 {
		t.Errorf("stats %+v after %d receive calls; want 2 whole, 1 cut into 10, after 1 call", st, s.calls)
	}
}

// TestBatchReaderNoAllocs: a batch of plain frames around a super-frame,
// read with ReadGSO (the frames behind it pending for the next call) and
// with Read (cut), allocates nothing.
func TestBatchReaderNoAllocs(t *testing.T) {
	super := superFrame(10*1000, header.TCPFlagAck)
	entries := []batchEntry{plainEntry(markerFrame(1, 60), 0), plainEntry(markerFrame(2, 60), link.RxVLAN), superEntry(super, 1000),
		plainEntry(markerFrame(3, 60), 0), plainEntry(markerFrame(4, 1514), link.RxVLAN)}
	s := &batchQueue{}
	r := NewBatchReader(&fakeConn{}, 1500, 64, s.recv)
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes, meta, gso := make([]int, 32), make([]link.RxMeta, 32), make([]link.GSO, 32)
	for _, tc := range []struct {
		name string
		gso  []link.GSO
		want int
	}{{"ReadGSO", gso, 5}, {"Read", nil, 14}} {
		got := 0
		round := func() {
			s.q = entries
			for n := 0; n < tc.want; {
				k, err := r.ReadGSO(bufs, sizes, meta, tc.gso, 0)
				if err != nil {
					t.Fatal(err)
				}
				n += k
				got += k
			}
		}
		if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
			t.Errorf("%s: %v allocations per batch, want 0", tc.name, allocs)
		}
		if got != 101*tc.want {
			t.Errorf("%s: %d frames in 101 rounds, want %d", tc.name, got, 101*tc.want)
		}
	}
}
