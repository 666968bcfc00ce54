package tunnel

import (
	"encoding/binary"
	"net/netip"
)

// PeerSlotBits is how many low bits of a peer ID are its slot: the index of
// the peer in the backends' tables. The bits above are the slot's
// generation, which the router bumps whenever it reuses a slot, so that an
// ID names one peer for as long as the peer lives and never another one.
const PeerSlotBits = 16

// MaxPeers is the number of slots: the most peers a tunnel holds at once.
const MaxPeers = 1 << PeerSlotBits

// PeerSlot returns the slot part of a peer ID.
func PeerSlot(id uint32) uint32 { return id & (MaxPeers - 1) }

// peerSet is an immutable snapshot of the peers in a slot table, indexed
// both ways. Backends publish it through an atomic.Pointer so that Send and
// Recv never lock.
type peerSet struct {
	// peers[s] is the peer in slot s if live[s]: its ID's slot is s.
	peers []Peer
	live  []bool
	// byAddr maps an underlay address to the ID of its peer (first wins).
	byAddr map[netip.Addr]uint32
	// byAddr4 is byAddr's IPv4 part keyed by the address as a uint32, for
	// lookup on every received datagram: a map with a 4-byte key takes the
	// runtime's fast path, which a netip.Addr key (24 bytes, hashed as
	// memory) does not; that was half of Recv's time besides the socket.
	byAddr4 map[uint32]uint32
}

// newPeerSet puts each peer in the slot of its ID; of two peers with one
// slot the first wins.
func newPeerSet(peers []Peer) peerSet {
	n := 0
	for _, p := range peers {
		n = max(n, int(PeerSlot(p.ID))+1)
	}
	s := peerSet{peers: make([]Peer, n), live: make([]bool, n), byAddr: make(map[netip.Addr]uint32, len(peers)), byAddr4: make(map[uint32]uint32, len(peers))}
	for _, p := range peers {
		slot := PeerSlot(p.ID)
		if s.live[slot] {
			continue
		}
		p.Addr = p.Addr.Unmap()
		s.peers[slot], s.live[slot] = p, true
		if _, dup := s.byAddr[p.Addr]; !dup && p.Addr.IsValid() {
			s.byAddr[p.Addr] = p.ID
			if p.Addr.Is4() {
				s.byAddr4[addr4(p.Addr)] = p.ID
			}
		}
	}
	return s
}

// slot returns the slot of the live peer with ID id, or ok false if there
// is none: the peer was removed, or its slot now holds another generation.
func (s *peerSet) slot(id uint32) (int, bool) {
	i := int(PeerSlot(id))
	if i >= len(s.peers) || !s.live[i] || s.peers[i].ID != id {
		return 0, false
	}
	return i, true
}

// lookup returns the ID of the peer with underlay address a.
func (s *peerSet) lookup(a netip.Addr) (uint32, bool) {
	if a = a.Unmap(); a.Is4() {
		id, ok := s.byAddr4[addr4(a)]
		return id, ok
	}
	id, ok := s.byAddr[a]
	return id, ok
}

// addr4 is the IPv4 address a as a uint32.
func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// owns reports whether the peer in slot i owns the destination of the IPv4
// packet pkt: its address is in one of the peer's PodCIDRs, or is the
// peer's own underlay address (an ICMP error about a packet the peer node
// sent from it). A peer with no
// PodCIDRs owns every destination (a tunnel used without a router). The
// router publishes a pod range's new owner to the tunnel before it moves
// the FIB route, so a packet routed just before the move, which names the
// old owner, is dropped here rather than sent to a node that no longer
// owns its destination (found by attack review).
func (s *peerSet) owns(i int, pkt []byte) bool {
	cidrs := s.peers[i].PodCIDRs
	if len(cidrs) == 0 {
		return true
	}
	if len(pkt) < 20 {
		return false
	}
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	if dst == s.peers[i].Addr {
		return true
	}
	for _, c := range cidrs {
		if c.Contains(dst) {
			return true
		}
	}
	return false
}
