package tunnel

import (
	"net/netip"
	"runtime"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
)

// batch is per-call scratch space for Send and Recv: the kept buffers and
// their underlay addresses, (direct Recv only, see metaFor) the frames'
// receive metadata and (vxlan and udp Send with several senders only, see
// spreadFor) the grouping by sender.
//
// Concurrent callers each need their own, without allocating: batches live
// in a fixed array of slots, each taken by a compare-and-swap and given
// back by a store, so a call allocates only the first time a slot grows to
// its batch size. (A sync.Pool would not do: every garbage collection
// empties it, and under the race detector it drops items at random.) Only
// when more callers run at once than there are slots does one get a batch
// of its own, which is garbage afterwards.
type batch struct {
	bufs   [][]byte
	addrs  []netip.AddrPort
	meta   []link.RxMeta
	gso    []link.GSO // direct SendGSO only: per kept buffer
	spread *spread    // made at first use
	slot   *batchSlot // where b lives, or nil for an overflow batch
}

// batchSlot is a batch and whether it is taken, padded to 128 bytes (two
// cache lines, which CPUs prefetch together) so that callers on different
// CPUs do not contend.
type batchSlot struct {
	taken atomic.Bool
	b     batch
	_     [128 - 8 - 4*24 - 2*8]byte
}

// batchSlots has two slots per CPU: enough for the router's goroutines
// (one per port and the tunnel's, at most GOMAXPROCS running at a time)
// with room for ones preempted while they hold a batch.
var batchSlots = newBatchSlots(2 * runtime.GOMAXPROCS(0))

func newBatchSlots(n int) []batchSlot {
	s := make([]batchSlot, max(n, 8))
	for i := range s {
		s[i].b.slot = &s[i]
	}
	return s
}

// getBatch returns an empty batch with room for n buffers and n addresses.
// The caller gives it back with putBatch.
func getBatch(n int) *batch {
	b := takeBatch()
	if cap(b.addrs) < n {
		b.bufs = make([][]byte, 0, n)
		b.addrs = make([]netip.AddrPort, n)
	}
	b.bufs = b.bufs[:0]
	b.addrs = b.addrs[:n]
	b.gso = b.gso[:0]
	return b
}

// takeBatch takes the first free slot's batch, or makes one if every slot
// is taken.
func takeBatch() *batch {
	for i := range batchSlots {
		s := &batchSlots[i]
		if !s.taken.Load() && s.taken.CompareAndSwap(false, true) {
			return &s.b
		}
	}
	return new(batch)
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
	if b.slot != nil {
		b.slot.taken.Store(false)
	}
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

// countSentGSO counts bufs, described by gso, as sent: their segments in
// TxPackets (returned), their inner bytes in TxBytes.
func countSentGSO(bufs [][]byte, gso []link.GSO, innerOffset int, t *Stats) int {
	n := 0
	for i, buf := range bufs {
		t.TxBytes += uint64(len(buf) - innerOffset)
		n += link.Segments(buf[innerOffset:], gso[i])
	}
	t.TxPackets += uint64(n)
	return n
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
