package vnet

import (
	"errors"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// fakeConn is a syscall.RawConn whose Read and Write run f as the
// netpoller would: again while it asks to wait, up to a limit (then it
// reports an error rather than hang the test).
type fakeConn struct{ waits int }

func (c *fakeConn) Control(func(fd uintptr)) error { return nil }
func (c *fakeConn) Write(f func(fd uintptr) bool) error {
	for range 1000 {
		if f(0) {
			return nil
		}
		c.waits++
	}
	return errors.New("fakeConn: never writable")
}
func (c *fakeConn) Read(f func(fd uintptr) bool) error {
	for range 1000 {
		if f(0) {
			return nil
		}
		c.waits++
	}
	return errors.New("fakeConn: nothing to read")
}

var _ syscall.RawConn = (*fakeConn)(nil)

// scriptedRecv is a RecvFunc that fails with EINVAL refuse times (the
// kernel took a frame off the queue that it could not describe in a virtio
// header), then receives frame once behind a plain header, then says EAGAIN.
type scriptedRecv struct {
	refuse int
	frame  []byte
	calls  int
}

func (s *scriptedRecv) recv(_ uintptr, iov []unix.Iovec) (int, link.RxMeta, syscall.Errno) {
	s.calls++
	switch {
	case s.refuse > 0:
		s.refuse--
		return 0, 0, unix.EINVAL
	case s.frame != nil:
		clear(unsafe.Slice(iov[0].Base, iov[0].Len))
		n := copy(unsafe.Slice(iov[1].Base, iov[1].Len), s.frame)
		s.frame = nil
		return HdrLen + n, 0, 0
	}
	return 0, 0, unix.EAGAIN
}

// TestReaderRefusedFramesAreNotAnError: frames the kernel refuses to
// describe (EINVAL, each one consumed) are dropped and counted, however
// many arrive in a row, and never make Read fail: a Read error stops the
// router's tunnel worker for good, so a host on the underlay that sends a
// batch of such frames (a GSO type virtio has no name for: SCTP, or UDP
// on kernels before 6.2) must not be able to cause one. 64 and 200 refused
// frames in front of a good one: Read returns the good frame, nil, and
// Dropped counts every refused frame.
func TestReaderRefusedFramesAreNotAnError(t *testing.T) {
	good := superFrame(100, 0x10)
	for _, refuse := range []int{1, 63, 64, 200} {
		s := &scriptedRecv{refuse: refuse, frame: good}
		r := NewReader(&fakeConn{}, 1500, s.recv)
		bufs := make([][]byte, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		sizes := make([]int, len(bufs))
		n, err := r.Read(bufs, sizes, 0)
		if err != nil || n != 1 || sizes[0] != len(good) {
			t.Errorf("%d refused frames, then a good one: Read = %d, %v (size %d); want 1, nil (size %d)", refuse, n, err, sizes[0], len(good))
		}
		if st := r.Stats(); st != (link.OffloadStats{Dropped: uint64(refuse)}) {
			t.Errorf("%d refused frames: stats %+v, want Dropped %d", refuse, st, refuse)
		}
	}
}

// TestReaderEmptyBatch: a Read of no buffers returns at once, 0 and nil.
func TestReaderEmptyBatch(t *testing.T) {
	s := &scriptedRecv{refuse: 100}
	r := NewReader(&fakeConn{}, 1500, s.recv)
	if n, err := r.Read(nil, nil, 0); n != 0 || err != nil || s.calls != 0 {
		t.Errorf("Read(nil) = %d, %v after %d receives; want 0, nil after none", n, err, s.calls)
	}
}
