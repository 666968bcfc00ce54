package tap

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// readFrame reads one frame from fd into p with read(2); a frame longer than
// p is truncated to it.
func readFrame(fd uintptr, p []byte) (int, error) { return unix.Read(int(fd), p) }

// Read reads up to len(bufs) frames, frame i into bufs[i][offset:] and its
// length into sizes[i]. It blocks until at least one frame is ready, then
// returns every ready frame that fits in the batch.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if d.closed.Load() {
		return 0, link.ErrClosed // also with segments of a super-frame pending
	}
	n, err := d.reader.Read(bufs, sizes, offset)
	if err != nil {
		return n, d.ioError("read", err)
	}
	return n, nil
}

// Write writes bufs[i][offset:] for every i, in order. It stops at the first
// frame the kernel rejects and returns how many were written before it.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	n, err := d.writer.Write(bufs, offset)
	if err != nil {
		return n, d.ioError(fmt.Sprintf("write frame %d of %d", n+1, len(bufs)), err)
	}
	return n, nil
}

// GSO reports whether d moves super-frames whole (link.GSODevice): it was
// opened with Options.Offload.
func (d *Device) GSO() bool { return d.vnet != nil }

// ReadGSO is link.GSODevice's ReadGSO; without Options.Offload it is Read,
// every frame plain. meta is never set (a TAP has no receive metadata).
func (d *Device) ReadGSO(bufs [][]byte, sizes []int, meta []link.RxMeta, gso []link.GSO, offset int) (int, error) {
	if d.vnet == nil {
		n, err := d.Read(bufs, sizes, offset)
		clear(gso[:max(n, 0)])
		return n, err
	}
	if d.closed.Load() {
		return 0, link.ErrClosed
	}
	n, err := d.vnet.ReadGSO(bufs, sizes, nil, gso, offset)
	if err != nil {
		return n, d.ioError("read", err)
	}
	return n, nil
}

// SuperFrame is link.GSODevice's SuperFrame: nil without Options.Offload.
func (d *Device) SuperFrame() []byte {
	if d.vnet == nil {
		return nil
	}
	return d.vnet.SuperFrame()
}

// WriteGSO is link.GSODevice's WriteGSO. Without Options.Offload a
// super-frame is refused (its write fails with EINVAL).
func (d *Device) WriteGSO(bufs [][]byte, gso []link.GSO, offset int) (int, error) {
	if d.gro == nil {
		for i := range bufs {
			if gso[i].Type != link.GSONone {
				n, err := d.Write(bufs[:i], offset)
				if err == nil {
					err = d.ioError(fmt.Sprintf("write frame %d of %d", i+1, len(bufs)), unix.EINVAL)
				}
				return n, err
			}
		}
		return d.Write(bufs, offset)
	}
	n, err := d.gro.WriteGSO(bufs, gso, offset)
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
	case errors.Is(err, unix.EBADFD) || d.deleted():
		return fmt.Errorf("%s %s: %s: device was deleted: %w", d.mode, d.name, op, link.ErrClosed)
	}
	return fmt.Errorf("%s %s: %s: %w", d.mode, d.name, op, err)
}

// deleted reports whether d's device is gone. A Read waiting when the
// device is deleted is woken by the EPOLLERR the tun driver reports for a
// detached file and normally sees read(2)'s EBADFD on its next try; should
// it see another error (fdio.ErrHangUp, for a hang-up the read did not
// report), a read of 0 bytes tells, as tun checks the device before
// anything else.
func (d *Device) deleted() bool {
	var rerr error
	if d.conn.Control(func(fd uintptr) { _, rerr = unix.Read(int(fd), nil) }) != nil {
		return false
	}
	return errors.Is(rerr, unix.EBADFD)
}
