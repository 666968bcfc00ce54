package fdio

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// OneShotConn is a syscall.RawConn of a non-blocking descriptor that is
// registered with the Go netpoller only through an epoll instance of its
// own per direction, in which the descriptor's registration is one-shot
// (EPOLLONESHOT) and armed only while a Read or Write waits. A frame queued
// to the descriptor, or a sent frame it frees, while nobody waits finds the
// registration disarmed and wakes nothing; a waiting Read parks its
// goroutine in the netpoller (no OS thread, no P held), woken by the one
// event its arming let through.
//
// A callback must return false only after its system call reported EAGAIN
// (the registration is level-triggered once armed: anything else is a busy
// loop), and must not call Close, Control, Read or Write of the same conn
// (a deadlock). Each wait costs two system calls more than the netpoller's
// (epoll_ctl to arm, epoll_wait to take the event).
type OneShotConn struct {
	fd     int
	rd, wr oneShotWaiter

	// ops is held shared by every Read, Write and Control for its whole
	// length, and exclusively by Close while it closes the descriptors:
	// no number is reused under a running callback or epoll_ctl.
	ops    sync.RWMutex
	closed atomic.Bool
}

// oneShotWaiter is one direction's epoll instance. Its mutex serialises
// the waits in that direction (the events array and the arming are
// shared); callbacks run outside it.
type oneShotWaiter struct {
	mu    sync.Mutex
	ep    int
	file  *os.File // ep, in the netpoller
	conn  syscall.RawConn
	arm   unix.EpollEvent
	ev    [1]unix.EpollEvent
	got   int
	drain func(uintptr) bool
}

var _ syscall.RawConn = (*OneShotConn)(nil)

// ErrHangUp is what a Read or Write returns when the descriptor reported an
// error or hang-up (EPOLLERR, EPOLLHUP) without the readiness waited for,
// and the callback, called once more, did not end the wait: the error is
// the descriptor's, for the callback's system call to report.
var ErrHangUp = errors.New("fdio: the descriptor reported an error or hang-up that the call did not return")

// NewOneShotConn returns a OneShotConn that owns fd, which must be
// non-blocking.
func NewOneShotConn(fd int) (*OneShotConn, error) {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		return nil, errors.New("fdio: NewOneShotConn of a blocking descriptor")
	}
	c := &OneShotConn{fd: fd}
	if err := c.rd.init(fd, unix.EPOLLIN); err != nil {
		return nil, err
	}
	if err := c.wr.init(fd, unix.EPOLLOUT); err != nil {
		c.rd.file.Close()
		return nil, err
	}
	return c, nil
}

func (w *oneShotWaiter) init(fd int, events uint32) error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	// Registered disarmed: no events but the one-shot flag.
	off := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &off); err != nil {
		unix.Close(ep)
		return os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return os.NewSyscallError("fcntl", err)
	}
	w.ep = ep
	w.arm = unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(fd)}
	w.file = os.NewFile(uintptr(ep), "epoll")
	if w.conn, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		return err
	}
	w.drain = func(ep uintptr) bool {
		n, err := unix.EpollWait(int(ep), w.ev[:], 0)
		if err == unix.EINTR {
			return false
		}
		w.got = n
		return n > 0 || err != nil
	}
	return nil
}

// Control calls f with the descriptor. It returns os.ErrClosed after Close.
func (c *OneShotConn) Control(f func(fd uintptr)) error {
	c.ops.RLock()
	defer c.ops.RUnlock()
	if c.closed.Load() {
		return os.ErrClosed
	}
	f(uintptr(c.fd))
	return nil
}

// Read calls f until it returns true, waiting for the descriptor to be
// readable between calls.
func (c *OneShotConn) Read(f func(fd uintptr) (done bool)) error {
	return c.wait(f, &c.rd, unix.EPOLLIN)
}

// Write is Read for writability.
func (c *OneShotConn) Write(f func(fd uintptr) (done bool)) error {
	return c.wait(f, &c.wr, unix.EPOLLOUT)
}

func (c *OneShotConn) wait(f func(fd uintptr) bool, w *oneShotWaiter, events uint32) error {
	c.ops.RLock()
	defer c.ops.RUnlock()
	if c.closed.Load() {
		return os.ErrClosed
	}
	if f(uintptr(c.fd)) {
		return nil
	}
	for {
		hangUp, err := w.wait(c.fd, events)
		if c.closed.Load() {
			return os.ErrClosed
		}
		if err != nil {
			return err
		}
		if f(uintptr(c.fd)) {
			return nil
		}
		if hangUp {
			return ErrHangUp
		}
	}
}

// wait arms the registration and parks until its event arrives.
func (w *oneShotWaiter) wait(fd int, events uint32) (hangUp bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := unix.EpollCtl(w.ep, unix.EPOLL_CTL_MOD, fd, &w.arm); err != nil {
		return false, os.NewSyscallError("epoll_ctl", err)
	}
	if err := w.conn.Read(w.drain); err != nil {
		return false, err
	}
	if w.got == 0 {
		return false, nil
	}
	got := w.ev[0].Events
	return got&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && got&events == 0, nil
}

// Close wakes every waiting Read and Write (they return os.ErrClosed),
// waits for every running callback to return, and closes the descriptor.
// A second Close returns os.ErrClosed.
func (c *OneShotConn) Close() error {
	if c.closed.Swap(true) {
		return os.ErrClosed
	}
	// A deadline in the past wakes the parked waits without closing the
	// epoll instances, whose numbers must outlive every epoll_ctl.
	past := time.Unix(1, 0)
	c.rd.file.SetReadDeadline(past)
	c.wr.file.SetReadDeadline(past)
	c.ops.Lock()
	defer c.ops.Unlock()
	c.rd.file.Close()
	c.wr.file.Close()
	if err := unix.Close(c.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
