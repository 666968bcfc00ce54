package afpacket

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readOp is one Read call: its arguments, its results, and the closure that
// RawConn.Read runs. The closure is built once per Socket, so Read does not
// allocate.
type readOp struct {
	mu      sync.Mutex
	fn      func(fd uintptr) bool
	dropped atomic.Uint64 // frames longer than their buffer
	bufs    [][]byte
	sizes   []int
	offset  int
	n       int
	err     error
}

// do receives frames until the batch is full or none is ready. It returns
// false (wait for readability) only while it has received nothing. MSG_TRUNC
// makes recvfrom return a frame's full length, so a frame longer than its
// buffer is noticed and dropped.
func (op *readOp) do(fd uintptr) bool {
	for op.n < len(op.bufs) {
		p := op.bufs[op.n][op.offset:]
		r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
			if int(r) > len(p) {
				op.dropped.Add(1)
				continue
			}
			op.sizes[op.n] = int(r)
			op.n++
		case unix.EINTR:
		case unix.EAGAIN:
			return op.n > 0
		default:
			if op.n == 0 {
				op.err = errno
			}
			return true
		}
	}
	return true
}

// Read reads up to len(bufs) frames received on the interface, frame i into
// bufs[i][offset:] and its length into sizes[i]. It blocks until at least
// one frame has arrived, then returns every ready frame that fits in the
// batch. A frame longer than its buffer is dropped and counted in Dropped.
func (s *Socket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	op := &s.read
	op.mu.Lock()
	defer op.mu.Unlock()
	op.bufs, op.sizes, op.offset, op.n, op.err = bufs, sizes, offset, 0, nil
	err := s.conn.Read(op.fn)
	n := op.n
	if err == nil {
		err = op.err
	}
	op.bufs, op.sizes, op.err = nil, nil, nil
	if err != nil {
		return n, s.ioError("read", err)
	}
	return n, nil
}

// writeOp is one Write call; see readOp.
type writeOp struct {
	mu     sync.Mutex
	fn     func(fd uintptr) bool
	bufs   [][]byte
	offset int
	next   int // next frame to send
	sent   int
	err    error
}

// do sends every frame. A frame the kernel rejects (for example EMSGSIZE)
// is skipped so that it does not hold up the rest; it returns false (wait
// for writability) on EAGAIN.
func (op *writeOp) do(fd uintptr) bool {
	for op.next < len(op.bufs) {
		_, err := unix.Write(int(fd), op.bufs[op.next][op.offset:])
		switch err {
		case nil:
			op.sent++
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			if op.err == nil {
				op.err = err
			}
		}
		op.next++
	}
	return true
}

// Write transmits bufs[i][offset:], a complete Ethernet frame, for every i.
// It tries every frame even when some fail and returns how many were sent
// and the first error.
func (s *Socket) Write(bufs [][]byte, offset int) (int, error) {
	op := &s.write
	op.mu.Lock()
	defer op.mu.Unlock()
	op.bufs, op.offset, op.next, op.sent, op.err = bufs, offset, 0, 0, nil
	err := s.conn.Write(op.fn)
	sent := op.sent
	if err == nil {
		err = op.err
	}
	op.bufs, op.err = nil, nil
	if err != nil {
		return sent, s.ioError("write", err)
	}
	return sent, nil
}
