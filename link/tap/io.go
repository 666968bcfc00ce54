package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// readOp is one Read call: its arguments, its results, and the closure that
// RawConn.Read runs. The closure is built once per Device, so Read does not
// allocate.
type readOp struct {
	mu     sync.Mutex
	fn     func(fd uintptr) bool
	bufs   [][]byte
	sizes  []int
	offset int
	n      int
	err    error
}

// do reads frames until the batch is full or none is ready. It returns false
// (wait for readability) only while it has read nothing.
func (op *readOp) do(fd uintptr) bool {
	for op.n < len(op.bufs) {
		size, err := unix.Read(int(fd), op.bufs[op.n][op.offset:])
		switch err {
		case nil:
			op.sizes[op.n] = size
			op.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return op.n > 0
		default:
			if op.n == 0 {
				op.err = err
			}
			return true
		}
	}
	return true
}

// Read reads up to len(bufs) frames, frame i into bufs[i][offset:] and its
// length into sizes[i]. It blocks until at least one frame is ready, then
// returns every ready frame that fits in the batch.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	op := &d.read
	op.mu.Lock()
	defer op.mu.Unlock()
	op.bufs, op.sizes, op.offset, op.n, op.err = bufs, sizes, offset, 0, nil
	err := d.conn.Read(op.fn)
	n := op.n
	if err == nil {
		err = op.err
	}
	op.bufs, op.sizes, op.err = nil, nil, nil
	if err != nil {
		return n, d.ioError("read", err)
	}
	return n, nil
}

// writeOp is one Write call; see readOp.
type writeOp struct {
	mu     sync.Mutex
	fn     func(fd uintptr) bool
	bufs   [][]byte
	offset int
	n      int
	err    error
}

// do writes frames until all are written or one fails. It returns false
// (wait for writability) on EAGAIN.
func (op *writeOp) do(fd uintptr) bool {
	for op.n < len(op.bufs) {
		_, err := unix.Write(int(fd), op.bufs[op.n][op.offset:])
		switch err {
		case nil:
			op.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			op.err = err
			return true
		}
	}
	return true
}

// Write writes bufs[i][offset:] for every i, in order. It stops at the first
// frame the kernel rejects and returns how many were written before it.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	op := &d.write
	op.mu.Lock()
	defer op.mu.Unlock()
	op.bufs, op.offset, op.n, op.err = bufs, offset, 0, nil
	err := d.conn.Write(op.fn)
	n := op.n
	if err == nil {
		err = op.err
	}
	op.bufs, op.err = nil, nil
	if err != nil {
		return n, d.ioError(fmt.Sprintf("write frame %d of %d", n+1, len(bufs)), err)
	}
	return n, nil
}

// ioError maps err from an operation on d to what callers expect: ErrClosed
// after Close, an error wrapping ErrClosed after the device was deleted
// (tun reports EBADFD), and a descriptive error otherwise.
func (d *Device) ioError(op string, err error) error {
	switch {
	case d.closed.Load() || errors.Is(err, os.ErrClosed):
		return link.ErrClosed
	case errors.Is(err, unix.EBADFD):
		return fmt.Errorf("%s %s: %s: device was deleted: %w", d.mode, d.name, op, link.ErrClosed)
	}
	return fmt.Errorf("%s %s: %s: %w", d.mode, d.name, op, err)
}
