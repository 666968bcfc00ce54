package udp

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

const (
	// maxSegments is the most datagrams one GSO message carries: the
	// kernel's UDP_MAX_SEGMENTS, 64 from Linux 4.18 (raised to 128 in
	// later kernels; 64 works on all). A message with more is refused with
	// EINVAL.
	maxSegments = 64

	// maxGSOPayload is the most payload bytes of one GSO message: the
	// whole run must fit one IP packet of 64 KB before segmentation,
	// 65535 - 20 (IPv4 header) - 8 (UDP header), else EMSGSIZE. IPv6 would
	// allow 65527, but an IPv6 socket sends to IPv4-mapped peers over IPv4.
	maxGSOPayload = 65535 - 20 - 8

	sizeofGSOSize = 2 // the UDP_SEGMENT cmsg carries a uint16
)

// gsoCmsg is the control buffer of one message: a single SOL_UDP/UDP_SEGMENT
// cmsg whose data is the segment size in host byte order. The header has the
// alignment the kernel wants and is a multiple of it on every Linux
// architecture, so size sits at CMSG_DATA.
type gsoCmsg struct {
	hdr  unix.Cmsghdr
	size uint16
}

// batch is the pre-built argument of one recvmmsg or sendmmsg call: message
// headers, iovecs and socket addresses for BatchSize datagrams, plus the
// closure RawConn runs. Everything is allocated once, so a call does not
// allocate.
//
// A receive batch also has an overflow slot of link.MaxLarge bytes per
// message, the second iovec of each message: a datagram longer than the
// caller's buffer continues there instead of being truncated. Slot i is
// laid out so that the datagram can be made whole in it: the second iovec
// starts at the length of the caller's buffer, and collect copies the
// start of the datagram in front of it.
//
// A send batch has one iovec per datagram (sendIovs, in the caller's order)
// and a message per datagram or per GSO run: consecutive datagrams to the
// same address of one length (the last may be shorter) share one message
// whose iovecs are theirs and whose control buffer holds a UDP_SEGMENT cmsg
// with that length, and the kernel cuts the message into those datagrams
// again. A GSO message the kernel refuses is sent again datagram by
// datagram through split.
//
// With UDP GRO (a receive batch made with gro), each receive message also
// has a control buffer, and a message the kernel coalesced from several
// datagrams of one sender carries a UDP_GRO cmsg with their length (the
// segment size; the last may be shorter). splitRecv cuts such a GRO train
// into its datagrams, in order, into the caller's buffers, and keeps what
// does not fit them pending for the next ReadFrom.
type batch struct {
	msgs  [BatchSize]unix.Mmsghdr
	iovs  [BatchSize][2]unix.Iovec // receive: the caller's buffer, then the overflow slot
	names [BatchSize]sockaddr

	overflow []byte            // receive only: BatchSize slots of link.MaxLarge bytes
	large    [BatchSize][]byte // receive only: datagram i of the last read whole, if it overflowed

	// Receive only.
	gro   bool                            // messages have a control buffer for the UDP_GRO cmsg
	rctrl [BatchSize][groCtrlWords]uint64 // control buffer of message i
	rmsgs [BatchSize]rmsg                 // what recvmmsg returned in message i
	heads [BatchSize][]byte               // during the first split of a read: message i's start, in the caller's buffer i
	// The split's position: next datagram at byte at of message next;
	// messages up to end. next < end: datagrams are pending.
	next, at, end int
	fresh         bool // no split since parse: message i still starts in the caller's buffer i
	// Since the last countRead: messages received, of those GRO
	// trains and their datagrams, messages dropped for MSG_TRUNC and for
	// MSG_CTRUNC.
	rMsgs, groMsgs, groDgrams, truncated, ctruncated int

	// Send only.
	sendIovs [BatchSize]unix.Iovec   // datagram j of the batch
	niov     int                     // datagrams prepared
	ctrl     [BatchSize]gsoCmsg      // control buffer of message i, used if it is a GSO message
	split    [BatchSize]unix.Mmsghdr // a refused GSO message, one message per datagram
	splitN   int                     // messages in split, 0 if none is being sent
	splitAt  int                     // of those, taken by the kernel
	// ceiling is the longest segment size the batch still tries GSO
	// with: the Conn's at first, 0 once the kernel refused GSO, one less
	// than a segment size it found too long for the MTU; lowered tells
	// that it changed, so GSO messages above it are split untried.
	ceiling int
	lowered bool
	// What the kernel took: messages, of those GSO ones and their
	// datagrams; GSO messages it refused (refusesGSO) and found too long
	// for the MTU (EMSGSIZE).
	msgsSent, gsoSent, gsoDgrams, refused, oversize int

	fn   func(fd uintptr) bool
	n    int   // messages prepared
	done int   // messages the kernel has taken (sent or failed) or filled
	sent int   // datagrams sent (send only)
	err  error // first error
}

