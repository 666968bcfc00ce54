package fdio_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// pollPair is a socket pair of fdio.PollConns: a writes, b reads.
func pollPair(t *testing.T) (a, b *fdio.PollConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = fdio.NewPollConn(fds[0]); err != nil {
		t.Fatal(err)
	}
	if b, err = fdio.NewPollConn(fds[1]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// inEpoll reports whether fd is registered with an epoll instance of this
// process: the fdinfo of every eventpoll descriptor lists its targets, a
// line "tfd: N events: ..." each.
func inEpoll(t *testing.T, fd uintptr) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" && f[1] == strconv.Itoa(int(fd)) {
				return true
			}
		}
	}
	return false
}

func TestPollConnNotInNetpoller(t *testing.T) {
	a, b := pollPair(t)
	var fdA, fdB uintptr
	a.Control(func(fd uintptr) { fdA = fd })
	b.Control(func(fd uintptr) { fdB = fd })
	// A blocked Read and a frame moved through the pair, so that the
	// runtime's epoll instance exists and would have been used.
	r := fdio.NewReader(b, readFrame)
	w := fdio.NewWriter(a, fdio.StopAtReject)
	n, err := devtest.BlockedRead(t, r, "a Write", func() {
		if n, err := w.Write(frames("one"), 2); n != 1 || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
	})
	if n != 1 || err != nil {
		t.Fatalf("Read = %d, %v; want 1, nil", n, err)
	}
	// The os.File pair of the other tests, for contrast: the netpoller
	// registers it, and inEpoll sees that.
	p := newPair(t)
	if !inEpoll(t, p.b.Fd()) {
		t.Fatalf("an os.File socket is not in any epoll instance: inEpoll cannot tell")
	}
	for name, fd := range map[string]uintptr{"a": fdA, "b": fdB} {
		if inEpoll(t, fd) {
			t.Errorf("PollConn %s (fd %d) is registered with an epoll instance", name, fd)
		}
	}
}

func TestPollConnCloseUnblocksRead(t *testing.T) {
	_, b := pollPair(t)
	n, err := devtest.BlockedRead(t, fdio.NewReader(b, readFrame), "Close", func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	if n != 0 || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read on a closed PollConn = %d, %v; want 0, os.ErrClosed", n, err)
	}
	if err := b.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close = %v, want os.ErrClosed", err)
	}
	if err := b.Control(func(uintptr) { t.Error("Control ran f after Close") }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Control after Close = %v, want os.ErrClosed", err)
	}
}

func TestPollConnCloseUnblocksWrite(t *testing.T) {
	a, _ := pollPair(t)
	// Fill a's send buffer, then wait for writability that never comes.
	done := make(chan error, 1)
	var tries atomic.Int64
	go func() {
		frame := make([]byte, 1024)
		done <- a.Write(func(fd uintptr) bool {
			tries.Add(1)
			for {
				if _, err := unix.Write(int(fd), frame); err == unix.EAGAIN {
					return false
				} else if err != nil {
					t.Errorf("write: %v", err)
					return true
				}
			}
		})
	}()
	time.Sleep(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Write on a closed PollConn = %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Write")
	}
	// Once to fill the buffer; nothing woke the wait before Close.
	if got := tries.Load(); got != 1 {
		t.Errorf("Write ran its callback %d times, want 1", got)
	}
}

// Close waits for a running callback: the descriptor is not closed (and
// its number not reused) under it.
func TestPollConnCloseWaitsForCallback(t *testing.T) {
	_, b := pollPair(t)
	inside, release := make(chan struct{}), make(chan struct{})
	var fdOpen atomic.Bool
	go b.Control(func(fd uintptr) {
		close(inside)
		<-release
		_, err := unix.FcntlInt(fd, unix.F_GETFD, 0)
		fdOpen.Store(err == nil)
	})
	<-inside
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a callback ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if !fdOpen.Load() {
		t.Error("the descriptor was closed under a running callback")
	}
}

// A hang-up that the callback ignores ends the wait with an error instead
// of a busy loop.
func TestPollConnHangUp(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, err := fdio.NewPollConn(p[0])
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	unix.Close(p[1])
	calls := 0
	err = r.Read(func(uintptr) bool { calls++; return false })
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("Read after the writer hung up = %v, want EIO", err)
	}
	if calls != 2 {
		t.Errorf("the callback ran %d times, want 2 (before the wait, and after the hang-up)", calls)
	}
}

func TestPollConnNoAllocs(t *testing.T) {
	a, b := pollPair(t)
	w := fdio.NewWriter(a, fdio.StopAtReject)
	r := fdio.NewReader(b, readFrame)
	out := frames("a", "b", "c", "d")
	bufs, sizes := devtest.MakeBatch(len(out), 64)
	round := func() { devtest.Exchange(t, w, r, out, bufs, sizes, 2) }
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+Read of batches of %d frames through PollConns: %g allocations per frame, want 0", len(out), allocs)
	}
	// A Read that waits in ppoll, woken by a frame 1 ms later from a
	// goroutine that lives across the runs.
	kick := make(chan struct{})
	defer close(kick)
	go func() {
		for range kick {
			time.Sleep(time.Millisecond)
			w.Write(out[:1], 2)
		}
	}()
	waits := func() {
		kick <- struct{}{}
		if n, err := r.Read(bufs, sizes, 2); n != 1 || err != nil {
			t.Errorf("Read = %d, %v; want 1, nil", n, err)
		}
	}
	if allocs := devtest.AllocsPerPacket(t, 20, 1, waits); allocs != 0 {
		t.Errorf("a Read that waits for its frame: %g allocations, want 0", allocs)
	}
}
