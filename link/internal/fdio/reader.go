package fdio

import (
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// RecvFunc receives one frame from fd into p and returns its length. The
// length may exceed len(p) when the system call reports a frame's full
// length (recvmsg with MSG_TRUNC): the frame did not fit, and Reader drops
// and counts it, unless a MetaRecvFunc marks it link.RxLarge: then the
// owner kept it whole in a buffer of its own, and Reader returns it as the
// last frame of the batch (the next frame would overwrite that buffer).
type RecvFunc func(fd uintptr, p []byte) (int, error)

// MetaRecvFunc is a RecvFunc that also reports the frame's metadata.
type MetaRecvFunc func(fd uintptr, p []byte) (int, link.RxMeta, error)

// Reader reads batches of frames from a non-blocking file descriptor. Reads
// are serialised.
type Reader struct {
	mu      sync.Mutex
	conn    syscall.RawConn
	recv    MetaRecvFunc
	fn      func(fd uintptr) bool // r.do, built once so that Read does not allocate
	dropped atomic.Uint64         // frames longer than their buffer

	// The current Read's arguments and results.
	bufs   [][]byte
	sizes  []int
	meta   []link.RxMeta // nil for Read
	offset int
	n      int
	err    error
}

// NewReader returns a Reader that receives each frame from conn with recv.
func NewReader(conn syscall.RawConn, recv RecvFunc) *Reader {
	return NewMetaReader(conn, func(fd uintptr, p []byte) (int, link.RxMeta, error) {
		n, err := recv(fd, p)
		return n, 0, err
	})
}

// NewMetaReader returns a Reader that receives each frame and its metadata
// from conn with recv, for ReadMeta.
func NewMetaReader(conn syscall.RawConn, recv MetaRecvFunc) *Reader {
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
	return r.ReadMeta(bufs, sizes, nil, offset)
}

// ReadMeta is Read that also stores frame i's metadata in meta[i], unless
// meta is nil.
func (r *Reader) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bufs, r.sizes, r.meta, r.offset, r.n, r.err = bufs, sizes, meta, offset, 0, nil
	err := r.conn.Read(r.fn)
	n := r.n
	if err == nil {
		err = r.err
	}
	r.bufs, r.sizes, r.meta, r.err = nil, nil, nil, nil
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
		size, meta, err := r.recv(fd, p)
		switch err {
		case nil:
			if size > len(p) && meta&link.RxLarge == 0 {
				r.dropped.Add(1)
				continue
			}
			r.sizes[r.n] = size
			if r.meta != nil {
				r.meta[r.n] = meta
			}
			r.n++
			if size > len(p) {
				return true
			}
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
