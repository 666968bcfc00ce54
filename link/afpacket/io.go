package afpacket

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// PACKET_AUXDATA's struct tpacket_auxdata (linux/if_packet.h): tp_status,
// tp_len, tp_snaplen (u32 each), tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid
// (u16 each).
const (
	auxdataLen       = 20
	auxStatusOffset  = 0
	auxVLANTCIOffset = 16
	vlanIDMask       = 0x0fff
)

// receiver is the recvmsg(2) state of a socket: the message header, the
// iovecs and the control buffer are reused for every frame (reads are
// serialised by the fdio.Reader), so that receiving allocates nothing.
//
// The second iovec is the overflow buffer, from the length of the caller's
// buffer on: a frame longer than that buffer (a sender's TSO frame, passed
// on by a veth) continues there, and recv copies its start in front, so
// that overflow holds it whole.
type receiver struct {
	hdr      unix.Msghdr
	iov      [2]unix.Iovec
	oob      [64]byte // one cmsg with a tpacket_auxdata fits with room to spare
	overflow []byte   // link.MaxLarge bytes
	large    []byte   // the last frame, whole, if it overflowed
}

// recv receives one frame from fd into p, continued in the overflow
// buffer, with its PACKET_AUXDATA. MSG_TRUNC makes recvmsg return the
// frame's full length: a frame longer than p is marked link.RxLarge if the
// overflow buffer holds the rest, else the Reader drops it.
func (r *receiver) recv(fd uintptr, p []byte) (int, link.RxMeta, error) {
	r.iov[0].Base = unsafe.SliceData(p)
	r.iov[0].SetLen(len(p))
	r.hdr.Iov = &r.iov[0]
	r.hdr.Iovlen = 1
	if len(p) < len(r.overflow) {
		rest := r.overflow[len(p):]
		r.iov[1].Base = unsafe.SliceData(rest)
		r.iov[1].SetLen(len(rest))
		r.hdr.Iovlen = 2
	}
	r.hdr.Control = &r.oob[0]
	r.hdr.SetControllen(len(r.oob))
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.hdr)), unix.MSG_TRUNC)
	r.iov[0].Base = nil // do not pin the caller's buffer
	if errno != 0 {
		return 0, 0, errno
	}
	meta := auxMeta(r.oob[:r.hdr.Controllen])
	if size := int(n); size > len(p) && size <= len(r.overflow) {
		copy(r.overflow, p)
		r.large = r.overflow[:size]
		meta |= link.RxLarge
	}
	return int(n), meta, nil
}

// auxMeta returns the metadata in the PACKET_AUXDATA control message of oob,
// if there is one. A VLAN tag with VLAN ID 0 is a priority tag (802.1p) on
// the untagged network, which the kernel also treats as untagged.
func auxMeta(oob []byte) link.RxMeta {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && l >= unix.CmsgLen(auxdataLen) {
			aux := oob[unix.CmsgLen(0):l]
			status := binary.NativeEndian.Uint32(aux[auxStatusOffset:])
			var m link.RxMeta
			if status&unix.TP_STATUS_VLAN_VALID != 0 && binary.NativeEndian.Uint16(aux[auxVLANTCIOffset:])&vlanIDMask != 0 {
				m |= link.RxVLAN
			}
			if status&unix.TP_STATUS_CSUMNOTREADY != 0 {
				m |= link.RxChecksumPartial
			}
			return m
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return 0
}

// Read reads up to len(bufs) frames received on the interface, frame i into
// bufs[i][offset:] and its length into sizes[i]. It blocks until at least
// one frame has arrived, then returns every ready frame that fits in the
// batch. A frame longer than its buffer but at most link.MaxLarge bytes is
// kept whole (see Large) and ends the batch; a longer one is dropped and
// counted in Dropped.
func (s *Socket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return s.ReadMeta(bufs, sizes, nil, offset)
}

// ReadMeta is Read that also reports, in meta[i], whether frame i carried
// a VLAN tag (link.RxVLAN), whether its transport checksum is partial
// (link.RxChecksumPartial), from the kernel's PACKET_AUXDATA, and whether
// it was kept whole beyond its buffer (link.RxLarge). It implements
// link.MetaReader.
func (s *Socket) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	s.largeAt = -1
	n, err := s.reader.ReadMeta(bufs, sizes, meta, offset)
	if err != nil {
		return n, s.ioError("read", err)
	}
	if n > 0 && sizes[n-1] > len(bufs[n-1])-offset {
		s.largeAt = n - 1 // the Reader ends a batch at a large frame
	}
	return n, nil
}

// Large implements link.LargeReader: frame i of the last read whole, if it
// was longer than its buffer, else nil. Only the last frame of a read can
// be. It is valid until the next read; call it from the goroutine that
// read.
func (s *Socket) Large(i int) []byte {
	if i != s.largeAt {
		return nil
	}
	return s.recv.large
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
