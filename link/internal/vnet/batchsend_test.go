package vnet

import (
	"errors"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// mmsgPair is a non-blocking AF_UNIX SOCK_SEQPACKET pair (each writev or
// sendmmsg message one record, as a packet socket sends one frame): a
// RawConn of the writer's end and the reader's fd. The RawConn runs a
// write again at once when it asks to wait (a scripted EAGAIN would leave
// the edge-triggered netpoller waiting for ever), at most 100 times.
func mmsgPair(t *testing.T) (syscall.RawConn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fdConn(fds[0]), fds[1]
}

type fdConn int

func (c fdConn) Control(f func(fd uintptr)) error { f(uintptr(c)); return nil }
func (c fdConn) Read(func(fd uintptr) bool) error { return errors.New("fdConn: no reads") }
func (c fdConn) Write(f func(fd uintptr) bool) error {
	for range 100 {
		if f(uintptr(c)) {
			return nil
		}
	}
	return errors.New("fdConn: not writable")
}

// records reads every record queued on fd.
func records(t *testing.T, fd int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 1<<17)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EAGAIN {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(buf[:n]))
	}
}

// scriptedSend is a BatchSendFunc that sends with sendmmsg(2), but takes at
// most take[call] messages on call (if given; -1: EAGAIN, nothing sent),
// and refuses a frame of rejectLen bytes with EMSGSIZE as a packet socket
// refuses one longer than the MTU (as the first message; else the call
// ends in front of it); with einvalOnce its first call fails with EINVAL.
type scriptedSend struct {
	take       []int
	rejectLen  int
	einvalOnce bool  // the first call fails with EINVAL, sending nothing
	calls      []int // messages asked for, per call
}

func (s *scriptedSend) send(fd uintptr, msgs []unix.Mmsghdr) (int, syscall.Errno) {
	call := len(s.calls)
	s.calls = append(s.calls, len(msgs))
	if s.einvalOnce && call == 0 {
		return 0, unix.EINVAL
	}
	if call < len(s.take) {
		if s.take[call] < 0 {
			return 0, unix.EAGAIN
		}
		msgs = msgs[:min(len(msgs), s.take[call])]
	}
	for i := range msgs {
		if iov := unsafe.Slice(msgs[i].Hdr.Iov, 2); int(iov[1].Len) == s.rejectLen {
			if i == 0 {
				return 0, unix.EMSGSIZE
			}
			msgs = msgs[:i]
			break
		}
	}
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// plainRecords is frames each behind a plain virtio header.
func plainRecords(frames ...[]byte) [][]byte {
	var out [][]byte
	for _, f := range frames {
		out = append(out, append(make([]byte, HdrLen), f...))
	}
	return out
}

// TestBatchCoalescerOrder: WriteGSO of 3 lone frames, a run of 4
// segments of one flow, a lone frame, a super-frame and 2 lone frames
// sends the first 3 with one sendmmsg, the run coalesced (writev), the
// lone frame between the run and the super-frame with a writev of its own
// (a batch of one), the super-frame whole, the last 2 with one sendmmsg:
// the records in that order, byte for byte.
func TestBatchCoalescerOrder(t *testing.T) {
	conn, peer := mmsgPair(t)
	s := &scriptedSend{}
	c := NewBatchCoalescer(conn, fdio.SkipRejected, 64, s.send)
	m := make([][]byte, 6)
	for i := range m {
		m[i] = markerFrame(byte(10*i), 60+i)
	}
	run := flowOf(4, 1000, nil)
	super := superFrame(10*1000, header.TCPFlagAck)
	bufs := slices.Concat(m[:3], run, [][]byte{m[3], super}, m[4:])
	gso := make([]link.GSO, len(bufs))
	gso[8] = link.GSO{Type: link.GSOTCPv4, Size: 1000}
	if n, err := c.WriteGSO(bufs, gso, 0); n != len(bufs) || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want %d, nil", n, err, len(bufs))
	}
	if !slices.Equal(s.calls, []int{3, 2}) {
		t.Errorf("sendmmsg calls of %v messages, want [3 2]", s.calls)
	}
	hdr, merged := superFrameOf(&Coalescer{}, run)
	sc := &Coalescer{}
	sc.superHeader(super, gso[8])
	superHdr := sc.vhdr
	want := slices.Concat(plainRecords(m[:3]...), [][]byte{append(hdr, merged...)}, plainRecords(m[3]),
		[][]byte{append(superHdr[:], super...)}, plainRecords(m[4:]...))
	got := records(t, peer)
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Errorf("record %d: %d bytes % x..., want %d bytes % x...", i, len(got[i]), got[i][:min(24, len(got[i]))], len(want[i]), want[i][:24])
		}
	}
	if sf, frames, _ := c.Coalesced(); sf != 1 || frames != 4 {
		t.Errorf("Coalesced = %d super-frames of %d frames, want 1 of 4", sf, frames)
	}
}

