package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// transferSize is what each iperf3 transfer of TestBackends sends: iperf3's
// "1G" is 2^30 bytes.
const (
	transferSize  = "1G"
	transferBytes = 1 << 30
)

// backendTopology is the seed topology plus, on node1, pod pm whose MTU is
// 1500 whatever the backend, to provoke frag-needed on tunnelled backends.
func backendTopology() []testbed.NodeSpec {
	specs := testbed.Seed()
	specs[0].Pods = append(specs[0].Pods, testbed.PodSpec{Name: "pm", IP: addr("10.244.0.9"), MTU: 1500})
	return specs
}

// TestBackends runs the pod-to-pod checks on each backend: two taprouterd
// nodes, pods pa and pb on node1, pc on node2.
func TestBackends(t *testing.T) {
	requireDaemon(t)
	for _, backend := range testbed.Backends {
		t.Run(backend, func(t *testing.T) { testBackend(t, backend) })
	}
}

func testBackend(t *testing.T, backend string) {
	c := newCluster(t, backendTopology())
	daemons := startTaprouter(t, c, backend)
	node1, node2 := c.Node("node1"), c.Node("node2")
	d1 := daemons["node1"]
	pa, pb, pc, pm := c.Pod("pa"), c.Pod("pb"), c.Pod("pc"), c.Pod("pm")
	gw1 := node1.Spec.Gateway
	podMTU := testbed.PodMTU(backend)

	t.Run("pod-interfaces", func(t *testing.T) {
		ports, err := d1.Ports()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*testbed.Pod{pa, pb, pm} {
			l, err := p.Link("eth0")
			if err != nil {
				t.Fatal(err)
			}
			wantMTU := podMTU
			if p.Spec.MTU != 0 {
				wantMTU = p.Spec.MTU
			}
			if l.MTU != wantMTU || !l.Up {
				t.Errorf("%s eth0: MTU %d up %v, want MTU %d and up", p.Spec.Name, l.MTU, l.Up, wantMTU)
			}
			i := slices.IndexFunc(ports, func(rp testbed.RouterPort) bool { return rp.Name == p.Spec.Name })
			if i < 0 {
				t.Errorf("GET /v1/ports has no port %s: %+v", p.Spec.Name, ports)
				continue
			}
			if rp := ports[i]; rp.IP != p.Addr().String() || rp.MTU != wantMTU || rp.MAC != l.MAC.String() {
				t.Errorf("GET /v1/ports %s = %+v, want ip %s mtu %d mac %s (the pod's eth0)", p.Spec.Name, rp, p.Addr(), wantMTU, l.MAC)
			}
		}
		if ok, err := node1.HasLink("taprouter0"); err != nil || !ok {
			t.Errorf("node1 has no host port taprouter0 (%v)", err)
		}
	})

	t.Run("routes", func(t *testing.T) {
		routes, err := d1.Routes()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(routes, func(r testbed.RouterRoute) bool { return r.Prefix == node2.Spec.PodCIDR.String() })
		if i < 0 || !strings.Contains(routes[i].Nexthop, "node2") {
			t.Errorf("GET /v1/routes has no route for %s via node2: %+v", node2.Spec.PodCIDR, routes)
		}
	})

	t.Run("ping/gateway", func(t *testing.T) {
		before := stats(t, d1)
		r, err := pa.Ping(gw1, testbed.PingOptions{Count: 3, Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Received != 3 {
			t.Fatalf("ping gateway %s: %d/3 replies:\n%s", gw1, r.Received, r.Output)
		}
		wantDelta(t, d1, before, "icmp_echo_replies", 3)
	})
	// 5 echo requests and 5 replies cross node1's router, and node2's too
	// for a cross-node ping; ARP is not counted as forwarded.
	t.Run("ping/same-node", func(t *testing.T) {
		before := stats(t, d1)
		mustPing(t, pa.Netns, pb.Addr(), 63)
		wantDelta(t, d1, before, "forwarded", 10)
	})
	t.Run("ping/cross-node", func(t *testing.T) {
		d2 := daemons["node2"]
		for _, p := range [][2]*testbed.Pod{{pa, pc}, {pc, pb}} {
			before1, before2 := stats(t, d1), stats(t, d2)
			mustPing(t, p[0].Netns, p[1].Addr(), 62)
			wantDelta(t, d1, before1, "forwarded", 10)
			wantDelta(t, d2, before2, "forwarded", 10)
		}
	})

	t.Run("arp", func(t *testing.T) { testARP(t, c.Bed, d1, pa, pb) })
	t.Run("underlay", func(t *testing.T) { testUnderlay(t, c, backend) })
	t.Run("no-snat", func(t *testing.T) { testNoSNAT(t, c, pa, pc) })

	t.Run("traceroute/same-node", func(t *testing.T) {
		testTraceroute(t, d1, pa, pb.Addr(), []netip.Addr{gw1, pb.Addr()})
	})
	t.Run("traceroute/cross-node", func(t *testing.T) {
		testTraceroute(t, d1, pa, pc.Addr(), []netip.Addr{gw1, node2.Addr, pc.Addr()})
	})

	t.Run("tracepath/pmtu", func(t *testing.T) {
		tp, err := pa.Tracepath(pc.Addr(), 6)
		if err != nil {
			t.Fatal(err)
		}
		if tp.PMTU != podMTU || !slices.Contains(tp.Hops, pc.Addr()) {
			t.Errorf("tracepath pa → pc: pmtu %d hops %v, want pmtu %d reaching %s:\n%s", tp.PMTU, tp.Hops, podMTU, pc.Addr(), tp.Output)
		}
	})
	if podMTU < testbed.UnderlayMTU {
		t.Run("tracepath/frag-needed", func(t *testing.T) {
			before := stats(t, d1)
			tp, err := pm.Tracepath(pc.Addr(), 6)
			if err != nil {
				t.Fatal(err)
			}
			if tp.PMTU != podMTU || !slices.Contains(tp.Hops, pc.Addr()) {
				t.Errorf("tracepath pm (MTU 1500) → pc: pmtu %d hops %v, want pmtu %d from the router's frag-needed:\n%s", tp.PMTU, tp.Hops, podMTU, tp.Output)
			}
			// One probe of 1500 bytes is answered; tracepath then probes at
			// the path MTU.
			wantDelta(t, d1, before, "icmp_frag_needed", 1)
		})
	}

	t.Run("iperf3/same-node", func(t *testing.T) {
		before := stats(t, d1)
		testTransfer(t, c.Bed, pa, pb)
		after := stats(t, d1)
		// pa's super-frames reach pb's TAP whole: one read, one write.
		read, written := after["tap_superframes_read_whole"]-before["tap_superframes_read_whole"], after["tap_superframes_written_whole"]-before["tap_superframes_written_whole"]
		if read == 0 || written == 0 {
			t.Errorf("taprouterd on %s: %d super-frames read whole, %d written whole during pa → pb, want some of each", d1.Node.Name, read, written)
		}
		if got := after["tap_superframes_write_cut"] - before["tap_superframes_write_cut"]; got != 0 {
			t.Errorf("taprouterd on %s: tap_superframes_write_cut grew by %d, want 0 (the kernel takes GSO writes)", d1.Node.Name, got)
		}
		t.Logf("pa → pb: %d super-frames read whole, %d written whole", read, written)
	})
	t.Run("iperf3/cross-node", func(t *testing.T) {
		d2 := daemons["node2"]
		before, before2 := stats(t, d1), stats(t, d2)
		testTransfer(t, c.Bed, pa, pc)
		testOffloadsUsed(t, d1, before, pa)
		if backend != "direct" {
			return
		}
		// The packet socket moves them whole both ways: node1 writes pa's
		// super-frames onto the underlay veth as they are, node2 reads
		// them so and writes them whole to pc's TAP.
		after, after2 := stats(t, d1), stats(t, d2)
		tx, rx := after["tunnel_tx_whole"]-before["tunnel_tx_whole"], after2["tunnel_rx_whole"]-before2["tunnel_rx_whole"]
		toPod := after2["tap_superframes_written_whole"] - before2["tap_superframes_written_whole"]
		if tx == 0 || rx == 0 || toPod == 0 {
			t.Errorf("direct pa → pc: node1 wrote %d super-frames whole to the underlay, node2 read %d whole and wrote %d whole to pc, want some of each", tx, rx, toPod)
		}
		for _, k := range []string{"tunnel_tx_whole_cut", "tap_superframes_write_cut"} {
			if got := after[k] - before[k] + after2[k] - before2[k]; got != 0 {
				t.Errorf("direct pa → pc: %s grew by %d, want 0 (the kernel takes GSO writes)", k, got)
			}
		}
		t.Logf("direct pa → pc: %d super-frames whole onto the underlay, %d whole off it, %d whole to pc", tx, rx, toPod)
	})

	t.Run("spoofed-source", func(t *testing.T) { testSpoofed(t, d1, pb, pc) })
	t.Run("unreachable", func(t *testing.T) {
		before := stats(t, d1)
		unrouted := addr("10.244.0.77") // inside node1's podCIDR, no pod
		r, err := pa.Ping(unrouted, testbed.PingOptions{Count: 3, Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Received != 0 || len(r.ICMPErrors) != 3 {
			t.Fatalf("ping %s: %d replies and ICMP errors %q, want none and 3 unreachables from %s:\n%s", unrouted, r.Received, r.ICMPErrors, gw1, r.Output)
		}
		for _, e := range r.ICMPErrors {
			if !strings.HasPrefix(e, "From "+gw1.String()+" ") || !strings.Contains(e, "Unreachable") {
				t.Errorf("ICMP error %q, want Destination Host/Net Unreachable from %s", e, gw1)
			}
		}
		wantDelta(t, d1, before, "icmp_unreachable", 3)
	})
}

// testARP checks both neighbour tables: the pod's entry for its gateway and
// the router's entry for the pod, and that the router really uses the MAC
// it answered ARP with.
func testARP(t *testing.T, bed *testbed.Bed, d *testbed.Daemon, pa, pb *testbed.Pod) {
	gw := pa.Node.Spec.Gateway
	capture, err := bed.StartCapture(pa.Netns, "eth0", "icmp", 2)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := pa.Ping(pb.Addr(), testbed.PingOptions{Count: 1}); err != nil || r.Received != 1 {
		t.Fatalf("ping pa → pb: %v\n%s", err, r.Output)
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}

	nb, ok, err := pa.Neighbour("eth0", gw)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || nb.MAC.IsZero() || !slices.Contains([]string{"REACHABLE", "STALE", "DELAY"}, nb.State) {
		t.Fatalf("pa's neighbour entry for gateway %s: %+v (present %v), want a MAC in state REACHABLE, STALE or DELAY", gw, nb, ok)
	}
	paLink, err := pa.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if nb.MAC == paLink.MAC || nb.MAC[0]&1 != 0 {
		t.Errorf("gateway MAC %s: want a unicast MAC other than the pod's own %s", nb.MAC, paLink.MAC)
	}
	if len(packets) != 2 {
		t.Fatalf("captured %d ICMP packets in pa, want the echo request and reply", len(packets))
	}
	for _, p := range packets {
		routerMAC, podMAC := p.SrcMAC, p.DstMAC
		if p.ICMPType == 8 { // the request leaves the pod
			routerMAC, podMAC = p.DstMAC, p.SrcMAC
		}
		if routerMAC != nb.MAC || podMAC != paLink.MAC {
			t.Errorf("ICMP type %d frame %s → %s, want it between pa %s and the gateway MAC %s", p.ICMPType, p.SrcMAC, p.DstMAC, paLink.MAC, nb.MAC)
		}
	}
	t.Logf("pa: %s lladdr %s %s", gw, nb.MAC, nb.State)

	neighbours, err := d.Neighbours()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(neighbours, func(n testbed.RouterNeighbour) bool { return n.IP == pa.Addr().String() })
	if i < 0 {
		t.Fatalf("GET /v1/neighbours has no entry for pa %s: %+v", pa.Addr(), neighbours)
	}
	if n := neighbours[i]; n.Port != "pa" || n.MAC != paLink.MAC.String() || n.State == "" {
		t.Errorf("router neighbour %+v, want port pa, MAC %s (pa's eth0) and a state", n, paLink.MAC)
	}
}

// testUnderlay captures a ping pa → pc on node2's underlay interface and
// checks the backend's encapsulation.
func testUnderlay(t *testing.T, c *testbed.Cluster, backend string) {
	node1, node2 := c.Node("node1"), c.Node("node2")
	pa, pc := c.Pod("pa"), c.Pod("pc")
	filter := map[string]string{
		"vxlan":  "udp port 8472",
		"udp":    "udp port 8285",
		"direct": fmt.Sprintf("icmp and host %s", pa.Addr()),
	}[backend]
	packets := captureOnePing(t, c.Bed, node2.Netns, filter, pa, pc)
	n1eth, err := node1.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	n2eth, err := node2.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packets {
		var inner testbed.Packet
		var ok bool
		switch backend {
		case "vxlan":
			var vni uint32
			vni, inner, ok = p.VXLAN()
			if !ok || vni != 1 || p.DstPort != 8472 {
				t.Errorf("underlay packet %s → %s:%d: vxlan %v VNI %d, want VNI 1 to port 8472", p.Src, p.Dst, p.DstPort, ok, vni)
			}
		case "udp":
			inner, ok = p.IPinUDP()
			if !ok || p.DstPort != 8285 {
				t.Errorf("underlay packet %s → %s:%d: IP-in-UDP %v, want an IPv4 packet to port 8285", p.Src, p.Dst, p.DstPort, ok)
			}
		case "direct":
			inner = p
			wantSrc, wantDst := n1eth.MAC, n2eth.MAC
			if p.Src == pc.Addr() {
				wantSrc, wantDst = n2eth.MAC, n1eth.MAC
			}
			if p.SrcMAC != wantSrc || p.DstMAC != wantDst {
				t.Errorf("direct frame %s → %s: MACs %s → %s, want node eth0 MACs %s → %s", p.Src, p.Dst, p.SrcMAC, p.DstMAC, wantSrc, wantDst)
			}
		}
		if backend != "direct" && !(p.Src == node1.Addr && p.Dst == node2.Addr || p.Src == node2.Addr && p.Dst == node1.Addr) {
			t.Errorf("outer packet %s → %s, want between the nodes' underlay addresses", p.Src, p.Dst)
		}
		if inner.Protocol != 1 || !(inner.Src == pa.Addr() && inner.Dst == pc.Addr() || inner.Src == pc.Addr() && inner.Dst == pa.Addr()) || inner.TTL != 63 {
			t.Errorf("inner packet %s → %s proto %d TTL %d, want ICMP between pa and pc with TTL 63 (one router hop)", inner.Src, inner.Dst, inner.Protocol, inner.TTL)
		}
	}
}

// testNoSNAT checks that the receiving pod sees the sender's pod address.
func testNoSNAT(t *testing.T, c *testbed.Cluster, from, to *testbed.Pod) {
	capture, err := c.Bed.StartCapture(to.Netns, "eth0", "icmp[icmptype] == icmp-echo", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := from.Ping(to.Addr(), testbed.PingOptions{Count: 1}); err != nil || r.Received != 1 {
		t.Fatalf("ping: %v\n%s", err, r.Output)
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 1 || packets[0].Src != from.Addr() || packets[0].TTL != 62 {
		t.Fatalf("%s received %+v, want one echo request from %s with TTL 62", to.Spec.Name, packets, from.Addr())
	}
}

func testTraceroute(t *testing.T, d *testbed.Daemon, from *testbed.Pod, to netip.Addr, want []netip.Addr) {
	before := stats(t, d)
	hops, out, err := from.Traceroute(to, 6)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hops, want) {
		t.Errorf("traceroute %s → %s: hops %v, want %v:\n%s", from.Spec.Name, to, hops, want, out)
	}
	// traceroute -q 1 -N 1: one probe per hop, one after the other; only
	// the first hop's expires on d's router.
	wantDelta(t, d, before, "icmp_time_exceeded", 1)
}

func testTransfer(t *testing.T, bed *testbed.Bed, from, to *testbed.Pod) {
	r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Bytes: transferSize})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTransfer(transferBytes); err != nil {
		t.Errorf("iperf3 %s → %s: %v", from.Spec.Name, to.Spec.Name, err)
	}
	t.Logf("iperf3 %s → %s: sent %d bytes, receiver counted %d in %.1f s, %.2f Gbit/s, %d retransmits",
		from.Spec.Name, to.Spec.Name, r.BytesSent, r.BytesReceived, r.Seconds, r.BitsPerSecond/1e9, r.Retransmits)
}

// testSpoofed gives pod a second address the router does not know and pings
// from it: the router must drop the packets and count them.
func testSpoofed(t *testing.T, d *testbed.Daemon, pod, to *testbed.Pod) {
	spoofed := addr("10.244.0.99")
	// A pinned gateway entry keeps pod from sending ARP from the spoofed
	// address while it pings (which the router would count as spoofed too).
	gw := pod.Node.Spec.Gateway
	nb, ok, err := pod.Neighbour("eth0", gw)
	if err != nil || !ok {
		t.Fatalf("%s has no neighbour entry for its gateway %s (%v)", pod.Spec.Name, gw, err)
	}
	if _, err := pod.Netns.IP("neigh", "replace", gw.String(), "lladdr", nb.MAC.String(), "dev", "eth0", "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	if _, err := pod.Netns.IP("addr", "add", spoofed.String()+"/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	before := stats(t, d)
	r, err := pod.Ping(to.Addr(), testbed.PingOptions{Count: 3, Interval: 100 * time.Millisecond, Source: spoofed})
	if err != nil {
		t.Fatal(err)
	}
	if r.Received != 0 {
		t.Errorf("ping from spoofed source %s: %d replies, want 0:\n%s", spoofed, r.Received, r.Output)
	}
	wantDelta(t, d, before, "drop_spoofed", 3)
	if _, err := pod.Netns.IP("addr", "del", spoofed.String()+"/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := pod.Netns.IP("neigh", "del", gw.String(), "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	mustPing(t, pod.Netns, to.Addr(), 62)
}

// testOffloadsUsed checks that pod's eth0 offers TSO and checksum offload
// (taprouterd's default --tap-offload) and that the transfer just made
// from pod reached d's router as TCP super-frames, read whole, none
// dropped.
func testOffloadsUsed(t *testing.T, d *testbed.Daemon, before map[string]uint64, pod *testbed.Pod) {
	t.Helper()
	out, err := pod.Run("ethtool", "-k", "eth0")
	if err != nil {
		t.Fatalf("ethtool -k eth0 in %s: %v\n%s", pod.Spec.Name, err, out)
	}
	for _, f := range []string{"tx-checksumming: on", "tcp-segmentation-offload: on"} {
		if !strings.Contains(out, f) {
			t.Errorf("%s eth0: ethtool -k has no %q:\n%s", pod.Spec.Name, f, out)
		}
	}
	after := stats(t, d)
	frames := after["tap_superframes_read_whole"] - before["tap_superframes_read_whole"]
	if frames == 0 {
		t.Errorf("taprouterd on %s: %d super-frames read whole during the transfer, want some", d.Node.Name, frames)
	}
	if got := after["drop_tap_offload"] - before["drop_tap_offload"]; got != 0 {
		t.Errorf("taprouterd on %s: drop_tap_offload grew by %d, want 0", d.Node.Name, got)
	}
	t.Logf("%s → router: %d super-frames read whole", pod.Spec.Name, frames)
}
