package router

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/tunnel"
)

// peerTable is the router's record of the peer nodes, under Router.mu.
//
// Each peer has a stable ID (tunnel.Peer.ID): its slot in the tunnel's slot
// table and the slot's generation, ID = slot | generation<<PeerSlotBits. A
// slot is reused only with the next generation, so an ID a packet carries
// (from a FIB lookup made before the peer was removed) names that peer or
// none: the tunnel drops it rather than send it to the slot's new peer.
// Generation 0 is never used, so no peer has the zero ID.
type peerTable struct {
	byNode map[string]tunnel.Peer // with ID, Addr unmapped, PodCIDRs masked
	gen    []uint16               // per slot: the generation of its last ID
	free   []uint32               // slots no peer holds
}

// peerAddr is what the tunnel ingress knows of the peer in one slot besides
// its routes: its ID and its underlay address, a source it may use (ICMP
// errors from a taprouter peer, traffic from a kernel host-gw node).
type peerAddr struct {
	id   uint32
	addr netip.Addr
}

// alloc returns a new ID in a free slot.
func (t *peerTable) alloc() (uint32, error) {
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if len(t.gen) >= tunnel.MaxPeers {
			return 0, fmt.Errorf("router: more than %d peers", tunnel.MaxPeers)
		}
		slot = uint32(len(t.gen))
		t.gen = append(t.gen, 0)
	}
	t.gen[slot]++
	if t.gen[slot] == 0 {
		t.gen[slot] = 1
	}
	return slot | uint32(t.gen[slot])<<tunnel.PeerSlotBits, nil
}

// Peers returns the peers with their IDs, sorted by node name.
func (r *Router) Peers() []tunnel.Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]tunnel.Peer, 0, len(r.peerTab.byNode))
	for _, p := range r.peerTab.byNode {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b tunnel.Peer) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// SetPeers makes peers the whole peer set, matched to the current one by
// node name (the IDs given are ignored): a new node gets a new ID, a node
// whose address, VTEP MAC or pod ranges changed keeps its ID, a node
// missing from peers is removed. Nothing changes if peers is invalid (see
// checkPeers).
//
// The change is published so that no packet goes to a node that does not
// own its destination: first the FIB routes that go away are deleted,
// then the tunnel gets the new peer set, then the new routes are inserted.
// A packet routed before to a removed peer is dropped by the tunnel (its
// ID is gone); a pod range that moves to another peer is rerouted in one
// step, and a packet routed to the old owner just before is dropped by the
// tunnel, whose peer set already says the old owner no longer has the
// range (tunnel: a peer only gets packets for its pod ranges or its own
// address).
func (r *Router) SetPeers(peers []tunnel.Peer) error {
	r.peerMu.Lock()
	defer r.peerMu.Unlock()
	return r.setPeers(peers)
}

// setPeers is SetPeers; callers hold r.peerMu.
func (r *Router) setPeers(peers []tunnel.Peer) error {
	if r.tunnel == nil {
		if len(peers) > 0 {
			return errors.New("router: peers need a tunnel")
		}
		return nil
	}
	want, err := r.checkPeers(peers)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make(map[string]tunnel.Peer, len(want))
	var added []tunnel.Peer
	for _, p := range want {
		if old, ok := r.peerTab.byNode[p.Node]; ok {
			p.ID = old.ID
			next[p.Node] = p
			continue
		}
		id, err := r.peerTab.alloc()
		if err != nil {
			for _, a := range added { // give the slots back, unused
				r.peerTab.free = append(r.peerTab.free, tunnel.PeerSlot(a.ID))
			}
			return err
		}
		p.ID = id
		next[p.Node] = p
		added = append(added, p)
	}
	r.publishPeers(next)
	for _, p := range added {
		r.log.Info("peer added", zap.String("node", p.Node), zap.Uint32("id", p.ID), zap.Stringer("addr", p.Addr), zap.Any("podCIDRs", p.PodCIDRs))
	}
	return nil
}

// UpsertPeer adds the peer p.Node, or changes it keeping its ID, and
// returns its ID. The other peers stay.
func (r *Router) UpsertPeer(p tunnel.Peer) (uint32, error) {
	r.peerMu.Lock() // read, change, set: one at a time (found by attack review)
	defer r.peerMu.Unlock()
	ps := r.Peers()
	i := slices.IndexFunc(ps, func(q tunnel.Peer) bool { return q.Node == p.Node })
	if i >= 0 {
		ps[i] = p
	} else {
		ps = append(ps, p)
	}
	if err := r.setPeers(ps); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peerTab.byNode[p.Node].ID, nil
}