// newRecvBatch returns a receive batch; gro gives each message a control
// buffer for the UDP_GRO cmsg.
func newRecvBatch(gro bool) *batch {
	b := &batch{overflow: make([]byte, BatchSize*link.MaxLarge), gro: gro}
	b.fn = b.recv
	for i := range b.msgs {
		b.msgs[i].Hdr.Iov = &b.iovs[i][0]
		b.msgs[i].Hdr.Iovlen = 1
	}
	return b
}

func newSendBatch() *batch {
	b := &batch{}
	b.fn = b.send
	for i := range b.ctrl {
		b.ctrl[i].hdr.Level = unix.SOL_UDP
		b.ctrl[i].hdr.Type = unix.UDP_SEGMENT
		b.ctrl[i].hdr.SetLen(unix.CmsgLen(sizeofGSOSize))
	}
	for i := range b.split {
		b.split[i].Hdr.Iovlen = 1
	}
	return b
}

// setBuf points message i's first iovec at p.
func (b *batch) setBuf(i int, p []byte) {
	b.iovs[i][0].Base = unsafe.SliceData(p)
	b.iovs[i][0].SetLen(len(p))
}

// slot returns message i's overflow slot.
func (b *batch) slot(i int) []byte {
	return b.overflow[i*link.MaxLarge:][:link.MaxLarge]
}

// prepareRecv readies the first len(bufs) messages to receive into
// bufs[i][offset:], continued in their overflow slot.
func (b *batch) prepareRecv(bufs [][]byte, offset int) {
	for i, buf := range bufs {
		b.setBuf(i, buf[offset:])
		m := &b.msgs[i]
		m.Hdr.Iovlen = 1
		if head := len(buf) - offset; head < link.MaxLarge {
			rest := b.slot(i)[head:]
			b.iovs[i][1].Base = unsafe.SliceData(rest)
			b.iovs[i][1].SetLen(len(rest))
			m.Hdr.Iovlen = 2
		}
		m.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		m.Hdr.Namelen = sizeofSockaddrInet6
		if b.gro {
			// The kernel sets Controllen to what it wrote: reset it.
			m.Hdr.Control = (*byte)(unsafe.Pointer(&b.rctrl[i]))
			m.Hdr.SetControllen(groCtrlWords * 8)
		} else {
			m.Hdr.Control = nil
			m.Hdr.Controllen = 0
		}
		m.Hdr.Flags = 0
		m.Len = 0
	}
	b.n, b.done, b.err = len(bufs), 0, nil
}

// prepareSend readies the datagrams bufs[i][offset:] to to[i] (at most
// BatchSize). A run of datagrams to the same address, all of the first
// one's length but the last, which may be shorter, becomes one GSO message:
// at most maxSegments datagrams and maxGSOPayload bytes, none empty, of a
// length up to maxSeg. Other datagrams are messages of their own; maxSeg 0
// turns GSO off. A destination of the wrong family is left out and
// recorded in b.err; it does not end a run.
func (b *batch) prepareSend(bufs [][]byte, to []netip.AddrPort, offset, family, maxSeg int) {
	b.n, b.done, b.sent, b.err = 0, 0, 0, nil
	b.niov, b.splitN, b.splitAt = 0, 0, 0
	b.ceiling, b.lowered = maxSeg, false
	b.msgsSent, b.gsoSent, b.gsoDgrams, b.refused, b.oversize = 0, 0, 0, 0, 0
	var (
		runTo  netip.AddrPort
		seg    int  // length of the run's first datagram
		total  int  // bytes in the run
		closed bool // no datagram may join the run
	)
	for i, buf := range bufs {
		p := buf[offset:]
		iov := &b.sendIovs[b.niov]
		if b.n > 0 && !closed && seg <= maxSeg && to[i] == runTo && len(p) <= seg && len(p) > 0 && total+len(p) <= maxGSOPayload {
			m := &b.msgs[b.n-1]
			if m.Hdr.Iovlen == 1 {
				b.ctrl[b.n-1].size = uint16(seg)
				m.Hdr.Control = (*byte)(unsafe.Pointer(&b.ctrl[b.n-1]))
				m.Hdr.SetControllen(unix.CmsgSpace(sizeofGSOSize))
			}
			m.Hdr.Iovlen++
			total += len(p)
			closed = len(p) < seg || m.Hdr.Iovlen == maxSegments
		} else {
			m := &b.msgs[b.n]
			m.Hdr.Namelen = encode(&b.names[b.n], family, to[i])
			if m.Hdr.Namelen == 0 {
				if b.err == nil {
					b.err = fmt.Errorf("datagram %d: cannot send to %v on an IPv4 socket", i, to[i])
				}
				continue
			}
			m.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[b.n]))
			m.Hdr.Iov = iov
			m.Hdr.Iovlen = 1
			m.Hdr.Control = nil
			m.Hdr.Controllen = 0
			b.n++
			runTo, seg, total, closed = to[i], len(p), len(p), len(p) == 0
		}
		iov.Base = unsafe.SliceData(p)
		iov.SetLen(len(p))
		b.niov++
	}
}

