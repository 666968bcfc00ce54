package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestInteropFlannel runs taprouterd (vxlan) on node1 and the kernel's
// flannel-style vxlan on node2, and checks traffic in both directions.
func TestInteropFlannel(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	node1, node2 := c.Node("node1"), c.Node("node2")
	// node2 first: node1's config needs flannel.1's MAC as the peer's vtepMAC.
	if err := c.WireKernelFlannel(node2); err != nil {
		t.Fatal(err)
	}
	// node2's eth0 is a veth with every offload at its default: its vxlan
	// packets carry the pods' TCP checksums unfinished (CHECKSUM_PARTIAL),
	// and its TCP segmentation offload reaches taprouterd's UDP socket as
	// 64 KB vxlan super-datagrams (tx-udp_tnl-segmentation). taprouterd
	// completes the checksums and splits the super-packets (see package
	// tunnel).
	requireOffloads(t, node2, "tx-checksumming", "tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation")
	daemons := startTaprouter(t, c, "vxlan", node1)
	if got := daemons["node1"].Config.Peers[0].VTEPMAC; got != node2.FlannelMAC().String() {
		t.Fatalf("node1's peer vtepMAC %q, want flannel.1's %s", got, node2.FlannelMAC())
	}
	pa, pc := c.Pod("pa"), c.Pod("pc")

	t.Run("vxlan-on-the-wire", func(t *testing.T) {
		packets := captureOnePing(t, c.Bed, node2.Netns, "udp port 8472", pa, pc)
		var sources []string
		for _, p := range packets {
			vni, inner, ok := p.VXLAN()
			if !ok || vni != 1 || p.DstPort != 8472 || inner.Protocol != 1 {
				t.Errorf("underlay packet %s → %s:%d: vxlan %v VNI %d inner proto %d, want ICMP in VNI 1 to port 8472", p.Src, p.Dst, p.DstPort, ok, vni, inner.Protocol)
			}
			// Both spread flows over source ports (taprouter's 8
			// senders, the kernel's udp_flow_src_port): neither sends
			// from 8472, which flannel.1 and taprouter both accept.
			if p.SrcPort == 8472 {
				t.Errorf("underlay packet %s:%d → %s:%d: from the VXLAN port, want an ephemeral source port", p.Src, p.SrcPort, p.Dst, p.DstPort)
			}
			sources = append(sources, p.Src.String())
		}
		slices.Sort(sources)
		if want := []string{node1.Addr.String(), node2.Addr.String()}; !slices.Equal(sources, want) {
			t.Errorf("vxlan packets came from %v, want one from each node %v", sources, want)
		}
	})
	t.Run("ping/taprouter-to-kernel", func(t *testing.T) { mustPing(t, pa.Netns, pc.Addr(), 62) })
	t.Run("ping/kernel-to-taprouter", func(t *testing.T) { mustPing(t, pc.Netns, pa.Addr(), 62) })
	t.Run("iperf3/taprouter-to-kernel", func(t *testing.T) { testTransfer(t, c.Bed, pa, pc) })
	t.Run("iperf3/kernel-to-taprouter", func(t *testing.T) { testTransfer(t, c.Bed, pc, pa) })
	t.Run("checksums-completed-and-super-packets-split", func(t *testing.T) {
		// Every TCP segment of the kernel's iperf3 client crossed with a
		// partial checksum, most inside super-packets; that none would
		// without the fix is what the iperf3 subtest shows.
		checkOffloadCounters(t, daemons["node1"], false)
	})
}

// requireOffloads fails the test unless every named offload of node's eth0
// is on, as it is by default on a veth: the test is about what taprouterd
// receives then.
func requireOffloads(t *testing.T, node *testbed.ClusterNode, features ...string) {
	t.Helper()
	out, err := node.Run("ethtool", "-k", "eth0")
	if err != nil {
		t.Fatalf("ethtool -k: %v\n%s", err, out)
	}
	for _, f := range features {
		if !strings.Contains(out, "\n"+f+": on") {
			t.Fatalf("%s's eth0: %s is not on:\n%s", node.Spec.Name, f, out)
		}
	}
}

// checkOffloadCounters checks what a kernel peer with default offloads
// made d's tunnel do: complete partial checksums, and take its
// super-frames whole (whole: the direct backend, whose packet socket hands
// them on whole) or split its super-packets, each into more than one
// segment (vxlan); and drop nothing as oversize.
func checkOffloadCounters(t *testing.T, d *testbed.Daemon, whole bool) {
	t.Helper()
	s := stats(t, d)
	if s["tunnel_csum_completed"] == 0 {
		t.Error("tunnel_csum_completed = 0: the kernel peer's partial checksums never arrived (offloads off?)")
	}
	// The direct backend takes the kernel peer's TSO frames whole off the
	// underlay (tunnel_rx_whole) and hands them to the pod so; vxlan
	// splits the super-packets its socket receives.
	if whole {
		if s["tunnel_rx_whole"] == 0 || s["tunnel_gso_split"] != 0 {
			t.Errorf("tunnel_rx_whole = %d, tunnel_gso_split = %d: want super-frames taken whole, none split", s["tunnel_rx_whole"], s["tunnel_gso_split"])
		}
	} else if s["tunnel_gso_split"] == 0 || s["tunnel_gso_segments"] <= s["tunnel_gso_split"] {
		t.Errorf("tunnel_gso_split = %d, tunnel_gso_segments = %d: want super-packets, each split into several segments", s["tunnel_gso_split"], s["tunnel_gso_segments"])
	}
	if s["tunnel_drop_oversize"] != 0 || s["tunnel_drop_malformed"] != 0 {
		t.Errorf("tunnel_drop_oversize = %d, tunnel_drop_malformed = %d, want 0", s["tunnel_drop_oversize"], s["tunnel_drop_malformed"])
	}
	t.Logf("csum_completed %d, rx_whole %d, gso_split %d, gso_segments %d (%.1f per super-packet)", s["tunnel_csum_completed"], s["tunnel_rx_whole"], s["tunnel_gso_split"],
		s["tunnel_gso_segments"], float64(s["tunnel_gso_segments"])/float64(max(s["tunnel_gso_split"], 1)))
}

// TestCalicoGateway runs the vxlan backend with Calico's link-local gateway
// 169.254.1.1 on both nodes.
func TestCalicoGateway(t *testing.T) {
	requireDaemon(t)
	specs := testbed.Seed()
	for i := range specs {
		specs[i].Gateway = testbed.CalicoGateway
	}
	c := newCluster(t, specs)
	daemons := startTaprouter(t, c, "vxlan")
	pa, pb, pc := c.Pod("pa"), c.Pod("pb"), c.Pod("pc")

	mustPing(t, pa.Netns, pb.Addr(), 63)
	mustPing(t, pa.Netns, pc.Addr(), 62)
	nb, ok, err := pa.Neighbour("eth0", testbed.CalicoGateway)
	if err != nil || !ok || nb.MAC.IsZero() {
		t.Errorf("pa's neighbour entry for %s: %+v (present %v, %v), want one with a MAC", testbed.CalicoGateway, nb, ok, err)
	}
	testTraceroute(t, daemons["node1"], pa, pc.Addr(), []netip.Addr{testbed.CalicoGateway, c.Node("node2").Addr, pc.Addr()})
}
