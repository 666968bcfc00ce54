package fdio_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// connPair is a socket pair of OneShotConns: a writes, b reads.
func connPair(t *testing.T) (a, b *fdio.OneShotConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = fdio.NewOneShotConn(fds[0]); err != nil {
		t.Fatal(err)
	}
	if b, err = fdio.NewOneShotConn(fds[1]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// epollsOf returns the epoll instances of this process that fd is
// registered with: the fdinfo of every eventpoll descriptor lists its
// targets, a line "tfd: N events: ..." each.
func epollsOf(t *testing.T, fd uintptr) map[string]uint32 {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]uint32{} // epoll fd → the registration's events
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || target != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[0] == "tfd:" && f[1] == strconv.Itoa(int(fd)) && f[2] == "events:" {
				ev, err := strconv.ParseUint(f[3], 16, 32)
				if err != nil {
					t.Fatalf("fdinfo line %q: %v", line, err)
				}
				in[e.Name()] = uint32(ev)
			}
		}
	}
	return in
}

// The runtime's epoll instance, the one an os.File is registered with,
// never lists a Conn's descriptor, and outside a wait no registration of
// it is armed: a frame queued while nobody waits wakes nothing.
func TestOneShotConnNotInNetpoller(t *testing.T) {
	a, b := connPair(t)
	var fdA, fdB uintptr
	a.Control(func(fd uintptr) { fdA = fd })
	b.Control(func(fd uintptr) { fdB = fd })
	// A blocked Read and a frame moved through the pair, so that
	// any registration a wait makes exists.
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
	p := newPair(t)
	runtimes := epollsOf(t, p.b.Fd())
	if len(runtimes) != 1 {
		t.Fatalf("an os.File socket is in %d epoll instances, want 1 (the runtime's)", len(runtimes))
	}
	// Instances are made by a direction's first wait: b waited to read,
	// a never waited.
	if got := len(epollsOf(t, fdB)); got != 1 {
		t.Errorf("b (fd %d), which waited to read, is in %d epoll instances, want 1", fdB, got)
	}
	if got := len(epollsOf(t, fdA)); got != 0 {
		t.Errorf("a (fd %d), which never waited, is in %d epoll instances, want 0", fdA, got)
	}
	for name, fd := range map[string]uintptr{"a": fdA, "b": fdB} {
		for ep, events := range epollsOf(t, fd) {
			if _, ok := runtimes[ep]; ok {
				t.Errorf("%s (fd %d) is registered with the runtime's epoll instance (fd %s)", name, fd, ep)
			}
			if events&(unix.EPOLLIN|unix.EPOLLOUT) != 0 {
				t.Errorf("%s (fd %d) is armed for events %#x in epoll instance %s outside a wait", name, fd, events, ep)
			}
		}
	}
}

// closeWhileWaiting starts op (c.Read or c.Write) with a callback that
// counts its runs and returns try's result, lets it find nothing once and
// park, closes c, and checks that op returned os.ErrClosed without running
// the callback again.
func closeWhileWaiting(t *testing.T, c *fdio.OneShotConn, name string, op func(func(uintptr) bool) error, try func(fd uintptr) bool) {
	t.Helper()
	done := make(chan error, 1)
	var tries atomic.Int64
	go func() {
		done <- op(func(fd uintptr) bool {
			tries.Add(1)
			return try(fd)
		})
	}()
	waitFor(t, name+"'s first try", func() bool { return tries.Load() == 1 })
	waitFor(t, name+" to arm its registration", func() bool { return armed(t, c) })
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close hung with %s waiting", name)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("%s on a closed OneShotConn = %v, want os.ErrClosed", name, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not unblock %s", name)
	}
	// Once to find nothing; Close ends the wait without another try.
	if got := tries.Load(); got != 1 {
		t.Errorf("%s ran its callback %d times, want 1", name, got)
	}
}

// armed reports whether a registration of c's descriptor is armed.
func armed(t *testing.T, c *fdio.OneShotConn) bool {
	var fd uintptr
	c.Control(func(f uintptr) { fd = f })
	for _, events := range epollsOf(t, fd) {
		if events&(unix.EPOLLIN|unix.EPOLLOUT) != 0 {
			return true
		}
	}
	return false
}

// waitFor polls cond every millisecond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestOneShotConnCloseUnblocksRead(t *testing.T) {
	_, b := connPair(t)
	var buf [64]byte
	closeWhileWaiting(t, b, "Read", b.Read, func(fd uintptr) bool {
		_, err := unix.Read(int(fd), buf[:])
		return err != unix.EAGAIN
	})
	if err := b.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close = %v, want os.ErrClosed", err)
	}
	if err := b.Control(func(uintptr) { t.Error("Control ran f after Close") }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Control after Close = %v, want os.ErrClosed", err)
	}
	if err := b.Read(func(uintptr) bool { t.Error("Read ran f after Close"); return true }); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close = %v, want os.ErrClosed", err)
	}
}

// A Write waiting for a full send buffer (nothing reads the other end).
func TestOneShotConnCloseUnblocksWrite(t *testing.T) {
	a, _ := connPair(t)
	frame := make([]byte, 1024)
	closeWhileWaiting(t, a, "Write", a.Write, func(fd uintptr) bool {
		for {
			if _, err := unix.Write(int(fd), frame); err == unix.EAGAIN {
				return false
			} else if err != nil {
				t.Errorf("write: %v", err)
				return true
			}
		}
	})
}