// TestBatchCoalescerResumes: a sendmmsg that takes part of the batch, and
// one that says EAGAIN, leave Write to go on with the next frame: 10 lone
// frames arrive once each, in order, after calls of 10, 7 (EAGAIN) and 7
// messages.
func TestBatchCoalescerResumes(t *testing.T) {
	conn, peer := mmsgPair(t)
	s := &scriptedSend{take: []int{3, -1}}
	c := NewBatchCoalescer(conn, fdio.SkipRejected, 64, s.send)
	var bufs [][]byte
	for i := range 10 {
		bufs = append(bufs, markerFrame(byte(i), 60+i))
	}
	if n, err := c.Write(bufs, 0); n != 10 || err != nil {
		t.Fatalf("Write = %d, %v; want 10, nil", n, err)
	}
	if !slices.Equal(s.calls, []int{10, 7, 7}) {
		t.Errorf("sendmmsg calls of %v messages, want [10 7 7]", s.calls)
	}
	if got := records(t, peer); !slices.EqualFunc(got, plainRecords(bufs...), func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("the peer got %d records, not the 10 frames in order", len(got))
	}
}

// TestBatchCoalescerRejected: a frame the kernel rejects (EMSGSIZE) in a
// batch of 10 ends the call in front of it and fails the next alone: with
// SkipRejected the 9 others arrive, in order, and Write returns 9 and the
// error (calls of 10, 6 and 5 messages); with StopAtReject the 4 in front
// arrive and Write returns 4 and the error.
func TestBatchCoalescerRejected(t *testing.T) {
	for _, tc := range []struct {
		onReject fdio.OnReject
		sent     int
		calls    []int
	}{{fdio.SkipRejected, 9, []int{10, 6, 5}}, {fdio.StopAtReject, 4, []int{10, 6}}} {
		conn, peer := mmsgPair(t)
		s := &scriptedSend{rejectLen: 999}
		c := NewBatchCoalescer(conn, tc.onReject, 64, s.send)
		var bufs [][]byte
		for i := range 10 {
			bufs = append(bufs, markerFrame(byte(i), 60+i))
		}
		bufs[4] = markerFrame(4, 999)
		n, err := c.Write(bufs, 0)
		if n != tc.sent || !errors.Is(err, unix.EMSGSIZE) {
			t.Errorf("%v: Write = %d, %v; want %d, EMSGSIZE", tc.onReject, n, err, tc.sent)
		}
		if !slices.Equal(s.calls, tc.calls) {
			t.Errorf("%v: sendmmsg calls of %v messages, want %v", tc.onReject, s.calls, tc.calls)
		}
		want := plainRecords(slices.Delete(slices.Clone(bufs), 4, 5)...)[:tc.sent]
		if got := records(t, peer); !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
			t.Errorf("%v: the peer got %d records, want the %d frames but the rejected one, in order", tc.onReject, len(got), len(want))
		}
	}
}

// TestBatchCoalescerStoredEINVAL: on a packet socket a send can fail with
// EINVAL that recvmmsg left in the socket (see retryEINVAL); the batch
// Coalescer sends again once, so that one such error neither turns
// coalescing or whole super-frames off nor skips a frame. The first
// writev (a coalesced run) and the first sendmmsg each fail once with
// EINVAL: the run still goes coalesced, the super-frame whole, the lone
// frames all, in order, and nothing is refused or failed.
func TestBatchCoalescerStoredEINVAL(t *testing.T) {
	conn, peer := mmsgPair(t)
	s := &scriptedSend{einvalOnce: true}
	c := NewBatchCoalescer(conn, fdio.SkipRejected, 64, s.send)
	writevs := 0
	c.writev = func(fd uintptr, iov []unix.Iovec) syscall.Errno {
		if writevs++; writevs == 1 {
			return unix.EINVAL
		}
		_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		return errno
	}
	run := flowOf(4, 1000, nil)
	super := superFrame(10*1000, header.TCPFlagAck)
	m := [][]byte{markerFrame(1, 60), markerFrame(2, 61)}
	bufs := slices.Concat(run, [][]byte{super}, m)
	gso := make([]link.GSO, len(bufs))
	gso[4] = link.GSO{Type: link.GSOTCPv4, Size: 1000}
	if n, err := c.WriteGSO(bufs, gso, 0); n != len(bufs) || err != nil {
		t.Fatalf("WriteGSO = %d, %v; want %d, nil", n, err, len(bufs))
	}
	if sf, frames, refused := c.Coalesced(); sf != 1 || frames != 4 || refused != 0 {
		t.Errorf("Coalesced = %d, %d, %d refused; want 1 super-frame of 4, none refused", sf, frames, refused)
	}
	if whole, cut := c.Whole(); whole != 1 || cut != 0 {
		t.Errorf("Whole = %d, %d cut; want 1 whole", whole, cut)
	}
	if writevs != 3 || !slices.Equal(s.calls, []int{2, 2}) {
		t.Errorf("%d writevs, sendmmsg calls of %v; want 3 (the run twice, the super-frame) and [2 2]", writevs, s.calls)
	}
	if got := records(t, peer); len(got) != 4 || string(got[2][HdrLen:]) != string(m[0]) || string(got[3][HdrLen:]) != string(m[1]) {
		t.Errorf("the peer got %d records, want the run, the super-frame and the 2 frames", len(got))
	}
}
