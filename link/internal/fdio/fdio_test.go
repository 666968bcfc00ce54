package fdio_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// pair is a non-blocking AF_UNIX datagram socket pair, each end an os.File
// in the netpoller: the loops take any syscall.RawConn (the links give them
// OneShotConns, oneshot_test.go).
type pair struct {
	a, b         *os.File
	connA, connB syscall.RawConn
}

func newPair(t *testing.T) *pair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A send buffer of 128 KiB (the kernel doubles the 64 KiB asked for)
	// takes the small test frames and rejects bigFrame with EMSGSIZE.
	if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 64<<10); err != nil {
		t.Fatal(err)
	}
	p := &pair{a: os.NewFile(uintptr(fds[0]), "a"), b: os.NewFile(uintptr(fds[1]), "b")}
	t.Cleanup(func() { p.a.Close(); p.b.Close() })
	if p.connA, err = p.a.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	if p.connB, err = p.b.SyscallConn(); err != nil {
		t.Fatal(err)
	}
	return p
}

const bigFrame = 256 << 10

func readFrame(fd uintptr, p []byte) (int, error) { return unix.Read(int(fd), p) }

func recvTrunc(fd uintptr, p []byte) (int, error) {
	n, _, err := unix.Recvfrom(int(fd), p, unix.MSG_TRUNC)
	return n, err
}

// readAll reads from r until want frames arrived and returns them.
func readAll(t *testing.T, r *fdio.Reader, want int) []string {
	t.Helper()
	bufs, sizes := devtest.MakeBatch(8, 64)
	var got []string
	for len(got) < want {
		n, err := r.Read(bufs, sizes, 2)
		if err != nil {
			t.Fatalf("Read after %d of %d frames: %v", len(got), want, err)
		}
		for i := range n {
			got = append(got, string(bufs[i][2:2+sizes[i]]))
		}
	}
	return got
}

// frames returns the frames with headroom 2 in front of each.
func frames(texts ...string) [][]byte {
	bufs := make([][]byte, len(texts))
	for i, s := range texts {
		bufs[i] = append([]byte("hh"), s...)
	}
	return bufs
}

func TestReadDrainsBatch(t *testing.T) {
	p := newPair(t)
	w := fdio.NewWriter(p.connA, fdio.StopAtReject)
	if n, err := w.Write(frames("one", "two", "three"), 2); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v; want 3, nil", n, err)
	}
	bufs, sizes := devtest.MakeBatch(8, 64)
	n, err := fdio.NewReader(p.connB, readFrame).Read(bufs, sizes, 2)
	if n != 3 || err != nil {
		t.Fatalf("Read = %d, %v; want all 3 ready frames in one call", n, err)
	}
	for i, want := range []string{"one", "two", "three"} {
		if got := string(bufs[i][2 : 2+sizes[i]]); got != want {
			t.Errorf("frame %d = %q, want %q", i, got, want)
		}
		if bufs[i][0] != 0 || bufs[i][1] != 0 {
			t.Errorf("frame %d: Read wrote into the headroom", i)
		}
	}
}

func TestReadDropsTruncated(t *testing.T) {
	p := newPair(t)
	long := string(make([]byte, 100))
	if n, err := fdio.NewWriter(p.connA, fdio.StopAtReject).Write(frames("short", long, "after"), 2); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	r := fdio.NewReader(p.connB, recvTrunc)
	if got := readAll(t, r, 2); got[0] != "short" || got[1] != "after" {
		t.Errorf("Read returned %q, want [short after]", got)
	}
	if got := r.Dropped(); got != 1 {
		t.Errorf("Dropped() = %d, want 1", got)
	}
}

func TestWriteStopAtReject(t *testing.T) {
	p := newPair(t)
	out := frames("one", string(make([]byte, bigFrame)), "two")
	n, err := fdio.NewWriter(p.connA, fdio.StopAtReject).Write(out, 2)
	if n != 1 || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("Write = %d, %v; want 1, EMSGSIZE", n, err)
	}
	// "marker" shows that nothing else was queued behind "one".
	fdio.NewWriter(p.connA, fdio.StopAtReject).Write(frames("marker"), 2)
	if got := readAll(t, fdio.NewReader(p.connB, readFrame), 2); got[0] != "one" || got[1] != "marker" {
		t.Errorf("peer read %q, want [one marker]", got)
	}
}

func TestWriteSkipRejected(t *testing.T) {
	p := newPair(t)
	out := frames("one", string(make([]byte, bigFrame)), "two", string(make([]byte, bigFrame)), "three")
	n, err := fdio.NewWriter(p.connA, fdio.SkipRejected).Write(out, 2)
	if n != 3 || !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("Write = %d, %v; want 3, EMSGSIZE", n, err)
	}
	if got := readAll(t, fdio.NewReader(p.connB, readFrame), 3); got[0] != "one" || got[1] != "two" || got[2] != "three" {
		t.Errorf("peer read %q, want [one two three]", got)
	}
}

func TestNoAllocs(t *testing.T) {
	p := newPair(t)
	w := fdio.NewWriter(p.connA, fdio.StopAtReject)
	r := fdio.NewReader(p.connB, readFrame)
	out := frames("a", "b", "c", "d")
	bufs, sizes := devtest.MakeBatch(len(out), 64)
	round := func() { devtest.Exchange(t, w, r, out, bufs, sizes, 2) }
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+Read of batches of %d frames: %g allocations per frame, want 0", len(out), allocs)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	p := newPair(t)
	n, err := devtest.BlockedRead(t, fdio.NewReader(p.connB, readFrame), "Close", func() { p.b.Close() })
	if n != 0 || err == nil {
		t.Errorf("Read on a closed file = %d, %v; want 0 and an error", n, err)
	}
}
