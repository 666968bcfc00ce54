package e2e

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestJumboPodTracepath: a pod raises its eth0 MTU to 9000, above what its
// port's buffers take (sized from the pod MTU it was attached with). The
// TAP cuts its large frames to the buffer; the router answers them with
// "fragmentation needed" and the MTU it can forward, so tracepath converges
// to the path MTU, to a pod on the same node and through the tunnel.
// (Before, the cut frames were dropped as malformed and tracepath got no
// answer at all from the first hop.)
func TestJumboPodTracepath(t *testing.T) {
	requireDaemon(t)
	const backend = "vxlan"
	c := newCluster(t, testbed.Seed())
	d1 := startTaprouter(t, c, backend)["node1"]
	pa, pb, pc := c.Pod("pa"), c.Pod("pb"), c.Pod("pc")
	if _, err := pa.IP("link", "set", "eth0", "mtu", "9000"); err != nil {
		t.Fatal(err)
	}
	if l, err := pa.Link("eth0"); err != nil || l.MTU != 9000 {
		t.Fatalf("pa eth0: %+v %v, want MTU 9000", l, err)
	}
	podMTU := testbed.PodMTU(backend)
	for _, dst := range []*testbed.Pod{pb, pc} {
		t.Run(dst.Spec.Name, func(t *testing.T) {
			before := stats(t, d1)
			tp, err := pa.Tracepath(dst.Addr(), 6)
			if err != nil {
				t.Fatal(err)
			}
			if tp.PMTU != podMTU || !slices.Contains(tp.Hops, dst.Addr()) {
				t.Errorf("tracepath pa (MTU 9000) → %s: pmtu %d hops %v, want pmtu %d reaching %s:\n%s", dst.Spec.Name, tp.PMTU, tp.Hops, podMTU, dst.Addr(), tp.Output)
			}
			wantDelta(t, d1, before, "icmp_frag_needed", 1)
			wantDelta(t, d1, before, "drop_too_big", 1)
			if after := stats(t, d1); after["drop_malformed"] != before["drop_malformed"] {
				t.Errorf("drop_malformed %d → %d: cut frames counted as malformed", before["drop_malformed"], after["drop_malformed"])
			}
		})
	}
}

// TestForgedTunnelSources: anyone on the underlay can send a datagram as a
// peer node (vxlan carries no authentication). node1 delivers a packet from
// node2's address only if its inner source is in node2's pod range or is
// node2 itself, and only to its own pods; the rest is dropped and counted.
func TestForgedTunnelSources(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	d1 := startTaprouter(t, c, "vxlan")["node1"]
	node1, node2 := c.Node("node1"), c.Node("node2")
	pa, pb, pc := c.Pod("pa"), c.Pod("pb"), c.Pod("pc")
	mustPing(t, pc.Netns, pa.Addr(), 62)
	dst := netip.AddrPortFrom(node1.Addr, 8472)
	forge := func(src, to netip.Addr) []byte {
		return testbed.VXLANFrame(1, node1.VTEPMAC(), node2.VTEPMAC(), testbed.ICMPEcho(src, to, 64, 0x7e57, 1))
	}
	for _, tc := range []struct {
		name, counter string
		src, dst      netip.Addr
	}{
		{"local-pod-source", "drop_tunnel_spoofed", pb.Addr(), pa.Addr()},
		{"other-node-range", "drop_tunnel_spoofed", addr("10.244.7.7"), pa.Addr()},
		{"node1-itself", "drop_tunnel_spoofed", node1.Addr, pa.Addr()},
		{"unspecified", "drop_martian", addr("0.0.0.0"), pa.Addr()},
		{"loopback", "drop_martian", addr("127.0.0.1"), pa.Addr()},
		{"not-a-local-pod", "drop_tunnel_dst", pc.Addr(), addr("8.8.8.8")},
		{"to-node1", "drop_tunnel_dst", pc.Addr(), node1.Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := stats(t, d1)
			if err := node2.SendUDP(dst, forge(tc.src, tc.dst)); err != nil {
				t.Fatal(err)
			}
			wantDelta(t, d1, before, tc.counter, 1)
			if after := stats(t, d1); after["forwarded"] != before["forwarded"] {
				t.Errorf("forwarded %d → %d", before["forwarded"], after["forwarded"])
			}
		})
	}
	// From node2's pod range, and from node2 itself: delivered.
	for _, src := range []netip.Addr{pc.Addr(), node2.Addr} {
		before := stats(t, d1)
		if err := node2.SendUDP(dst, forge(src, pa.Addr())); err != nil {
			t.Fatal(err)
		}
		wantDelta(t, d1, before, "forwarded", 2) // the datagram, and pa's ICMP port unreachable back
	}
	mustPing(t, pa.Netns, pc.Addr(), 62)
}
