package testbed

import (
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests run the kernel reference topologies, which need no taprouterd:
// they prove that the test bed builds working networks and that its tool
// wrappers parse what the tools really print.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"ip", "bridge", "ping", "iperf3", "traceroute", "tracepath", "tcpdump", "ss", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
}

func newBed(t *testing.T) *Bed {
	t.Helper()
	b, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs:\n%s", b.Logs())
		}
		if err := b.Close(); err != nil {
			t.Errorf("close bed: %v", err)
		}
	})
	return b
}

func newCluster(t *testing.T, specs []NodeSpec) *Cluster {
	t.Helper()
	c, err := newBed(t).AddCluster(specs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func ping(t *testing.T, from *Pod, to netip.Addr, wantTTL int) PingResult {
	t.Helper()
	r, err := from.Ping(to, PingOptions{Count: 3, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := r.TTL()
	if r.Received != r.Transmitted || r.Transmitted != 3 || err != nil || ttl != wantTTL {
		t.Fatalf("%s → %s: received %d/%d, TTL %d (%v), want 3/3 with TTL %d:\n%s", from.Spec.Name, to, r.Received, r.Transmitted, ttl, err, wantTTL, r.Output)
	}
	if r.RTTAvg <= 0 || r.RTTAvg > time.Second {
		t.Errorf("%s → %s: implausible average RTT %v", from.Spec.Name, to, r.RTTAvg)
	}
	return r
}

func TestKernelPTP(t *testing.T) {
	requireRoot(t)
	c := newCluster(t, Seed())
	if err := c.WireKernelPTP(); err != nil {
		t.Fatal(err)
	}
	pa, pb, pc := c.Pod("pa"), c.Pod("pb"), c.Pod("pc")

	ping(t, pa, pb.Addr(), 63)
	ping(t, pa, pc.Addr(), 62)
	ping(t, pc, pa.Addr(), 62)

	hops, out, err := pa.Traceroute(pc.Addr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{addr("10.244.0.1"), addr("192.168.49.3"), pc.Addr()}; !slices.Equal(hops, want) {
		t.Errorf("traceroute hops %v, want %v:\n%s", hops, want, out)
	}
	tp, err := pa.Tracepath(pc.Addr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if tp.PMTU != 1500 || !slices.Contains(tp.Hops, pc.Addr()) {
		t.Errorf("tracepath pmtu %d hops %v, want 1500 reaching %s:\n%s", tp.PMTU, tp.Hops, pc.Addr(), tp.Output)
	}

	// The pod's ARP entry for the gateway is the host end of its veth.
	host, err := c.Node("node1").Link("vethpa")
	if err != nil {
		t.Fatal(err)
	}
	nb, ok, err := pa.Neighbour("eth0", addr("10.244.0.1"))
	if err != nil || !ok || nb.MAC != host.MAC {
		t.Errorf("pa's neighbour 10.244.0.1 = %+v (found %v, %v), want MAC %s", nb, ok, err, host.MAC)
	}

	r, err := c.Bed.Iperf(pa.Netns, pc.Netns, pc.Addr(), IperfOptions{Bytes: "100M"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTransfer(100 << 20); err != nil || r.BitsPerSecond <= 0 {
		t.Errorf("iperf3 pa → pc: %+v: %v", r, err)
	}

	// Two UDP clients at once, each sending 100 datagrams of 64 bytes
	// (-n 6400 -l 64) at 1 Mbit/s. The servers stop counting when the end
	// of the test arrives on the control connection, which can overtake
	// the last datagrams (as with TCP, InFlightAllowance), so what they
	// received is not exact; that it is the bytes they counted, 64 each,
	// is.
	r, err = c.Bed.Iperf(pa.Netns, pc.Netns, pc.Addr(), IperfOptions{UDP: true, Clients: 2, Bytes: "6400", Length: 64, Bitrate: "1M"})
	if err != nil {
		t.Fatal(err)
	}
	if r.PacketsSent != 200 || r.BytesSent != 12800 || r.PacketsReceived == 0 || r.PacketsReceived > 200 || r.BytesReceived != 64*r.PacketsReceived {
		t.Errorf("2 iperf3 UDP clients pa → pc: %+v, want 200 datagrams of 64 bytes sent, and 1 to 200 of them, 64 bytes each, received", r)
	}
}

func TestKernelFlannel(t *testing.T) {
	requireRoot(t)
	specs := Seed()
	specs[0].Pods = append(specs[0].Pods, PodSpec{Name: "pm", IP: addr("10.244.0.9"), MTU: 1500})
	c := newCluster(t, specs)
	if err := c.WireKernelFlannel(); err != nil {
		t.Fatal(err)
	}
	pa, pc, pm := c.Pod("pa"), c.Pod("pc"), c.Pod("pm")
	node2 := c.Node("node2")

	capture, err := c.Bed.StartCapture(node2.Netns, "eth0", "udp port 8472", 2)
	if err != nil {
		t.Fatal(err)
	}
	ping(t, pa, pc.Addr(), 62)
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 2 {
		t.Fatalf("captured %d vxlan packets, want 2", len(packets))
	}
	for _, p := range packets {
		vni, inner, ok := p.VXLAN()
		if !ok || vni != 1 || p.DstPort != 8472 {
			t.Errorf("underlay packet %+v: vxlan %v vni %d, want vni 1 to port 8472", p, ok, vni)
		}
		if inner.Protocol != 1 || !slices.Contains([]netip.Addr{pa.Addr(), pc.Addr()}, inner.Src) {
			t.Errorf("inner packet %+v, want ICMP between pa and pc", inner)
		}
	}

	hops, out, err := pa.Traceroute(pc.Addr(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{addr("10.244.0.1"), addr("10.244.1.0"), pc.Addr()}; !slices.Equal(hops, want) {
		t.Errorf("traceroute hops %v, want %v:\n%s", hops, want, out)
	}
	for _, from := range []*Pod{pa, pm} {
		// pa's own MTU is 1450; pm's is 1500, so the node must answer
		// frag-needed with flannel.1's 1450.
		tp, err := from.Tracepath(pc.Addr(), 5)
		if err != nil {
			t.Fatal(err)
		}
		if tp.PMTU != 1450 {
			t.Errorf("tracepath %s → pc: pmtu %d, want 1450:\n%s", from.Spec.Name, tp.PMTU, tp.Output)
		}
	}
	if got := c.Node("node1").FlannelMAC(); got.IsZero() || c.Node("node1").VTEPMAC() != got {
		t.Errorf("node1 VTEPMAC %s, want flannel.1's MAC %s", c.Node("node1").VTEPMAC(), got)
	}
}

func TestSendUDPAndCapture(t *testing.T) {
	requireRoot(t)
	b := newBed(t)
	n1, err := b.AddNode("n1", addr("192.168.49.2"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := b.AddNode("n2", addr("192.168.49.3"))
	if err != nil {
		t.Fatal(err)
	}
	capture, err := b.StartCapture(n2.Netns, "eth0", "udp port 8472", 1)
	if err != nil {
		t.Fatal(err)
	}
	inner := ICMPEcho(addr("10.244.0.4"), addr("10.244.1.5"), 64, 7, 1)
	frame := VXLANFrame(42, TaprouterVTEPMAC(n2.Addr), TaprouterVTEPMAC(n1.Addr), inner)
	if err := n1.SendUDP(netip.AddrPortFrom(n2.Addr, 8472), frame); err != nil {
		t.Fatal(err)
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 1 {
		t.Fatalf("captured %d packets, want 1", len(packets))
	}
	p := packets[0]
	if p.Src != n1.Addr || p.Dst != n2.Addr || p.DstPort != 8472 || p.TTL != 64 {
		t.Errorf("outer packet %+v, want %s → %s:8472 TTL 64", p, n1.Addr, n2.Addr)
	}
	vni, in, ok := p.VXLAN()
	if !ok || vni != 42 || in.Src != addr("10.244.0.4") || in.Dst != addr("10.244.1.5") || in.ICMPType != 8 ||
		in.DstMAC != TaprouterVTEPMAC(n2.Addr) || in.SrcMAC.String() != "0a:58:c0:a8:31:02" {
		t.Errorf("vxlan %v vni %d inner %+v, want vni 42 echo request 10.244.0.4 → 10.244.1.5 from 0a:58:c0:a8:31:02", ok, vni, in)
	}
	if checksum(inner[:20]) != 0 || checksum(inner[20:]) != 0 {
		t.Errorf("ICMPEcho checksums do not verify")
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	requireRoot(t)
	b, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.AddNode("n1", addr("192.168.49.2"))
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	p, err := b.Start(n.Netns, "sleeper", "sleep", "600")
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	dir := b.Dir()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Exited(); !exited {
		t.Error("process still running after Close")
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), b.Prefix()) {
		t.Errorf("namespaces of %s left after Close:\n%s", b.Prefix(), out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s left after Close (%v)", dir, err)
	}
	if _, err := b.AddNetns("late"); err == nil {
		t.Error("AddNetns on a closed bed succeeded")
	}
}