// RemovePeer removes the peer node: its routes, then its tunnel peer.
func (r *Router) RemovePeer(node string) error {
	r.peerMu.Lock()
	defer r.peerMu.Unlock()
	ps := r.Peers()
	i := slices.IndexFunc(ps, func(q tunnel.Peer) bool { return q.Node == node })
	if i < 0 {
		return fmt.Errorf("router: no peer %q", node)
	}
	return r.setPeers(slices.Delete(ps, i, i+1))
}

// checkPeers returns peers normalised (addresses unmapped, pod ranges
// masked), or why the router cannot take them.
func (r *Router) checkPeers(peers []tunnel.Peer) ([]tunnel.Peer, error) {
	out := make([]tunnel.Peer, len(peers))
	nodes := make(map[string]bool, len(peers))
	owner := make(map[netip.Prefix]string)
	for i, p := range peers {
		p.Addr = p.Addr.Unmap()
		switch {
		case p.Node == "":
			return nil, fmt.Errorf("router: peer %d has no node name", i)
		case nodes[p.Node]:
			return nil, fmt.Errorf("router: peer %q named twice", p.Node)
		case !p.Addr.Is4():
			return nil, fmt.Errorf("router: peer %q: address %v is not IPv4", p.Node, p.Addr)
		}
		nodes[p.Node] = true
		cidrs := make([]netip.Prefix, 0, len(p.PodCIDRs))
		for _, c := range p.PodCIDRs {
			if !c.IsValid() || !c.Addr().Is4() {
				return nil, fmt.Errorf("router: peer %q: pod range %v is not IPv4", p.Node, c)
			}
			c = c.Masked()
			if c.Overlaps(r.cfg.PodCIDR) {
				return nil, fmt.Errorf("router: peer %q: pod range %s overlaps this node's %s", p.Node, c, r.cfg.PodCIDR)
			}
			if o, dup := owner[c]; dup {
				return nil, fmt.Errorf("router: pod range %s is both %q's and %q's", c, o, p.Node)
			}
			owner[c] = p.Node
			cidrs = append(cidrs, c)
		}
		p.PodCIDRs = cidrs
		out[i] = p
	}
	return out, nil
}

// publishPeers makes next (every peer with its ID) the peer set, in the
// order SetPeers describes, and frees the slots of the peers gone.
// Callers hold r.mu.
func (r *Router) publishPeers(next map[string]tunnel.Peer) {
	old := r.peerTab.byNode
	// The routes to keep or add, by prefix.
	routes := make(map[netip.Prefix]uint32)
	for _, p := range next {
		for _, c := range p.PodCIDRs {
			routes[c] = p.ID
		}
	}
	var stale []netip.Prefix
	for _, p := range old {
		for _, c := range p.PodCIDRs {
			if _, keep := routes[c]; !keep {
				stale = append(stale, c)
			}
		}
	}
	if len(stale) > 0 {
		r.fib.Update(func(tx *fib.Txn) {
			for _, c := range stale {
				tx.Delete(c)
			}
		})
	}
	list := make([]tunnel.Peer, 0, len(next))
	for _, p := range next {
		list = append(list, p)
	}
	// The ingress's view of addresses: before the tunnel for new peers
	// (their first packets pass), and it holds the removed ones' no more.
	addrs := make([]peerAddr, len(r.peerTab.gen))
	for _, p := range list {
		addrs[tunnel.PeerSlot(p.ID)] = peerAddr{id: p.ID, addr: p.Addr}
	}
	r.peerAddrs.Store(&addrs)
	r.tunnel.SetPeers(list)
	r.fib.Update(func(tx *fib.Txn) {
		for c, id := range routes {
			nh := fib.NextHop{Kind: fib.Peer, Peer: id}
			if cur, ok := tx.Get(c); !ok || cur != nh {
				tx.Insert(c, nh)
			}
		}
	})
	for node, p := range old {
		n, ok := next[node]
		switch {
		case !ok:
			r.peerTab.free = append(r.peerTab.free, tunnel.PeerSlot(p.ID))
			r.log.Info("peer removed", zap.String("node", node), zap.Uint32("id", p.ID), zap.Stringer("addr", p.Addr))
		case n.Addr != p.Addr || n.VTEPMAC != p.VTEPMAC || !slices.Equal(n.PodCIDRs, p.PodCIDRs):
			r.log.Info("peer changed", zap.String("node", node), zap.Uint32("id", p.ID), zap.Stringer("addr", n.Addr), zap.Any("podCIDRs", n.PodCIDRs))
		}
	}
	r.peerTab.byNode = next
}

// isPeerAddr reports whether src is the underlay address of the peer with
// ID id. It takes no lock.
func (r *Router) isPeerAddr(id uint32, src netip.Addr) bool {
	as := *r.peerAddrs.Load()
	slot := tunnel.PeerSlot(id)
	return int(slot) < len(as) && as[slot].id == id && as[slot].addr == src
}
