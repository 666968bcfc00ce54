package tunnel

import (
	"net/netip"
	"sync"
)

// peerSet is an immutable snapshot of the peers, indexed both ways. Backends
// publish it through an atomic.Pointer so that Send and Recv never lock.
type peerSet struct {
	peers  []Peer
	byAddr map[netip.Addr]uint32 // underlay address → peer index (first wins)
}

func newPeerSet(peers []Peer) peerSet {
	s := peerSet{peers: make([]Peer, len(peers)), byAddr: make(map[netip.Addr]uint32, len(peers))}
	for i, p := range peers {
		p.Addr = p.Addr.Unmap()
		s.peers[i] = p
		if _, dup := s.byAddr[p.Addr]; !dup && p.Addr.IsValid() {
			s.byAddr[p.Addr] = uint32(i)
		}
	}
	return s
}

// lookup returns the index of the peer with underlay address a.
func (s *peerSet) lookup(a netip.Addr) (uint32, bool) {
	i, ok := s.byAddr[a.Unmap()]
	return i, ok
}

// batch is per-call scratch space for Send and Recv: the kept buffers and
// their underlay addresses. Batches are pooled so that concurrent callers
// each get their own without allocating in steady state.
type batch struct {
	bufs  [][]byte
	addrs []netip.AddrPort
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

func putBatch(b *batch) {
	clear(b.bufs[:cap(b.bufs)]) // do not pin the caller's buffers
	batchPool.Put(b)
}
