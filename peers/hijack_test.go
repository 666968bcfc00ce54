package peers

import (
	"net/netip"
	"strings"
	"testing"
)

// A hostile or broken Node object must not make this node route away
// what is not a pod range: its own underlay, another node's underlay
// address, link-local (the cloud metadata service 169.254.169.254),
// multicast or loopback. The node routes of such a range (dev host port,
// replacing what was there) would hijack the node's own traffic to it, and
// a peer whose underlay address is in a pod range would have tunnel
// packets for it delivered to a pod. (found by attack review)
func TestValidateRefusesHijackingRanges(t *testing.T) {
	withLAN := local
	withLAN.Reserved = []netip.Prefix{p4("192.168.49.0/24")}
	for _, tc := range []struct {
		name  string
		local Local
		ps    []Peer // the last one is the one refused
		want  string
	}{
		{"range holds our underlay address", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("192.168.49.0/24")}}}, "holds this node's address"},
		{"range holds its own address", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("172.16.0.0/24")}}}, "holds its own address"},
		{"range holds an earlier peer's address", local, []Peer{peer2, {Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("192.168.49.3/32")}}}, `holds node "node2"'s address`},
		{"address in an earlier peer's range", local, []Peer{peer2, {Node: "x", Addr: a4("10.244.1.7"), PodCIDRs: []netip.Prefix{p4("10.250.0.0/24")}}}, `in node "node2"'s pod range`},
		{"address in our range", local, []Peer{{Node: "x", Addr: a4("10.244.0.5"), PodCIDRs: []netip.Prefix{p4("10.250.0.0/24")}}}, "in this node's pod range"},
		{"address in its own range", local, []Peer{{Node: "x", Addr: a4("10.250.0.5"), PodCIDRs: []netip.Prefix{p4("10.250.0.0/24")}}}, "holds its own address"},
		{"link-local range (metadata service)", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("169.254.0.0/16")}}}, "not unicast"},
		{"metadata address alone", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("169.254.169.254/32")}}}, "not unicast"},
		{"half the internet, multicast inside", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("128.0.0.0/1")}}}, "not unicast"},
		{"loopback", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("127.0.0.0/8")}}}, "not unicast"},
		{"this network", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("0.0.0.0/8")}}}, "not unicast"},
		{"limited broadcast", local, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("255.255.255.255/32")}}}, "not unicast"},
		{"the underlay's gateway half", withLAN, []Peer{{Node: "x", Addr: a4("172.16.0.9"), PodCIDRs: []netip.Prefix{p4("192.168.49.128/25")}}}, "overlaps reserved 192.168.49.0/24"},
	} {
		valid, errs := Validate(tc.local, tc.ps)
		last := len(tc.ps) - 1
		if len(valid) != last || len(errs) != 1 || errs[0].Index != last || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%s: valid %v, errors %v; want the last refused with %q", tc.name, valid, errs, tc.want)
		}
	}
	// What stays valid: ranges near, not holding, the addresses.
	ok := []Peer{peer2, peer3, {Node: "x", Addr: a4("192.168.49.5"), PodCIDRs: []netip.Prefix{p4("192.168.50.0/24"), p4("100.64.0.0/24")}}}
	if valid, errs := Validate(withLAN, ok); len(valid) != 3 || len(errs) != 0 {
		t.Errorf("valid set refused: %v", errs)
	}
}
