package fdio

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// OnReject says what Writer.Write does with a frame the kernel rejects (for
// example with EMSGSIZE).
type OnReject uint8

const (
	// StopAtReject makes Write return at the rejected frame: the frames
	// before it were sent, it and the ones after it were not.
	StopAtReject OnReject = iota
	// SkipRejected makes Write skip the rejected frame and go on, so that
	// it does not hold up the rest; Write reports the first error.
	SkipRejected
)

// Writer writes batches of frames to a non-blocking file descriptor, one
// write(2) per frame. Writes are serialised.
type Writer struct {
	mu       sync.Mutex
	conn     syscall.RawConn
	onReject OnReject
	fn       func(fd uintptr) bool // w.do, built once so that Write does not allocate

	// The current Write's arguments and results.
	bufs   [][]byte
	offset int
	next   int // next frame to send
	sent   int
	err    error
}

// NewWriter returns a Writer to conn that treats rejected frames as onReject
// says.
func NewWriter(conn syscall.RawConn, onReject OnReject) *Writer {
	w := &Writer{conn: conn, onReject: onReject}
	w.fn = w.do
	return w
}

// Write writes bufs[i][offset:] for every i, in order, and returns how many
// were sent and the first error. With StopAtReject the frames sent are
// bufs[:sent].
func (w *Writer) Write(bufs [][]byte, offset int) (sent int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bufs, w.offset, w.next, w.sent, w.err = bufs, offset, 0, 0, nil
	err = w.conn.Write(w.fn)
	sent = w.sent
	if err == nil {
		err = w.err
	}
	w.bufs, w.err = nil, nil
	return sent, err
}

// do writes frames until all are taken or, with StopAtReject, one fails. It
// returns false (wait for writability) on EAGAIN.
func (w *Writer) do(fd uintptr) bool {
	for w.next < len(w.bufs) {
		_, err := unix.Write(int(fd), w.bufs[w.next][w.offset:])
		switch err {
		case nil:
			w.sent++
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			if w.err == nil {
				w.err = err
			}
			if w.onReject == StopAtReject {
				return true
			}
		}
		w.next++
	}
	return true
}
