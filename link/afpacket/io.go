package afpacket

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvFrame receives one frame from fd into p. MSG_TRUNC makes recvfrom
// return the frame's full length, so that the Reader notices a frame longer
// than p and drops it.
func recvFrame(fd uintptr, p []byte) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_TRUNC, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Read reads up to len(bufs) frames received on the interface, frame i into
// bufs[i][offset:] and its length into sizes[i]. It blocks until at least
// one frame has arrived, then returns every ready frame that fits in the
// batch. A frame longer than its buffer is dropped and counted in Dropped.
func (s *Socket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := s.reader.Read(bufs, sizes, offset)
	if err != nil {
		return n, s.ioError("read", err)
	}
	return n, nil
}

// Write transmits bufs[i][offset:], a complete Ethernet frame, for every i.
// It tries every frame even when some fail (a frame the kernel rejects, for
// example with EMSGSIZE, does not hold up the rest) and returns how many
// were sent and the first error.
func (s *Socket) Write(bufs [][]byte, offset int) (int, error) {
	sent, err := s.writer.Write(bufs, offset)
	if err != nil {
		return sent, s.ioError("write", err)
	}
	return sent, nil
}
