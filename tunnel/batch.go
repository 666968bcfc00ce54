package tunnel

import (
	"net/netip"
	"sync"

	"github.com/taprouter/taprouter/link"
)

// batch is per-call scratch space for Send and Recv: the kept buffers and
// their underlay addresses, and (direct Recv only, see metaFor) the frames'
// receive metadata. Batches are pooled so that concurrent callers
// each get their own without allocating in steady state.
type batch struct {
	bufs  [][]byte
	addrs []netip.AddrPort
	meta  []link.RxMeta
}

var batchPool = sync.Pool{New: func() any { return new(batch) }}

// getBatch returns an empty batch with room for n buffers and n addresses.
func getBatch(n int) *batch {
	b := batchPool.Get().(*batch)
	if cap(b.addrs) < n {
		b.bufs = make([][]byte, 0, n)
		b.addrs = make([]netip.AddrPort, n)
	}
	b.bufs = b.bufs[:0]
	b.addrs = b.addrs[:n]
	return b
}

// metaFor returns b's metadata slice with room for n frames, zeroed.
func (b *batch) metaFor(n int) []link.RxMeta {
	if cap(b.meta) < n {
		b.meta = make([]link.RxMeta, n)
	}
	b.meta = b.meta[:n]
	clear(b.meta)
	return b.meta
}

func putBatch(b *batch) {
	clear(b.bufs) // do not pin the caller's buffers (the rest is already clear)
	batchPool.Put(b)
}

// sendBatch writes the kept buffers of b, starting at writeOffset, to their
// addresses and counts the result in t. innerOffset is where the inner packets
// start, for byte counts.
func sendBatch(conn link.DatagramConn, b *batch, innerOffset, writeOffset int, t *Stats) (int, error) {
	if len(b.bufs) == 0 {
		return 0, nil
	}
	n, err := conn.WriteTo(b.bufs, b.addrs[:len(b.bufs)], writeOffset)
	countSent(b.bufs, n, innerOffset, t)
	return n, err
}

// countSent counts n of bufs as sent and the rest as tx errors. Writers
// report how many were sent, not which, so the bytes of the first n are
// counted: exact unless the underlay failed part of a batch.
func countSent(bufs [][]byte, n, innerOffset int, t *Stats) {
	for _, buf := range bufs[:n] {
		t.TxBytes += uint64(len(buf) - innerOffset)
	}
	t.TxPackets += uint64(n)
	t.TxErrors += uint64(len(bufs) - n)
}
