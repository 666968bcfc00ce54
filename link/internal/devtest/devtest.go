// Package devtest holds helpers for the tests of the packages that move
// batches through real file descriptors: tap, afpacket, udp and their shared
// fdio. (Package linktest, by contrast, fakes link devices in memory.)
package devtest

import (
	"io"
	"testing"
	"time"
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
