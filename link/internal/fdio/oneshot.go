package fdio

import (
	"errors"
	"fmt"
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
// event its arming let through, which disarms the registration again.
// Each direction's instance is made by its first wait: a descriptor that
// never waits to write (a TAP: tun writes do not report EAGAIN) costs one
// descriptor more, not two.
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

// oneShotWaiter is one direction. Its mutex serialises the waits in that
// direction (the instance's arming and events are shared); callbacks run
// outside it.
type oneShotWaiter struct {
	mu     sync.Mutex
	events uint32 // EPOLLIN or EPOLLOUT
	inst   atomic.Pointer[epollInstance]
}

// epollInstance is an epoll instance with one one-shot registration, in the
// netpoller.
type epollInstance struct {
	file  *os.File // the instance, in the netpoller
	conn  syscall.RawConn
	ep    int
	arm   unix.EpollEvent
	ev    [1]unix.EpollEvent
	err   error // drain's
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
	c.rd.events, c.wr.events = unix.EPOLLIN, unix.EPOLLOUT
	return c, nil
}

// newEpollInstance makes an instance with fd registered in it, armed for
// events.
func newEpollInstance(fd int, events uint32) (*epollInstance, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	in := &epollInstance{ep: ep, arm: unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(fd)}}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &in.arm); err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("fcntl", err)
	}
	in.file = os.NewFile(uintptr(ep), "epoll")
	// os.NewFile leaves a descriptor the netpoller refused (ENOSPC past
	// fs.epoll.max_user_watches) outside it, where waits fail and Close's
	// deadline would not wake them; only a pollable file takes a deadline.
	if err := in.file.SetReadDeadline(time.Time{}); err != nil {
		in.file.Close()
		return nil, fmt.Errorf("fdio: epoll instance not in the netpoller: %w", err)
	}
	if in.conn, err = in.file.SyscallConn(); err != nil {
		in.file.Close()
		return nil, err
	}
	in.drain = func(ep uintptr) bool {
		for {
			n, err := unix.EpollWait(int(ep), in.ev[:], 0)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				in.err = os.NewSyscallError("epoll_wait", err)
				return true
			}
			return n > 0
		}
	}
	return in, nil
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
	return c.wait(f, &c.rd)
}

// Write is Read for writability.
func (c *OneShotConn) Write(f func(fd uintptr) (done bool)) error {
	return c.wait(f, &c.wr)
}

func (c *OneShotConn) wait(f func(fd uintptr) bool, w *oneShotWaiter) error {
	c.ops.RLock()
	defer c.ops.RUnlock()
	if c.closed.Load() {
		return os.ErrClosed
	}
	if f(uintptr(c.fd)) {
		return nil
	}
	for {
		hangUp, err := c.park(w)
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

// park arms w's registration (making w's instance, armed, at its first
// wait) and parks until its event arrives or Close.
func (c *OneShotConn) park(w *oneShotWaiter) (hangUp bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	in := w.inst.Load()
	if in == nil {
		if in, err = newEpollInstance(c.fd, w.events); err != nil {
			return false, err
		}
		w.inst.Store(in)
		// Close stores closed before it loads inst, and this stored inst
		// before it loads closed: either Close sets in's deadline, or this
		// sees closed and does not park.
		if c.closed.Load() {
			return false, os.ErrClosed
		}
	} else if err := unix.EpollCtl(in.ep, unix.EPOLL_CTL_MOD, c.fd, &in.arm); err != nil {
		return false, os.NewSyscallError("epoll_ctl", err)
	}
	if err := in.conn.Read(in.drain); err != nil {
		return false, err
	}
	if in.err != nil {
		err, in.err = in.err, nil
		return false, err
	}
	got := in.ev[0].Events
	return got&(unix.EPOLLERR|unix.EPOLLHUP) != 0 && got&w.events == 0, nil
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
	for _, w := range []*oneShotWaiter{&c.rd, &c.wr} {
		if in := w.inst.Load(); in != nil {
			in.file.SetReadDeadline(past)
		}
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	for _, w := range []*oneShotWaiter{&c.rd, &c.wr} {
		if in := w.inst.Load(); in != nil {
			in.file.Close()
		}
	}
	if err := unix.Close(c.fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}
