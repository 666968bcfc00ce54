package fdio

import (
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// RecvFunc receives one frame from fd into p and returns its length. The
// length may exceed len(p) when the system call reports a frame's full
// length (recvmsg with MSG_TRUNC): the frame did not fit, and Reader drops
// and counts it.
type RecvFunc func(fd uintptr, p []byte) (int, error)

// Reader reads batches of frames from a non-blocking file descriptor. Reads
// are serialised.
type Reader struct {
	mu      sync.Mutex
	conn    syscall.RawConn
	recv    RecvFunc
	fn      func(fd uintptr) bool // r.do, built once so that Read does not allocate
	dropped atomic.Uint64         // frames longer than their buffer

	// The current Read's arguments and results.
	bufs   [][]byte
	sizes  []int
	offset int
	n      int
	err    error
}

// NewReader returns a Reader that receives each frame from conn with recv.
func NewReader(conn syscall.RawConn, recv RecvFunc) *Reader {
	r := &Reader{conn: conn, recv: recv}
	r.fn = r.do
	return r
}

// Read reads up to len(bufs) frames, frame i into bufs[i][offset:] and its
// length into sizes[i]. It blocks until at least one frame is ready, then
// returns every ready frame that fits in the batch. A frame longer than its
// buffer is dropped and counted in Dropped. An error is returned only when
// no frame was read.
func (r *Reader) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bufs, r.sizes, r.offset, r.n, r.err = bufs, sizes, offset, 0, nil
	err := r.conn.Read(r.fn)
	n := r.n
	if err == nil {
		err = r.err
	}
	r.bufs, r.sizes, r.err = nil, nil, nil
	return n, err
}

// Dropped returns how many frames were dropped because they did not fit
// their buffer.
func (r *Reader) Dropped() uint64 { return r.dropped.Load() }

// do receives frames until the batch is full or none is ready. It returns
// false (wait for readability) only while it has received nothing.
func (r *Reader) do(fd uintptr) bool {
	for r.n < len(r.bufs) {
		p := r.bufs[r.n][r.offset:]
		size, err := r.recv(fd, p)
		switch err {
		case nil:
			if size > len(p) {
				r.dropped.Add(1)
				continue
			}
			r.sizes[r.n] = size
			r.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return r.n > 0
		default:
			if r.n == 0 {
				r.err = err
			}
			return true
		}
	}
	return true
}
