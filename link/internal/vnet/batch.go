package vnet

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// Batched I/O: a packet socket receives up to a batch of frames with one
// recvmmsg(2) and sends a run of frames that go alone with one
// sendmmsg(2). A TAP cannot (a tun fd is not a socket: ENOTSOCK) and keeps
// one readv(2) or writev(2) per frame.

// BatchRecvFunc receives up to len(msgs) frames from fd with one system
// call (a packet socket's recvmmsg(2)) and returns how many it received
// and the errno: EAGAIN when none is ready, EINVAL for a frame taken off
// the queue that the kernel could not describe, as RecvFunc's. The Reader
// has set each message's iovecs as RecvFunc's iov (its own virtio header,
// the caller's buffer, an overflow slot behind it) and its Len to 0; the
// function owns their names and control buffers, and sets meta[i] from
// message i's control buffer (link.RxVLAN from PACKET_AUXDATA). The kernel
// sets msgs[i].Len to the bytes of frame i, header included.
type BatchRecvFunc func(fd uintptr, msgs []unix.Mmsghdr, meta []link.RxMeta) (n int, errno syscall.Errno)

// BatchSendFunc sends msgs (at least 2) to fd with one system call (a
// packet socket's sendmmsg(2)) and returns how many the kernel took; an
// errno only if it took none (the first message's error). Each message is
// a plain virtio header and one frame; names and control buffers are nil.
type BatchSendFunc func(fd uintptr, msgs []unix.Mmsghdr) (n int, errno syscall.Errno)

// slotLen is the size of a batch Reader's overflow slot: a super-frame of
// up to link.MaxLarge bytes behind up to MaxHeadroom bytes of headroom.
const slotLen = MaxHeadroom + link.MaxLarge

// recvBatch is a Reader's batch receive: per message a virtio header, the
// iovecs, the metadata and an overflow slot of slotLen bytes.
//
// Message i is received into the caller's buffer of the Read's slot
// base+i (the kernel writes a plain frame straight there), continued in
// overflow slot i from the caller's buffer's length on (behind the
// headroom largeOffset), so that a longer frame, a super-frame, arrives
// whole and can be made whole in the slot by copying its head in front.
// Messages are taken in order: a plain one is handed out where it is; at
// the first that is not (a super-frame, whose segments need the buffers
// of the messages behind it, or a frame dropped, which leaves a buffer
// empty), every message behind it is spilled: its head is copied into its
// slot, which then holds it whole, and it is pending. Pending messages
// are handed out (copied into the caller's buffers) before anything new is
// received: by this Read as far as the batch has room, else by the next.
type recvBatch struct {
	recv  BatchRecvFunc
	msgs  []unix.Mmsghdr
	iovs  [][3]unix.Iovec
	hdrs  [][HdrLen]byte
	meta  []link.RxMeta
	at    []int // where in its slot pending message i starts
	slots []byte

	pend, end int // messages pend to end-1 are pending
}

// NewBatchReader is NewReader for a socket that receives up to batch
// frames with one call of recv. It costs batch overflow slots of slotLen
// (65,728) bytes, 4.0 MiB for a batch of 64, where NewReader has one.
func NewBatchReader(conn syscall.RawConn, mtu, batch int, recv BatchRecvFunc) *Reader {
	b := &recvBatch{
		recv:  recv,
		msgs:  make([]unix.Mmsghdr, batch),
		iovs:  make([][3]unix.Iovec, batch),
		hdrs:  make([][HdrLen]byte, batch),
		meta:  make([]link.RxMeta, batch),
		at:    make([]int, batch),
		slots: make([]byte, batch*slotLen),
	}
	for i := range b.msgs {
		b.iovs[i][0].Base = &b.hdrs[i][0]
		b.iovs[i][0].SetLen(HdrLen)
		b.msgs[i].Hdr.Iov = &b.iovs[i][0]
	}
	r := &Reader{conn: conn, mtu: mtu, b: b}
	r.fn = r.doBatch
	return r
}

// slot is message i's overflow slot.
func (b *recvBatch) slot(i int) []byte { return b.slots[i*slotLen:][:slotLen] }