// Close waits for a running callback: the descriptor is not closed (and
// its number not reused) under it.
func TestOneShotConnCloseWaitsForCallback(t *testing.T) {
	_, b := connPair(t)
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

// pipeEnd makes a non-blocking pipe and returns a OneShotConn of its end
// end (0 reads, 1 writes), closed at cleanup, and the other end's fd, which
// the test closes.
func pipeEnd(t *testing.T, end int) (*fdio.OneShotConn, int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	c, err := fdio.NewOneShotConn(p[end])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p[1-end]
}

// A hang-up that the callback ignores ends the wait with an error instead
// of a busy loop.
func TestOneShotConnHangUp(t *testing.T) {
	r, writer := pipeEnd(t, 0)
	unix.Close(writer)
	calls := 0
	// Bounded, so that a busy loop fails the test instead of hanging it.
	err := r.Read(func(uintptr) bool { calls++; return calls > 10 })
	if !errors.Is(err, fdio.ErrHangUp) {
		t.Errorf("Read after the writer hung up = %v, want fdio.ErrHangUp", err)
	}
	if calls != 2 {
		t.Errorf("the callback ran %d times, want 2 (before the wait, and after the hang-up)", calls)
	}
}

// A hang-up that the callback takes: the write end of a full pipe whose
// reader goes away wakes with POLLERR, and the callback's next write sees
// EPIPE and ends the wait.
func TestOneShotConnErrorToCallback(t *testing.T) {
	w, reader := pipeEnd(t, 1)
	var tries atomic.Int64
	var last atomic.Value
	done := make(chan error, 1)
	go func() {
		frame := make([]byte, 4096)
		done <- w.Write(func(fd uintptr) bool {
			tries.Add(1)
			for {
				_, err := unix.Write(int(fd), frame)
				if err == unix.EAGAIN {
					return false
				}
				if err != nil {
					last.Store(err)
					return true
				}
			}
		})
	}()
	waitFor(t, "the pipe to fill", func() bool { return tries.Load() == 1 })
	waitFor(t, "Write to arm its registration", func() bool { return armed(t, w) })
	unix.Close(reader)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Write = %v, want nil (the callback took the error)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the reader's close did not wake Write")
	}
	if got, _ := last.Load().(error); !errors.Is(got, unix.EPIPE) {
		t.Errorf("the callback's write after the hang-up = %v, want EPIPE", got)
	}
	if got := tries.Load(); got != 2 {
		t.Errorf("Write ran its callback %d times, want 2", got)
	}
}

// NewOneShotConn refuses a blocking descriptor, whose callback would block
// Close.
func TestOneShotConnRefusesBlocking(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if c, err := fdio.NewOneShotConn(p[0]); err == nil {
		c.Close()
		t.Fatal("NewOneShotConn of a blocking pipe succeeded")
	}
}

// Four Reads waiting at once in one direction share the registration:
// every frame reaches exactly one of them, and Close then ends the waits
// of all four.
func TestOneShotConnConcurrentReads(t *testing.T) {
	a, b := connPair(t)
	const readers, total = 4, 4000
	var got atomic.Int64
	done := make(chan error, readers)
	for range readers {
		go func() {
			var buf [64]byte
			for {
				err := b.Read(func(fd uintptr) bool {
					_, err := unix.Read(int(fd), buf[:])
					if err == nil {
						got.Add(1)
					}
					return err != unix.EAGAIN
				})
				if err != nil {
					done <- err
					return
				}
			}
		}()
	}
	frame := []byte("frame")
	for i := range total {
		err := a.Write(func(fd uintptr) bool {
			_, err := unix.Write(int(fd), frame)
			if err != nil && err != unix.EAGAIN {
				t.Errorf("write %d: %v", i, err)
			}
			return err != unix.EAGAIN
		})
		if err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}
	waitFor(t, "every frame to be read", func() bool { return got.Load() == total })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range readers {
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("reader %d ended with %v, want os.ErrClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close ended %d of %d waiting Reads", i, readers)
		}
	}
	if n := got.Load(); n != total {
		t.Errorf("the readers got %d frames, want %d", n, total)
	}
}

func TestOneShotConnNoAllocs(t *testing.T) {
	a, b := connPair(t)
	w := fdio.NewWriter(a, fdio.StopAtReject)
	r := fdio.NewReader(b, readFrame)
	out := frames("a", "b", "c", "d")
	bufs, sizes := devtest.MakeBatch(len(out), 64)
	round := func() { devtest.Exchange(t, w, r, out, bufs, sizes, 2) }
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+Read of batches of %d frames through OneShotConns: %g allocations per frame, want 0", len(out), allocs)
	}
	// A Read that arms its registration and parks, woken by a frame 1 ms
	// later from a goroutine that lives across the runs.
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
	// Warm up: the first waits may make the runtime start a thread (an
	// allocation) for the kicker or the netpoller.
	for range 5 {
		waits()
	}
	if allocs := devtest.AllocsPerPacket(t, 20, 1, waits); allocs != 0 {
		t.Errorf("a Read that waits for its frame: %g allocations, want 0", allocs)
	}
}
