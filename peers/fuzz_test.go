package peers

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/taprouter/taprouter/link"
)

// decodeSets turns fuzz bytes into a sequence of desired sets: each set is
// a count byte and 4 bytes per peer (node, address, pod range, flags), drawn
// from small pools so that names, addresses and ranges collide often.
func decodeSets(b []byte) [][]Peer {
	var sets [][]Peer
	for len(b) > 0 {
		n := int(b[0] % 6)
		b = b[1:]
		var set []Peer
		for ; n > 0 && len(b) >= 4; n-- {
			node, addr, cidr, flags := b[0], b[1], b[2], b[3]
			b = b[4:]
			p := Peer{Node: []string{"", "node1", "a", "b", "c", "d", "e"}[node%7]}
			p.Addr = []netip.Addr{{}, local.Addr, netip.MustParseAddr("224.0.0.1"), netip.AddrFrom4([4]byte{10, 244, addr % 8, 5}), netip.AddrFrom4([4]byte{192, 168, 49, 10 + addr%5})}[min(addr>>5, 4)]
			bits := 22 + int(cidr%4)
			base := netip.AddrFrom4([4]byte{10, 244, (cidr >> 2) % 8, 0})
			c := netip.PrefixFrom(base, bits)
			if flags&1 == 0 {
				c = c.Masked()
			}
			p.PodCIDRs = []netip.Prefix{c}
			if flags&2 != 0 {
				p.PodCIDRs = append(p.PodCIDRs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, flags >> 4, 0}), 24))
			}
			if flags&0x10 != 0 { // holds underlay addresses
				p.PodCIDRs = append(p.PodCIDRs, netip.MustParsePrefix("192.168.49.0/28"))
			}
			if flags&0x20 != 0 { // link-local: the metadata service
				p.PodCIDRs = append(p.PodCIDRs, netip.MustParsePrefix("169.254.0.0/16"))
			}
			if flags&4 != 0 {
				p.PodCIDRs = nil
			}
			if flags&8 != 0 {
				p.Backend = []string{"vxlan", "direct"}[flags>>7]
			}
			if flags&0x40 != 0 {
				p.VTEPMAC = link.HardwareAddr{flags & 1, 1, 2, 3, 4, 5}
			}
			set = append(set, p)
		}
		sets = append(sets, set)
	}
	return sets
}

// FuzzApply: after any sequence of Apply calls the router holds exactly the
// reconciler's applied set, which is itself a valid set; every peer of the
// last desired set that Validate accepts is applied as given; nothing
// outside it is applied; node routes are exactly the applied pod ranges;
// and no ID belongs to two peers, nor changes while a node stays.
func FuzzApply(f *testing.F) {
	f.Add([]byte{2, 2, 0x63, 0, 0, 3, 0x64, 8, 2})
	f.Add([]byte{1, 2, 0x63, 0, 0, 1, 2, 0x63, 0, 4, 2, 2, 0x64, 4, 0, 3, 0x63, 0, 0})
	f.Add([]byte{3, 0, 0, 0, 0, 1, 0x20, 0, 1, 4, 0x63, 0, 0x40})
	f.Add([]byte{1, 2, 0x61, 6, 0})                 // address in its own pod range
	f.Add([]byte{1, 2, 0x80, 0x0a, 0x10})           // a range holding underlay addresses
	f.Add([]byte{1, 3, 0x80, 0x0a, 0x20})           // link-local range
	f.Add([]byte{2, 2, 0x80, 6, 0, 3, 0x61, 10, 0}) // address in another's range
	f.Fuzz(func(t *testing.T, b []byte) {
		r, fr, nr, _, _ := newTestReconciler(t)
		ids := map[string]uint32{}
		for _, desired := range decodeSets(b) {
			if _, err := r.Apply(desired); err != nil {
				t.Fatalf("Apply(%+v): %v", desired, err)
			}
			applied := r.Peers()
			// No applied pod range holds an underlay address (ours or a
			// peer's) or a link-local one; no peer address is in a pod
			// range (found by attack review).
			for _, p := range applied {
				for _, c := range p.PodCIDRs {
					if c.Contains(local.Addr) || c.Overlaps(netip.MustParsePrefix("169.254.0.0/16")) {
						t.Fatalf("applied %s: pod range %s holds our address or link-local", p.Node, c)
					}
					for _, q := range applied {
						if c.Contains(q.Addr) {
							t.Fatalf("applied %s: pod range %s holds %s's address %s", p.Node, c, q.Node, q.Addr)
						}
					}
				}
				if local.PodCIDRs[0].Contains(p.Addr) {
					t.Fatalf("applied %s: address %s in our pod range", p.Node, p.Addr)
				}
			}
			if _, errs := Validate(local, applied); len(errs) != 0 {
				t.Fatalf("applied set %+v is not valid: %v", applied, errs)
			}
			valid, _ := Validate(local, desired)
			names := map[string]bool{}
			for _, p := range desired {
				names[p.Node] = true
			}
			got := map[string]Peer{}
			for _, p := range applied {
				got[p.Node] = p
				if !names[p.Node] {
					t.Fatalf("%q applied, not in the desired set", p.Node)
				}
			}
			for _, p := range valid {
				a, ok := got[p.Node]
				p.ID = a.ID
				if !ok || !a.equal(p) {
					t.Fatalf("valid peer %+v applied as %+v (%v)", p, a, ok)
				}
			}
			if len(fr.peers) != len(applied) {
				t.Fatalf("router has %d peers, reconciler %d", len(fr.peers), len(applied))
			}
			seen := map[uint32]string{}
			routes := map[netip.Prefix]bool{}
			for _, p := range applied {
				tp := fr.peers[p.Node]
				if tp.Addr != p.Addr || !slices.Equal(tp.PodCIDRs, p.PodCIDRs) || tp.ID != p.ID {
					t.Fatalf("router's %+v differs from applied %+v", tp, p)
				}
				if o, dup := seen[p.ID]; dup {
					t.Fatalf("ID %#x is %q's and %q's", p.ID, o, p.Node)
				}
				seen[p.ID] = p.Node
				if old, ok := ids[p.Node]; ok && old != p.ID {
					t.Fatalf("%q's ID changed from %#x to %#x", p.Node, old, p.ID)
				}
				for _, c := range p.PodCIDRs {
					routes[c] = true
				}
			}
			for n := range ids {
				if _, ok := got[n]; !ok {
					delete(ids, n)
				}
			}
			for _, p := range applied {
				ids[p.Node] = p.ID
			}
			if len(routes) != len(nr.routes) {
				t.Fatalf("node routes %v, want %v", nr.routes, routes)
			}
			for c := range routes {
				if !nr.routes[c] {
					t.Fatalf("node routes %v, want %v", nr.routes, routes)
				}
			}
		}
	})
}

var _ Router = (*fakeRouter)(nil)