// drain hands out, as far as the batch has room, what earlier Reads left:
// the segments of the super-frame being cut, then the pending messages.
func (r *Reader) drain() {
	for r.n < len(r.bufs) && !r.held && !r.whole {
		if !r.seg.Done() {
			r.cut()
			continue
		}
		if r.b == nil || r.b.pend == r.b.end {
			return
		}
		r.takePending()
	}
}

// doBatch is do for a batch Reader: one call of recv per batch.
func (r *Reader) doBatch(fd uintptr) bool {
	b := r.b
	for dry := false; ; {
		r.drain()
		if r.n >= len(r.bufs) || r.held || r.whole || !r.seg.Done() || b.pend < b.end {
			return true
		}
		if dry {
			// The last call received fewer than asked: the queue ran
			// dry (or a frame failed, which the next call reports). No
			// call that would only say EAGAIN.
			return true
		}
		m := min(len(r.bufs)-r.n, len(b.msgs))
		r.prepareBatch(m)
		got, errno := b.recv(fd, b.msgs[:m], b.meta[:m])
		for i := range m {
			b.iovs[i][1].Base, b.iovs[i][2].Base = nil, nil // do not pin the caller's buffers
		}
		if errno != 0 {
			// EINVAL is one frame refused: recvmmsg fails for the first
			// message, or for a later one on the next call.
			retry, ret := r.failed(errno)
			if retry {
				continue
			}
			return ret
		}
		r.takeBatch(got)
		dry = got < m
	}
}

// prepareBatch readies messages 0 to m-1 for the buffers from slot r.n on.
func (r *Reader) prepareBatch(m int) {
	b := r.b
	off := r.largeOffset()
	for i := range m {
		p := r.bufs[r.n+i][r.offset:]
		iov := &b.iovs[i]
		iov[1].Base = unsafe.SliceData(p)
		iov[1].SetLen(len(p))
		rest := b.slot(i)[min(off+len(p), slotLen):]
		iov[2].Base = unsafe.SliceData(rest)
		iov[2].SetLen(len(rest))
		msg := &b.msgs[i]
		msg.Hdr.SetIovlen(3)
		if len(rest) == 0 {
			msg.Hdr.SetIovlen(2)
		}
		msg.Hdr.Flags = 0
		msg.Len = 0
	}
}

// takeBatch takes the got messages just received into the buffers from
// slot r.n on, in order (see recvBatch).
func (r *Reader) takeBatch(got int) {
	b := r.b
	base := r.n
	for i := range got {
		if r.n != base+i {
			r.spill(base, i, got) // a frame dropped before i
			return
		}
		size := int(b.msgs[i].Len) - HdrLen
		if size < 0 {
			r.dropped.Add(1)
			continue
		}
		h := decodeHeader(b.hdrs[i][:])
		p := r.bufs[base+i][r.offset:]
		if h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
			r.plain(h, p, size, b.meta[i])
			continue
		}
		// A super-frame: the messages behind it leave the buffers its
		// segments (or its dropping) may take, and it is made whole in
		// its slot.
		r.spill(base, i+1, got)
		off := r.largeOffset()
		slot := b.slot(i)
		size = min(size, slotLen-off)
		copy(slot[off:], p[:min(size, len(p))])
		r.super(h, slot, off, size, b.meta[i])
		return
	}
}

// spill makes messages from to got-1, received into the buffers from slot
// base+from on, pending: each one whole in its slot.
func (r *Reader) spill(base, from, got int) {
	b := r.b
	off := r.largeOffset()
	for i := from; i < got; i++ {
		b.at[i] = off
		if size := int(b.msgs[i].Len) - HdrLen; size > 0 {
			p := r.bufs[base+i][r.offset:]
			copy(b.slot(i)[off:], p[:min(size, len(p))])
		}
	}
	b.pend, b.end = from, got
}

