package peers

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/tunnel"
)

// Router is the router side of the reconciler: the whole peer set, matched
// by node name (router.Router implements it).
type Router interface {
	// SetPeers makes peers the peer set: a node keeps its ID across
	// changes. It changes nothing if it fails.
	SetPeers(peers []tunnel.Peer) error
	// Peers returns the peers with their IDs.
	Peers() []tunnel.Peer
}

// NodeRoutes is the node namespace's routes to the peers' pod ranges,
// through the host port.
type NodeRoutes interface {
	// AddRoute routes prefix to the host port; an existing route to it is
	// replaced.
	AddRoute(prefix netip.Prefix) error
	// DelRoute removes the route to prefix; a missing one is no error.
	DelRoute(prefix netip.Prefix) error
}

// Result is what one Apply did.
type Result struct {
	Added, Changed, Removed []string // node names, sorted
	// Invalid are the refused peers of the desired set, each with why.
	Invalid []PeerError
	// Kept are the nodes whose new data was refused and whose last good
	// entry stays applied.
	Kept []string
}

// Reconciler applies desired peer sets to the router and the node routes.
// Its methods are safe for concurrent use; Apply calls are serialised.
type Reconciler struct {
	local  Local
	router Router
	routes NodeRoutes // nil: no node routes
	log    *zap.Logger

	mu      sync.Mutex
	applied map[string]Peer       // by node, as applied (without ID)
	routed  map[netip.Prefix]bool // node routes in place
}

// NewReconciler returns a reconciler with nothing applied. routes may be
// nil (no node routes); log nil means no logging.
func NewReconciler(local Local, r Router, routes NodeRoutes, log *zap.Logger) *Reconciler {
	if log == nil {
		log = zap.NewNop()
	}
	return &Reconciler{local: local, router: r, routes: routes, log: log, applied: map[string]Peer{}, routed: map[netip.Prefix]bool{}}
}

// Apply makes desired the peer set. It is idempotent and changes only what
// differs from the set applied before. A peer that fails Validate is
// reported in Result.Invalid; if it was applied before, its last good
// entry stays (Result.Kept), unless that now conflicts with a valid peer of
// desired, which then wins. A node missing from desired is removed.
//
// Order: node routes that go away are deleted first, then the router (which
// deletes FIB routes before tunnel peers and adds tunnel peers before FIB
// routes) gets the set, then the new node routes are added. The error is
// the router's (then nothing changed) or the node routes' (the router's
// change stands; the routes that failed are retried by the next Apply).
func (r *Reconciler) Apply(desired []Peer) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	valid, invalid := Validate(r.local, desired)
	res := Result{Invalid: invalid}
	next := make(map[string]Peer, len(valid))
	v := newValidator(r.local, len(desired))
	for _, p := range valid {
		v.take(p)
		next[p.Node] = p
	}
	for _, e := range invalid {
		old, ok := r.applied[e.Node]
		if !ok || next[e.Node].Node != "" {
			continue
		}
		if err := v.check(old); err != nil {
			r.log.Warn("peer refused; its last good entry conflicts with the new set and is removed", zap.String("node", e.Node), zap.Error(e.Err), zap.NamedError("conflict", err))
			continue
		}
		v.take(old)
		next[old.Node] = old
		res.Kept = append(res.Kept, old.Node)
		r.log.Warn("peer refused; keeping its last good entry", zap.String("node", e.Node), zap.Error(e.Err))
	}
	for _, e := range invalid {
		if _, had := r.applied[e.Node]; !had {
			r.log.Warn("peer refused", zap.Int("index", e.Index), zap.String("node", e.Node), zap.Error(e.Err))
		}
	}
	for node, p := range next {
		old, ok := r.applied[node]
		switch {
		case !ok:
			res.Added = append(res.Added, node)
		case !old.equal(p):
			res.Changed = append(res.Changed, node)
		}
	}
	for node := range r.applied {
		if _, ok := next[node]; !ok {
			res.Removed = append(res.Removed, node)
		}
	}
	slices.Sort(res.Added)
	slices.Sort(res.Changed)
	slices.Sort(res.Removed)
	slices.Sort(res.Kept)

	wantRoutes := map[netip.Prefix]bool{}
	for _, p := range next {
		for _, c := range p.PodCIDRs {
			wantRoutes[c] = true
		}
	}
	var errs []error
	if r.routes != nil {
		for c := range r.routed {
			if wantRoutes[c] {
				continue
			}
			if err := r.routes.DelRoute(c); err != nil {
				errs = append(errs, fmt.Errorf("node route %s: %w", c, err))
				continue
			}
			delete(r.routed, c)
		}
	}
	if len(res.Added)+len(res.Changed)+len(res.Removed) > 0 {
		tps := make([]tunnel.Peer, 0, len(next))
		for _, p := range next {
			tps = append(tps, tunnel.Peer{Node: p.Node, Addr: p.Addr, PodCIDRs: p.PodCIDRs, VTEPMAC: p.VTEPMAC})
		}
		if err := r.router.SetPeers(tps); err != nil {
			return Result{Invalid: invalid}, errors.Join(append(errs, fmt.Errorf("router: %w", err))...)
		}
		r.logChanges(res, next)
		r.applied = next
	}
	if r.routes != nil {
		for c := range wantRoutes {
			if r.routed[c] {
				continue
			}
			if err := r.routes.AddRoute(c); err != nil {
				errs = append(errs, fmt.Errorf("node route %s: %w", c, err))
				continue
			}
			r.routed[c] = true
		}
	}
	return res, errors.Join(errs...)
}

func (r *Reconciler) logChanges(res Result, next map[string]Peer) {
	for _, n := range res.Added {
		p := next[n]
		r.log.Info("peer added", zap.String("node", n), zap.Stringer("addr", p.Addr), zap.Any("podCIDRs", p.PodCIDRs), zap.String("backend", p.Backend))
	}
	for _, n := range res.Changed {
		p, o := next[n], r.applied[n]
		r.log.Info("peer changed", zap.String("node", n), zap.Stringer("addr", p.Addr), zap.Any("podCIDRs", p.PodCIDRs),
			zap.Stringer("oldAddr", o.Addr), zap.Any("oldPodCIDRs", o.PodCIDRs))
	}
	for _, n := range res.Removed {
		o := r.applied[n]
		r.log.Info("peer removed", zap.String("node", n), zap.Stringer("addr", o.Addr), zap.Any("podCIDRs", o.PodCIDRs))
	}
}

// Peers returns the applied peers sorted by node name, with the router's
// IDs.
func (r *Reconciler) Peers() []Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]uint32{}
	for _, p := range r.router.Peers() {
		ids[p.Node] = p.ID
	}
	out := make([]Peer, 0, len(r.applied))
	for _, p := range r.applied {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		p.ID = ids[p.Node]
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Node, b.Node) })
	return out
}
