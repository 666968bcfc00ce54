package e2e

import (
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