// takePending hands out the first pending message, as takeBatch would
// have: a plain frame copied into the caller's buffer, a super-frame from
// its slot.
func (r *Reader) takePending() {
	b := r.b
	i := b.pend
	b.pend++
	size := int(b.msgs[i].Len) - HdrLen
	if size < 0 {
		r.dropped.Add(1)
		return
	}
	h := decodeHeader(b.hdrs[i][:])
	slot, at := b.slot(i), b.at[i]
	size = min(size, slotLen-at)
	if h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
		p := r.bufs[r.n][r.offset:]
		r.plain(h, p, copy(p, slot[at:at+size]), b.meta[i])
		return
	}
	off := r.largeOffset()
	if off != at {
		// Spilled by a Read with another headroom.
		size = copy(slot[off:], slot[at:at+size])
	}
	r.super(h, slot, off, size, b.meta[i])
}

// sendBatch is a Coalescer's batch send: a message per frame, a plain
// virtio header and the frame.
type sendBatch struct {
	send BatchSendFunc
	msgs []unix.Mmsghdr
	iovs [][2]unix.Iovec

	// The coalesced run found at runAt, of runK frames, while looking
	// for frames that go alone: do need not look again.
	runAt, runK int
}

// NewBatchCoalescer is NewCoalescer for a socket that sends up to batch
// frames that go alone (not coalesced, not super-frames) with one call of
// send.
func NewBatchCoalescer(conn syscall.RawConn, onReject fdio.OnReject, batch int, send BatchSendFunc) *Coalescer {
	c := NewCoalescer(conn, onReject)
	b := &sendBatch{send: send, msgs: make([]unix.Mmsghdr, batch), iovs: make([][2]unix.Iovec, batch), runAt: -1}
	for i := range b.msgs {
		b.iovs[i][0].Base = &c.plain[0]
		b.iovs[i][0].SetLen(HdrLen)
		b.msgs[i].Hdr.Iov = &b.iovs[i][0]
		b.msgs[i].Hdr.SetIovlen(2)
	}
	c.b = b
	return c
}

// coalesceAt is runLen for the frames from c.next on.
func (c *Coalescer) coalesceAt() int {
	if c.b != nil && c.b.runAt == c.next {
		return c.b.runK
	}
	return c.runLen(c.bufs[c.next : c.next+c.plainRun()])
}

// sendAlone sends the frames from c.next on that go alone, frame c.next
// first (do found that it does), with one call of c.b.send, if there are
// at least two. It reports whether it did, and the errno for frame c.next
// if the kernel took none; what it took is counted and passed.
func (c *Coalescer) sendAlone(fd uintptr) (bool, syscall.Errno) {
	b := c.b
	m := 1
	for end := min(len(c.bufs), c.next+len(b.msgs)); c.next+m < end; m++ {
		j := c.next + m
		if c.gso != nil && c.gso[j].Type != link.GSONone {
			break
		}
		save := c.next
		c.next = j
		k := c.runLen(c.bufs[j : j+c.plainRun()])
		c.next = save
		if k > 1 {
			b.runAt, b.runK = j, k
			break
		}
	}
	if m < 2 {
		return false, 0
	}
	for i := range m {
		f := c.bufs[c.next+i][c.offset:]
		b.iovs[i][1].Base = unsafe.SliceData(f)
		b.iovs[i][1].SetLen(len(f))
	}
	n, errno := b.send(fd, b.msgs[:m])
	if c.retryEINVAL(errno, 0) {
		n, errno = b.send(fd, b.msgs[:m])
	}
	for i := range m {
		b.iovs[i][1].Base = nil
	}
	if errno == 0 {
		c.sent += n
		c.next += n
	}
	return true, errno
}

// retryEINVAL reports whether a packet socket's write that failed with
// errno on its try'th attempt is to be made again: once after EINVAL. A
// packet socket's EINVAL need not be the frame's: when recvmmsg(2) fails
// for a message behind others it received (a frame the kernel could not
// describe in a virtio header, see Reader.do), the kernel keeps the error
// in the socket for its next call, and the next send takes it instead
// (sock_alloc_send_pskb reports a pending socket error before it looks at
// the frame), which would turn coalescing off for good, or skip a frame.
// Nothing was sent; a second EINVAL is the frame's own.
func (c *Coalescer) retryEINVAL(errno syscall.Errno, try int) bool {
	return errno == unix.EINVAL && try == 0 && c.b != nil
}
