package udp

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

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
// UDP GRO (receive: setsockopt UDP_GRO, then a UDP_GRO cmsg with the segment
// size) and GSO (send: a UDP_SEGMENT cmsg) would add a control buffer per
// message here, and a split/coalesce step around recv/send.
type batch struct {
	msgs  [BatchSize]unix.Mmsghdr
	iovs  [BatchSize][2]unix.Iovec
	names [BatchSize]sockaddr

	overflow []byte            // receive only: BatchSize slots of link.MaxLarge bytes
	large    [BatchSize][]byte // receive only: datagram i of the last read whole, if it overflowed

	fn   func(fd uintptr) bool
	n    int   // messages prepared
	done int   // messages the kernel has taken (sent or failed) or filled
	sent int   // messages sent (send only)
	err  error // first error
}

func newRecvBatch() *batch {
	b := &batch{overflow: make([]byte, BatchSize*link.MaxLarge)}
	b.fn = b.recv
	b.link()
	return b
}

func newSendBatch() *batch {
	b := &batch{}
	b.fn = b.send
	b.link()
	return b
}

// link points every message header at its iovec.
func (b *batch) link() {
	for i := range b.msgs {
		b.msgs[i].Hdr.Iov = &b.iovs[i][0]
		b.msgs[i].Hdr.Iovlen = 1
	}
}

// setBuf points message i's iovec at p.
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
		m.Hdr.Flags = 0
		m.Len = 0
	}
	b.n, b.done, b.err = len(bufs), 0, nil
}

// prepareSend readies one message per datagram bufs[i][offset:] to to[i]. A
// destination of the wrong family is left out and recorded in b.err.
func (b *batch) prepareSend(bufs [][]byte, to []netip.AddrPort, offset, family int) {
	b.n, b.done, b.sent, b.err = 0, 0, 0, nil
	for i, buf := range bufs {
		m := &b.msgs[b.n]
		m.Hdr.Namelen = encode(&b.names[b.n], family, to[i])
		if m.Hdr.Namelen == 0 {
			if b.err == nil {
				b.err = fmt.Errorf("datagram %d: cannot send to %v on an IPv4 socket", i, to[i])
			}
			continue
		}
		m.Hdr.Name = (*byte)(unsafe.Pointer(&b.names[b.n]))
		b.setBuf(b.n, buf[offset:])
		b.n++
	}
}

// release drops the references to the caller's buffers.
func (b *batch) release() {
	for i := range b.n {
		b.iovs[i][0].Base = nil
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

// send runs sendmmsg until every message was taken. sendmmsg reports an
// error only for the first message of a call; such a message is skipped so
// that one unreachable peer does not hold up the rest of the batch.
func (b *batch) send(fd uintptr) bool {
	for b.done < b.n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[b.done])), uintptr(b.n-b.done), 0, 0, 0)
		switch errno {
		case 0:
			b.done += int(r)
			b.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			if b.err == nil {
				b.err = errno
			}
			b.done++
		}
	}
	return true
}
