package tunnel

import (
	"net/netip"
	"testing"
)

// TestPeerSetLookup: lookup finds a peer by its underlay address, IPv4
// (through the 4-byte-key map) or IPv6, also when asked with the
// IPv4-mapped form of an IPv4 address, keeps the first of two peers with
// one address, and finds no one else.
func TestPeerSetLookup(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.168.49.3"), netip.MustParseAddr("fd00::3")
	s := newPeerSet([]Peer{
		{ID: 1, Node: "b", Addr: v4},
		{ID: 2, Node: "c", Addr: v6},
		{ID: 3, Node: "dup", Addr: v4},
		{ID: 4, Node: "mapped", Addr: netip.MustParseAddr("::ffff:192.168.49.4")},
	})
	for _, c := range []struct {
		a    string
		id   uint32
		want bool
	}{
		{"192.168.49.3", 1, true},
		{"::ffff:192.168.49.3", 1, true},
		{"fd00::3", 2, true},
		{"192.168.49.4", 4, true}, // configured mapped, unmapped on the way in
		{"192.168.49.5", 0, false},
		{"fd00::5", 0, false},
		{"::ffff:192.168.49.5", 0, false},
	} {
		id, ok := s.lookup(netip.MustParseAddr(c.a))
		if id != c.id || ok != c.want {
			t.Errorf("lookup(%s) = %d, %v; want %d, %v", c.a, id, ok, c.id, c.want)
		}
	}
	if id, ok := s.lookup(netip.Addr{}); ok {
		t.Errorf("lookup of the zero Addr found peer %d", id)
	}
}
