package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"syscall"
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

// oobLen is the size of a message's control buffer: one cmsg with a
// tpacket_auxdata fits with room to spare.
const oobLen = 64

// receiver is the recvmsg(2) and recvmmsg(2) state of a socket: the
// message header and the control buffers are reused for every frame
// (reads are serialised by the vnet.Reader), so that receiving allocates
// nothing. The counters are for tests.
type receiver struct {
	hdr  unix.Msghdr
	oob  [oobLen]byte
	oobs [batchSize][oobLen]byte // recvmmsg's, one per message

	calls, frames atomic.Uint64 // recvmmsg calls, and the frames they received
}

// recvBatch is the socket's vnet.BatchRecvFunc: up to a batch of frames,
// each behind its virtio header, with one recvmmsg(2), each message's
// PACKET_AUXDATA in its own control buffer.
func (r *receiver) recvBatch(fd uintptr, msgs []unix.Mmsghdr, meta []link.RxMeta) (int, syscall.Errno) {
	for i := range msgs {
		msgs[i].Hdr.Control = &r.oobs[i][0]
		msgs[i].Hdr.SetControllen(oobLen)
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	r.calls.Add(1)
	if errno != 0 {
		return 0, errno
	}
	for i := range int(n) {
		meta[i] = auxMeta(r.oobs[i][:msgs[i].Hdr.Controllen])
	}
	r.frames.Add(uint64(n))
	return int(n), 0
}

// sender is the sendmmsg(2) of a socket; the counters are for tests.
type sender struct {
	calls, frames atomic.Uint64 // sendmmsg calls, and the frames they sent
}

// send is the socket's vnet.BatchSendFunc: frames that go alone, one
// message each, with one sendmmsg(2).
func (s *sender) send(fd uintptr, msgs []unix.Mmsghdr) (int, syscall.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	s.calls.Add(1)
	if errno != 0 {
		return 0, errno
	}
	s.frames.Add(uint64(n))
	return int(n), 0
}

// recv is the socket's vnet.RecvFunc: one frame, behind its virtio header,
// into iov, with its PACKET_AUXDATA.
func (r *receiver) recv(fd uintptr, iov []unix.Iovec) (int, link.RxMeta, syscall.Errno) {
	r.hdr.Iov = &iov[0]
	r.hdr.SetIovlen(len(iov))
	r.hdr.Control = &r.oob[0]
	r.hdr.SetControllen(len(r.oob))
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.hdr)), 0)
	r.hdr.Iov = nil
	if errno != 0 {
		return 0, 0, errno
	}
	return int(n), auxMeta(r.oob[:r.hdr.Controllen]), 0
}

// auxMeta returns the metadata in the PACKET_AUXDATA control message of oob,
// if there is one: the VLAN tag (a partial checksum, TP_STATUS_CSUMNOTREADY,
// the virtio header tells too, and the Reader completes it). A VLAN tag with VLAN ID 0 is a priority tag (802.1p) on
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
			return m
		}
		oob = oob[min(unix.CmsgSpace(l-unix.SizeofCmsghdr), len(oob)):]
	}
	return 0
}

// Read reads up to len(bufs) frames received on the interface, frame i into
// bufs[i][offset:] and its length into sizes[i]. It blocks until at least
// one frame has arrived, then returns the ready frames that fit in the
// batch, received with one recvmmsg per 64. A super-frame (a local sender's TSO frame, which a veth passes on
// whole, or a frame the interface's GRO merged) is cut into segments of the
// sender's segment size, at most the interface's MTU, one per buffer, the
// rest handed out by the next Read; a partial checksum is completed. A
// frame longer than its buffer that is not a super-frame is handed on
// truncated to it, as read(2) on a socket truncates.
func (s *Socket) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return s.ReadMeta(bufs, sizes, nil, offset)
}

// ReadMeta is Read that also reports, in meta[i], whether frame i carried
// a VLAN tag (link.RxVLAN), from the kernel's PACKET_AUXDATA. It
// implements link.MetaReader.
func (s *Socket) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	n, err := s.reader.ReadMeta(bufs, sizes, meta, offset)
	if err != nil {
		return n, s.ioError("read", err)
	}
	return n, nil
}

// GSO is link.GSODevice's GSO: a packet socket always has its virtio
// header.
func (s *Socket) GSO() bool { return true }

// ReadGSO is link.GSODevice's ReadGSO: ReadMeta, handing a super-frame on
// whole.
func (s *Socket) ReadGSO(bufs [][]byte, sizes []int, meta []link.RxMeta, gso []link.GSO, offset int) (int, error) {
	n, err := s.reader.ReadGSO(bufs, sizes, meta, gso, offset)
	if err != nil {
		return n, s.ioError("read", err)
	}
	return n, nil
}

// SuperFrame is link.GSODevice's SuperFrame.
func (s *Socket) SuperFrame() []byte { return s.reader.SuperFrame() }

// WriteGSO is link.GSODevice's WriteGSO: Write, a super-frame going whole
// onto the interface (a veth passes it on so; a NIC segments it), or cut
// here if the kernel refuses it.
func (s *Socket) WriteGSO(bufs [][]byte, gso []link.GSO, offset int) (int, error) {
	sent, err := s.writer.WriteGSO(bufs, gso, offset)
	if err != nil {
		return sent, s.ioError("write", err)
	}
	return sent, nil
}

// Write transmits bufs[i][offset:], a complete Ethernet frame, for every i.
// Runs of adjacent segments of one TCP flow go as one super-frame (one
// writev), which a veth and a bridge pass on whole and a NIC segments
// (TSO, or the kernel's GSO); each run of the other frames goes with one
// sendmmsg. It tries every frame even when some fail (a
// frame the kernel rejects, for example with EMSGSIZE, does not hold up
// the rest) and returns how many were sent and the first error.
func (s *Socket) Write(bufs [][]byte, offset int) (int, error) {
	sent, err := s.writer.Write(bufs, offset)
	if err != nil {
		return sent, s.ioError("write", err)
	}
	return sent, nil
}
