package tunnel

import (
	"errors"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// received returns what a read put into slot i of a batch: buf (the
// slot's buffer from the read offset on) cut to size, or, when size
// exceeds it, the whole datagram or frame that r (a link.LargeReader) kept,
// with large set. It returns nil, counted as drop_oversize, if the
// transport reported a long one but does not keep it.
func received(buf []byte, size int, r link.LargeReader, i int, t *Stats) (d []byte, large bool) {
	if size <= len(buf) {
		return buf[:size], false
	}
	if r != nil {
		d = r.Large(i)
	}
	if d == nil {
		t.DropOversize++
	}
	return d, true
}

// recvQueue holds, in order, what Recv could not hand out from the batch it
// read: the segments of super-packets (a kernel sender's segmentation
// offload, passed on unsplit by a veth; see the package doc) and, behind
// the first super-packet of a batch, the packets read after it, so that a
// flow's packets keep their order. Recv hands out queued packets, into the
// caller's buffers, before it reads the underlay again: a super-packet
// stays in the transport's own buffer (link.LargeReader) until it is
// split, and that buffer is reused by the next read. So the queue holds at
// most one batch, and its storage (the items and the copies of the packets
// behind a super-packet) is allocated at its first use and reused.
//
// A recvQueue is used under its backend's recvMu.
type recvQueue struct {
	mtu    int // inner MTU segments are cut to (0: as large as the buffers allow)
	items  []queued
	head   int      // next item to hand out
	copies [][]byte // copies[i]: storage for item i when it is a copied packet
}

// queued is one item: a super-packet being split (seg) or a copied packet
// (pkt, in copies).
type queued struct {
	seg  gso.Segmenter
	pkt  []byte
	peer uint32
}

// active reports whether the queue holds items to hand out.
func (q *recvQueue) active() bool { return q.head < len(q.items) }

// reset empties q; its storage stays for the next use.
func (q *recvQueue) reset() {
	for i := range q.items {
		q.items[i] = queued{}
	}
	q.items, q.head = q.items[:0], 0
}

// pushSuper queues the super-packet pkt, an inner IPv4 packet longer than
// the receive buffer room, from peer, to be split into segments of at most
// q.mtu and room bytes. A packet that cannot be split is counted: a
// malformed header as drop_malformed, anything else (an IP fragment, not
// TCP, UDP GSO included) as drop_oversize, as before splitting existed.
func (q *recvQueue) pushSuper(pkt []byte, peer uint32, room, batch int, t *Stats) {
	mtu := room
	if q.mtu > 0 {
		mtu = min(q.mtu, room)
	}
	it := q.next(batch)
	if err := it.seg.Reset(pkt, mtu); err != nil {
		q.items = q.items[:len(q.items)-1]
		if errors.Is(err, gso.ErrMalformed) {
			t.DropMalformed++
		} else {
			t.DropOversize++
		}
		return
	}
	it.peer = peer
	t.GSOSplit++
}

// pushCopy queues a copy of pkt, a delivered inner packet from peer that
// was read behind a super-packet.
func (q *recvQueue) pushCopy(pkt []byte, peer uint32, batch int) {
	i := len(q.items)
	it := q.next(batch)
	if cap(q.copies[i]) < len(pkt) {
		q.copies[i] = make([]byte, max(len(pkt), 2048))
	}
	it.pkt = append(q.copies[i][:0], pkt...)
	it.peer = peer
}

// next appends an item and returns it, growing the storage to a batch of
// batch items on first use.
func (q *recvQueue) next(batch int) *queued {
	if cap(q.items) < batch {
		items := make([]queued, len(q.items), batch)
		copy(items, q.items)
		q.items = items
		q.copies = append(q.copies, make([][]byte, batch-len(q.copies))...)
	}
	q.items = q.items[:len(q.items)+1]
	return &q.items[len(q.items)-1]
}

// drain hands queued packets out into bufs[i][start:], as Recv does, and
// returns how many buffers it filled. Segments and copies are counted as
// delivered (rx_packets, rx_bytes), segments also in gso_segments. A
// segment or copy that cannot fit the buffer (the
// caller's buffers shrank) is dropped as drop_oversize.
func (q *recvQueue) drain(bufs [][]byte, sizes, starts []int, peers []uint32, start int, t *Stats) int {
	n := 0
	for n < len(bufs) && q.active() {
		it := &q.items[q.head]
		dst := bufs[n][start:]
		size := 0
		if it.pkt != nil {
			if size = copy(dst, it.pkt); size < len(it.pkt) {
				size = 0
				t.DropOversize++
			} else {
				t.accept(size)
			}
			q.head++
		} else {
			if size = it.seg.Next(dst); size == 0 {
				t.DropOversize++ // the rest of it
				it.seg = gso.Segmenter{}
			} else {
				t.GSOSegments++
				t.accept(size)
			}
			if it.seg.Done() {
				q.head++
			}
		}
		if size == 0 {
			continue
		}
		sizes[n], starts[n], peers[n] = size, start, it.peer
		n++
	}
	if !q.active() {
		q.reset()
	}
	return n
}

// place takes pkt, a checked inner packet from peer that Recv read into
// one slot of the batch, and reports whether Recv delivers it in place. If
// not, it is queued: a super-packet (large: longer than the slot's room,
// kept by the transport), or any packet behind a queued one.
func (q *recvQueue) place(pkt []byte, peer uint32, large bool, room, batch int, t *Stats) bool {
	switch {
	case large:
		q.pushSuper(pkt, peer, room, batch, t)
	case q.active():
		q.pushCopy(pkt, peer, batch)
	default:
		t.accept(len(pkt))
		return true
	}
	return false
}

// fill ends a Recv that read n slots, of which the ones from first on (-1:
// none) were queued or dropped: it hands out queued packets into the
// buffers from first on and returns the batch length to report.
func (q *recvQueue) fill(n, first int, bufs [][]byte, sizes, starts []int, peers []uint32, start int, t *Stats) int {
	if first < 0 || !q.active() {
		return n
	}
	k := q.drain(bufs[first:], sizes[first:], starts[first:], peers[first:], start, t)
	return max(n, first+k)
}
