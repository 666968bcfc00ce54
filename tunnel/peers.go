package tunnel

import "net/netip"

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