// release drops the references to the caller's buffers.
func (b *batch) release() {
	for i := range b.n {
		b.iovs[i][0].Base = nil
	}
	for i := range b.niov {
		b.sendIovs[i].Base = nil
	}
}

// recv runs recvmmsg once it has data; it returns false to wait for
// readability.
func (b *batch) recv(fd uintptr) bool {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(b.n), 0, 0, 0)
		switch errno {
		case 0:
			b.done = int(r)
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			b.err = errno
			return true
		}
	}
}

// sendmmsg sends msgs (not empty) and returns how many the kernel took. It
// is a variable so that tests can make it refuse GSO messages as a kernel
// would.
var sendmmsg = func(fd uintptr, msgs []unix.Mmsghdr) (int, unix.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	return int(r), errno
}

// refusesGSO reports whether errno, returned for a GSO message, says that
// the kernel will not segment for this socket: EIO when the route's device
// cannot offload the checksum (UDP_SEGMENT needs it), EINVAL for a segment
// size or count it does not take (or a socket that sends without
// checksums), ENOPROTOOPT or EOPNOTSUPP where it lacks UDP_SEGMENT.
func refusesGSO(errno unix.Errno) bool {
	switch errno {
	case unix.EIO, unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// send runs sendmmsg until every message was taken; it returns false to
// wait for writability and continues where it stopped when called again.
// sendmmsg reports an error only for the first message of a call; such a
// message is skipped so that one unreachable peer does not hold up the rest
// of the batch. A GSO message the kernel refuses (refusesGSO) or finds too
// long for the route's MTU (EMSGSIZE: the kernel would fragment a single
// datagram, but does not segment into fragments) is not skipped but sent
// again as one message per datagram, and so is every later GSO message of
// the batch that would fail alike, without trying it first.
func (b *batch) send(fd uintptr) bool {
	for b.done < b.n {
		if b.splitN > 0 {
			if !b.sendSplit(fd) {
				return false
			}
			b.splitN, b.splitAt = 0, 0
			b.done++
			continue
		}
		end := b.n
		if b.lowered {
			end = b.nextOverCeiling(b.done)
			if end == b.done {
				b.startSplit()
				continue
			}
		}
		r, errno := sendmmsg(fd, b.msgs[b.done:end])
		switch errno {
		case 0:
			for _, m := range b.msgs[b.done : b.done+r] {
				b.took(int(m.Hdr.Iovlen))
			}
			b.done += r
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			if b.msgs[b.done].Hdr.Iovlen > 1 && b.lower(errno) {
				b.startSplit()
				continue
			}
			if b.err == nil {
				b.err = errno
			}
			b.done++
		}
	}
	return true
}

// took counts a message of k datagrams that the kernel took.
func (b *batch) took(k int) {
	b.msgsSent++
	b.sent += k
	if k > 1 {
		b.gsoSent++
		b.gsoDgrams += k
	}
}

// lower lowers the ceiling after the kernel failed GSO message b.done with
// errno, if errno says that it will fail such messages again, and reports
// whether it did.
func (b *batch) lower(errno unix.Errno) bool {
	switch {
	case refusesGSO(errno):
		b.refused++
		b.ceiling = 0
	case errno == unix.EMSGSIZE:
		b.oversize++
		b.ceiling = min(b.ceiling, int(b.ctrl[b.done].size)-1)
	default:
		return false
	}
	b.lowered = true
	return true
}

// nextOverCeiling returns the index of the first GSO message from i on
// whose segment size is above the ceiling, or b.n.
func (b *batch) nextOverCeiling(i int) int {
	for ; i < b.n; i++ {
		if b.msgs[i].Hdr.Iovlen > 1 && int(b.ctrl[i].size) > b.ceiling {
			return i
		}
	}
	return b.n
}

// startSplit readies split to send the datagrams of message b.done one by
// one, to the same address and without a cmsg.
func (b *batch) startSplit() {
	m := &b.msgs[b.done].Hdr
	iovs := unsafe.Slice(m.Iov, m.Iovlen)
	for j := range iovs {
		s := &b.split[j]
		s.Hdr.Name, s.Hdr.Namelen = m.Name, m.Namelen
		s.Hdr.Iov = &iovs[j]
	}
	b.splitN, b.splitAt = len(iovs), 0
}

// sendSplit sends split as send sends msgs, without GSO; it returns false
// to wait for writability.
func (b *batch) sendSplit(fd uintptr) bool {
	for b.splitAt < b.splitN {
		r, errno := sendmmsg(fd, b.split[b.splitAt:b.splitN])
		switch errno {
		case 0:
			for range r {
				b.took(1)
			}
			b.splitAt += r
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			if b.err == nil {
				b.err = errno
			}
			b.splitAt++
		}
	}
	return true
}
