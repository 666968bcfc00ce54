// Package devtest holds helpers for the tests of the packages that move
// batches through real file descriptors: tap, afpacket, udp and their shared
// fdio. (Package linktest, by contrast, fakes link devices in memory.)
package devtest

import (
	"io"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/allocs"
)

// MakeBatch returns n buffers of size bytes and n sizes, for a batch Read.
func MakeBatch(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// CloseAtCleanup closes c when the test ends, and already after 20 s, so
// that a test waiting for a frame that never comes fails instead of hanging.
func CloseAtCleanup(t testing.TB, c io.Closer) {
	t.Cleanup(func() { c.Close() })
	watchdog := time.AfterFunc(20*time.Second, func() { c.Close() })
	t.Cleanup(func() { watchdog.Stop() })
}

// Reader is a batch reader: a link.Device or an fdio.Reader.
type Reader interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
}

// Writer is a batch writer: a link.Device or an fdio.Writer.
type Writer interface {
	Write(bufs [][]byte, offset int) (int, error)
}

// Exchange writes the batch out[i][offset:] with w, then reads from r into
// bufs[i][offset:] until as many frames have arrived, and returns the number
// of Read calls. It fails tb if either side fails. It does not allocate.
func Exchange(tb testing.TB, w Writer, r Reader, out, bufs [][]byte, sizes []int, offset int) int {
	if n, err := w.Write(out, offset); n != len(out) || err != nil {
		tb.Fatalf("Write = %d, %v; want %d, nil", n, err, len(out))
	}
	reads := 0
	for got := 0; got < len(out); reads++ {
		n, err := r.Read(bufs, sizes, offset)
		if err != nil {
			tb.Fatalf("Read after %d of %d frames: %v", got, len(out), err)
		}
		got += n
	}
	return reads
}

// BlockedRead starts a one-frame Read on r, lets it block for 50 ms, calls
// unblock and returns what Read returned. It fails t if Read is still
// blocked 5 s later; unblocker names what unblock does, for that message.
func BlockedRead(t testing.TB, r Reader, unblocker string, unblock func()) (int, error) {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		bufs, sizes := MakeBatch(1, 2048)
		n, err := r.Read(bufs, sizes, 0)
		done <- result{n, err}
	}()
	time.Sleep(50 * time.Millisecond)
	unblock()
	select {
	case res := <-done:
		return res.n, res.err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not unblock Read", unblocker)
		return 0, nil
	}
}

// AllocsPerPacket runs f once to warm up and then runs times, f moving
// packets packets per run, and returns the heap allocations per packet: a
// fraction, where testing.AllocsPerRun returns the integer part of the
// allocations per run and so reports 0 for a path that allocates in 99
// runs of 100. Like AllocsPerRun it sets GOMAXPROCS to 1 while it measures;
// it measures up to three times and returns the least (allocs.PerOp).
// Under the race detector it skips tb (make test runs the allocation tests
// again without -race).
func AllocsPerPacket(tb testing.TB, runs, packets int, f func()) float64 {
	tb.Helper()
	allocs.SkipUnderRace(tb)
	return allocs.PerOp(runs, packets, f)
}
