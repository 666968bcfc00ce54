package fdio

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PollConn is a syscall.RawConn of a non-blocking descriptor that is not
// registered with the Go netpoller: a Read or Write whose callback finds
// nothing to do waits in ppoll(2) on the descriptor (and on Close's
// eventfd), blocking its OS thread, instead of parking its goroutine.
//
// Why: the netpoller registers every descriptor with its epoll instance for
// reads and writes, edge-triggered, for the descriptor's whole life. The
// kernel then runs epoll's callback, and often wakes the thread that waits
// in epoll_wait, for every frame queued to the descriptor and every sent
// frame it frees — also while the reader is busy and would find the frame
// without being told. A descriptor under ppoll has a waiter only while a
// Read or Write waits; a busy reader costs its sender nothing. The price
// is an OS thread per waiting Read (one per pod port and underlay socket).
type PollConn struct {
	fd   int
	wake int // an eventfd, readable from Close on

	// ops is held shared by every Read, Write and Control for its whole
	// length, and exclusively by Close while it closes fd: fd's number is
	// never reused under a running callback.
	ops    sync.RWMutex
	closed atomic.Bool
}

var _ syscall.RawConn = (*PollConn)(nil)

// NewPollConn returns a PollConn that owns fd, which must be non-blocking.
func NewPollConn(fd int) (*PollConn, error) {
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return &PollConn{fd: fd, wake: wake}, nil
}

// Control calls f with the descriptor. It returns os.ErrClosed after Close.
func (c *PollConn) Control(f func(fd uintptr)) error {
	c.ops.RLock()
	defer c.ops.RUnlock()
	if c.closed.Load() {
		return os.ErrClosed
	}
	f(uintptr(c.fd))
	return nil
}

// Read calls f until it returns true, waiting for the descriptor to be
// readable between calls. It returns os.ErrClosed once Close began, and
// an error if the descriptor reports an error or hang-up that f does not
// take (f returns false again right after it).
func (c *PollConn) Read(f func(fd uintptr) (done bool)) error {
	return c.wait(f, unix.POLLIN)
}

// Write is Read for writability.
func (c *PollConn) Write(f func(fd uintptr) (done bool)) error {
	return c.wait(f, unix.POLLOUT)
}

func (c *PollConn) wait(f func(fd uintptr) bool, events int16) error {
	c.ops.RLock()
	defer c.ops.RUnlock()
	for {
		if c.closed.Load() {
			return os.ErrClosed
		}
		if f(uintptr(c.fd)) {
			return nil
		}
		fds := [2]unix.PollFd{{Fd: int32(c.fd), Events: events}, {Fd: int32(c.wake), Events: unix.POLLIN}}
		// ppoll with no timeout and no signal mask: the raw call keeps
		// fds on the stack (unix.Poll's slice would escape).
		_, _, errno := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 2, 0, 0, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno != 0:
			return os.NewSyscallError("ppoll", errno)
		case fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && fds[0].Revents&events == 0:
			// f gets one more call to see the error itself.
			if c.closed.Load() {
				return os.ErrClosed
			}
			if f(uintptr(c.fd)) {
				return nil
			}
			return os.NewSyscallError("ppoll", unix.EIO)
		}
	}
}

// Close wakes every waiting Read and Write (they return os.ErrClosed),
// waits for every running callback to return, and closes the descriptor.
// A second Close returns os.ErrClosed.
func (c *PollConn) Close() error {
	if c.closed.Swap(true) {
		return os.ErrClosed
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(c.wake, one[:]); err != nil {
		return os.NewSyscallError("write eventfd", err)
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	err := unix.Close(c.fd)
	unix.Close(c.wake)
	if err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
