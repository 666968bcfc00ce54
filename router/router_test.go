package router

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/tunnel"
)

var (
	podCIDR0 = netip.MustParsePrefix("10.244.0.0/24")
	podCIDR1 = netip.MustParsePrefix("10.244.1.0/24")
	node1    = netip.MustParseAddr("192.168.49.2")
	node2    = netip.MustParseAddr("192.168.49.3")
)

type testNode struct {
	r    *Router
	pods map[string]*testPod
	host *linktest.Device
	clk  *fakeClock
}

// newNode builds a started router for 10.244.0.0/24 with the given pods, a
// host port, and optionally a tunnel.
func newNode(t *testing.T, cfg Config, pods ...*testPod) *testNode {
	t.Helper()
	n := &testNode{pods: map[string]*testPod{}, clk: &fakeClock{now: time.Unix(1e9, 0)}}
	if !cfg.PodCIDR.IsValid() {
		cfg.PodCIDR = podCIDR0
	}
	if !cfg.Gateway.IsValid() {
		cfg.Gateway = gateway
	}
	if cfg.GatewayMAC.IsZero() {
		cfg.GatewayMAC = gwMAC
	}
	if !cfg.NodeAddr.IsValid() {
		cfg.NodeAddr = node1
	}
	if cfg.Clock == nil {
		cfg.Clock = n.clk
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	n.host = linktest.NewDevice("taprouter0", 1450, 256)
	if err := r.SetHostPort(n.host, "taprouter0"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if _, err := r.AddPodPort(p.name, p.dev, p.ip, p.mac, p.dev.MTU()); err != nil {
			t.Fatal(err)
		}
		n.pods[p.name] = p
	}
	r.Start()
	t.Cleanup(func() { r.Close() })
	return n
}

func TestGatewayARP(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	n := newNode(t, Config{}, pa)
	// The port starts with a gratuitous announcement of the gateway and a
	// request for the pod's MAC.
	var sawGratuitous, sawRequest bool
	for range 2 {
		a, err := arp.Parse(pa.recv(t)[14:])
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case arp.IsGratuitous(&a) && a.SenderIP == gateway && a.SenderMAC == gwMAC:
			sawGratuitous = true
		case a.Op == arp.OpRequest && a.TargetIP == pa.ip:
			sawRequest = true
		}
	}
	if !sawGratuitous || !sawRequest {
		t.Fatalf("port start: gratuitous %v, request for the pod %v", sawGratuitous, sawRequest)
	}

	pa.arpRequest(gateway)
	f := pa.recv(t)
	if len(f) != arp.FrameLen || link.HardwareAddr(f[0:6]) != pa.mac || link.HardwareAddr(f[6:12]) != gwMAC {
		t.Fatalf("reply frame %x", f)
	}
	a, err := arp.Parse(f[14:])
	if err != nil {
		t.Fatal(err)
	}
	want := arp.Packet{Op: arp.OpReply, SenderMAC: gwMAC, SenderIP: gateway, TargetMAC: pa.mac, TargetIP: pa.ip}
	if a != want {
		t.Fatalf("reply %+v, want %+v", a, want)
	}
	// The router learned the pod's MAC from its request.
	found := false
	for _, e := range n.r.Neighbours() {
		if e.IP == pa.ip && e.MAC == pa.mac {
			found = true
		}
	}
	if !found {
		t.Fatalf("pod MAC not learned: %+v", n.r.Neighbours())
	}
	// A request for any other address is not answered (only the gateway is
	// proxied), and a request claiming another pod's address is dropped.
	pa.arpRequest(netip.MustParseAddr("10.244.0.5"))
	spoof := arp.Packet{Op: arp.OpRequest, SenderMAC: pa.mac, SenderIP: netip.MustParseAddr("10.244.0.5"), TargetIP: gateway}
	b := make([]byte, arp.FrameLen)
	arp.EncodeFrame(b, link.Broadcast, pa.mac, &spoof)
	pa.dev.In <- b
	waitCounter(t, n.r, "drop_spoofed", 1)
	select {
	case f := <-pa.dev.Out:
		t.Fatalf("unexpected frame %x", f)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestSameNodeTTL63(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	newNode(t, Config{}, pa, pb)
	req := ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(7, 1, 56))
	pa.send(req)
	got := pb.recvIPv4(t)
	if got.TTL() != 63 {
		t.Fatalf("TTL %d, want 63", got.TTL())
	}
	// Only the TTL and the checksum changed: no NAT between pods.
	want := header.IPv4(append([]byte(nil), req...))
	want.SetTTL(63)
	want.SetChecksum(0)
	want.SetChecksum(^want.CalculateChecksum())
	if !bytes.Equal(got, want) {
		t.Fatalf("forwarded packet differs:\n got %x\nwant %x", []byte(got), []byte(want))
	}
}

func TestEchoReplyFromGateway(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	n := newNode(t, Config{}, pa)
	pa.send(ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, echo(9, 3, 32)))
	h := pa.recvIPv4(t)
	icmp := checkICMP(t, h, gateway, pa.ip, header.ICMPv4EchoReply, 0)
	if icmp.Ident() != 9 || icmp.Sequence() != 3 || !bytes.Equal(icmp.Payload(), echo(9, 3, 32)[8:]) {
		t.Fatalf("reply ident %d seq %d", icmp.Ident(), icmp.Sequence())
	}
	if h.TTL() != 64 {
		t.Fatalf("reply TTL %d, want 64", h.TTL())
	}
	waitCounter(t, n.r, "icmp_echo_replies", 1)
}

func TestTimeExceeded(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	n := newNode(t, Config{}, pa, pb)
	probe := ipv4(pa.ip, pb.ip, 1, header.UDPProtocolNumber, false, udpPayload(40000, 33434, 24))
	pa.send(probe)
	icmp := checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded)
	// The error quotes the offending packet (header and beyond), as received.
	if !bytes.Equal(icmp.Payload(), probe) {
		t.Fatalf("quoted %x, want %x", icmp.Payload(), probe)
	}
	waitCounter(t, n.r, "icmp_time_exceeded", 1)
	waitCounter(t, n.r, "drop_ttl", 1)
}

func TestUnreachable(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	n := newNode(t, Config{}, pa)
	// In our pod range but no pod: host unreachable.
	pa.send(ipv4(pa.ip, netip.MustParseAddr("10.244.0.99"), 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8)))
	checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable)
	// A blackhole route drops silently.
	n.r.FIB().Insert(netip.MustParsePrefix("10.99.0.0/16"), fibBlackhole)
	pa.send(ipv4(pa.ip, netip.MustParseAddr("10.99.1.1"), 64, header.ICMPv4ProtocolNumber, true, echo(1, 2, 8)))
	waitCounter(t, n.r, "drop_blackhole", 1)
	// UDP to the gateway: port unreachable.
	pa.send(ipv4(pa.ip, gateway, 64, header.UDPProtocolNumber, false, udpPayload(1, 53, 4)))
	checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4PortUnreachable)
	// Host traffic to an address the host port's default route would send
	// straight back: net unreachable to the host.
	n.host.In <- ipv4(node1, netip.MustParseAddr("8.8.8.8"), 64, header.ICMPv4ProtocolNumber, true, echo(1, 3, 8))
	select {
	case p := <-n.host.Out:
		checkICMP(t, header.IPv4(p), gateway, node1, header.ICMPv4DstUnreachable, header.ICMPv4NetUnreachable)
	case <-time.After(2 * time.Second):
		t.Fatal("no ICMP to the host")
	}
	// No ICMP error about an ICMP error.
	before := n.r.Stats()["icmp_unreachable"]
	errPkt := ipv4(pa.ip, netip.MustParseAddr("10.244.0.98"), 64, header.ICMPv4ProtocolNumber, false, []byte{3, 1, 0, 0, 0, 0, 0, 0})
	pa.send(errPkt)
	waitCounter(t, n.r, "drop_no_route", 3)
	if after := n.r.Stats()["icmp_unreachable"]; after != before {
		t.Fatalf("answered an ICMP error with an ICMP error (%d → %d)", before, after)
	}
}

func TestAntiSpoofing(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	n := newNode(t, Config{}, pa, pb)
	// Source IP of another pod.
	pa.send(ipv4(pb.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8)))
	// Right IP, wrong source MAC.
	pa.dev.In <- ethernet(gwMAC, link.HardwareAddr{2, 9, 9, 9, 9, 9}, etherTypeIP, ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, echo(1, 2, 8)))
	waitCounter(t, n.r, "drop_spoofed", 2)
	// Not for the gateway MAC; truncated; IPv6; bad checksum.
	pa.dev.In <- ethernet(link.HardwareAddr{2, 1, 1, 1, 1, 1}, pa.mac, etherTypeIP, ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 3, 8)))
	pa.dev.In <- ethernet(gwMAC, pa.mac, etherTypeIP, ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 4, 8))[:15])
	pa.dev.In <- ethernet(gwMAC, pa.mac, 0x86dd, make([]byte, 40))
	bad := ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 5, 8))
	bad[10] ^= 0xff
	pa.send(bad)
	waitCounter(t, n.r, "drop_bad_mac", 1)
	waitCounter(t, n.r, "drop_malformed", 2)
	waitCounter(t, n.r, "drop_not_ipv4", 1)
	// Nothing reached pb (ARP for pb aside).
	select {
	case f := <-pb.dev.Out:
		if f[12] == 0x08 && f[13] == 0x00 {
			t.Fatalf("pb received %x", f)
		}
	case <-time.After(50 * time.Millisecond):
	}
	// The router still forwards.
	pa.send(ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 6, 8)))
	if got := pb.recvIPv4(t); got.TTL() != 63 {
		t.Fatalf("TTL %d", got.TTL())
	}
}

// twoNodes connects two routers with vxlan backends over a fake underlay.
func twoNodes(t *testing.T, podMTU int, podsA, podsB []*testPod) (*testNode, *testNode) {
	t.Helper()
	ca := linktest.NewConn(netip.AddrPortFrom(node1, 8472), 256)
	cb := linktest.NewConn(netip.AddrPortFrom(node2, 8472), 256)
	linktest.Wire(ca, cb)
	linktest.Wire(cb, ca)
	va, err := tunnel.NewVXLAN(ca, tunnel.VXLANConfig{VNI: 1, Port: 8472, LocalMAC: tunnel.VTEPMAC(node1)})
	if err != nil {
		t.Fatal(err)
	}
	vb, err := tunnel.NewVXLAN(cb, tunnel.VXLANConfig{VNI: 1, Port: 8472, LocalMAC: tunnel.VTEPMAC(node2)})
	if err != nil {
		t.Fatal(err)
	}
	a := newNode(t, Config{Tunnel: va, TunnelMTU: podMTU}, podsA...)
	b := newNode(t, Config{PodCIDR: podCIDR1, Gateway: netip.MustParseAddr("10.244.1.1"), NodeAddr: node2, Tunnel: vb, TunnelMTU: podMTU}, podsB...)
	if err := a.r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.r.SetPeers([]tunnel.Peer{{Node: "node1", Addr: node1, PodCIDRs: []netip.Prefix{podCIDR0}}}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestCrossNodeTTL62(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	pc := newPod("pc", "10.244.1.5", 6)
	gw1 := netip.MustParseAddr("10.244.1.1")
	_, b := twoNodes(t, 1450, []*testPod{pa}, []*testPod{pc})
	_ = b
	req := ipv4(pa.ip, pc.ip, 64, header.ICMPv4ProtocolNumber, true, echo(3, 1, 56))
	pa.send(req)
	// pc's router asks for pc's MAC with its own gateway address.
	var got header.IPv4
	for {
		f := pc.recv(t)
		if f[12] == 0x08 && f[13] == 0x06 {
			a, _ := arp.Parse(f[14:])
			if a.Op == arp.OpRequest && a.TargetIP == pc.ip {
				reply := arp.Packet{Op: arp.OpReply, SenderMAC: pc.mac, SenderIP: pc.ip, TargetMAC: a.SenderMAC, TargetIP: gw1}
				fb := make([]byte, arp.FrameLen)
				arp.EncodeFrame(fb, a.SenderMAC, pc.mac, &reply)
				pc.dev.In <- fb
			}
			continue
		}
		got = header.IPv4(f[14:])
		break
	}
	if got.TTL() != 62 {
		t.Fatalf("TTL %d, want 62", got.TTL())
	}
	if s := netip.AddrFrom4(got.SourceAddress().As4()); s != pa.ip {
		t.Fatalf("source %s, want %s (no SNAT)", s, pa.ip)
	}
}

func TestFragNeededAndFragmentation(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	pa.dev = linktest.NewDevice("pa", 1500, 256) // MTU mismatch: pod 1500, tunnel 1450
	a, _ := twoNodes(t, 1450, []*testPod{pa}, nil)
	dst := netip.MustParseAddr("10.244.1.5")
	big := ipv4(pa.ip, dst, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 1500-28))
	pa.send(big)
	icmp := checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded)
	if icmp.MTU() != 1450 {
		t.Fatalf("next-hop MTU %d, want 1450", icmp.MTU())
	}
	waitCounter(t, a.r, "icmp_frag_needed", 1)
	// Without DF the router fragments: two fragments leave for the peer.
	pa.send(ipv4(pa.ip, dst, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 1500-28)))
	waitCounter(t, a.r, "fragments_sent", 2)
}

// countUDP is an example user stage: it counts UDP packets and drops those
// to a blocked port.
type countUDP struct {
	n       int
	blocked uint16
}

func (c *countUDP) Name() string { return "count-udp" }
func (c *countUDP) Process(pkts []*Packet) {
	for _, p := range pkts {
		if p.Verdict() != Continue || p.IPv4().TransportProtocol() != header.UDPProtocolNumber {
			continue
		}
		c.n++
		if header.UDP(p.IPv4().Payload()).DestinationPort() == c.blocked {
			p.Drop(DropFiltered)
		}
	}
}

func TestUserStage(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	stage := &countUDP{blocked: 9}
	n := newNode(t, Config{IngressStages: []Stage{stage}}, pa, pb)
	pa.send(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(5, 9, 10)))
	pa.send(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(5, 10, 10)))
	got := pb.recvIPv4(t)
	if header.UDP(got.Payload()).DestinationPort() != 10 {
		t.Fatalf("got port %d", header.UDP(got.Payload()).DestinationPort())
	}
	waitCounter(t, n.r, "drop_filtered", 1)
}

func TestNeighbourFailureAnswersHostUnreachable(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	n := newNode(t, Config{}, pa, pb)
	pa.arpRequest(gateway) // as a pod does first: the router learns pa's MAC
	waitCounter(t, n.r, "arp_replies_sent", 1)
	pa.send(ipv4(pa.ip, pb.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8)))
	neighbourFails(t, n, pb.ip)
	icmp := checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable)
	if q := header.IPv4(icmp.Payload()); netip.AddrFrom4(q.DestinationAddress().As4()) != pb.ip {
		t.Fatalf("quoted destination %s", q.DestinationAddress())
	}
	waitCounter(t, n.r, "drop_neighbour", 1)
}

// hasQueued reports whether a packet waits for ip's MAC.
func hasQueued(r *Router, ip netip.Addr) bool {
	for _, e := range r.Neighbours() {
		if e.IP == ip && e.State == arp.Incomplete && e.Queued > 0 {
			return true
		}
	}
	return false
}

// TestHostPortIPv6 feeds the host port a router solicitation, as the node's
// kernel sends on taprouter0 when it comes up: it counts as not IPv4, not as
// malformed.
func TestHostPortIPv6(t *testing.T) {
	n := newNode(t, Config{})
	rs := []byte{
		0x60, 0, 0, 0, 0, 8, 58, 255, // IPv6, payload 8, ICMPv6, hop limit 255
		0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x34, 0x5e, 0x32, 0x62, 0x0c, 0x42, 0x33, 0x1e, // fe80::345e:3262:c42:331e
		0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // ff02::2
		133, 0, 0xd7, 0x16, 0, 0, 0, 0, // router solicitation
	}
	n.host.In <- rs
	waitCounter(t, n.r, "drop_not_ipv4", 1)
	if got := n.r.Stats()["drop_malformed"]; got != 0 {
		t.Errorf("drop_malformed = %d, want 0", got)
	}
}

// "Fragmentation needed" is never rate-limited (path MTU discovery depends
// on it), unlike the other ICMP errors.
func TestFragNeededNotRateLimited(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	pa.dev = linktest.NewDevice("pa", 1500, 256)
	ca := linktest.NewConn(netip.AddrPortFrom(node1, 8472), 256)
	va, err := tunnel.NewVXLAN(ca, tunnel.VXLANConfig{LocalMAC: tunnel.VTEPMAC(node1)})
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, Config{Tunnel: va, TunnelMTU: 1450, ICMPRate: 1}, pa)
	n.r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}})
	// pa's MAC is learned first: five errors waiting for it would overflow
	// the neighbour queue (3).
	pa.arpRequest(gateway)
	waitCounter(t, n.r, "arp_replies_sent", 1)
	for i := range 5 {
		pa.send(ipv4(pa.ip, netip.MustParseAddr("10.244.1.5"), 64, header.UDPProtocolNumber, true, udpPayload(1, uint16(i), 1500-28)))
	}
	for range 5 {
		checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded)
	}
	// Other errors are limited: of 5 TTL-expired probes, the burst of 1 is answered.
	for range 5 {
		pa.send(ipv4(pa.ip, netip.MustParseAddr("10.244.1.5"), 1, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)))
	}
	waitCounter(t, n.r, "icmp_rate_limited", 4)
	if got := n.r.Stats()["icmp_time_exceeded"]; got != 1 {
		t.Errorf("icmp_time_exceeded = %d, want 1", got)
	}
}

// Fragments of many packets in one batch outnumber the worker's spare
// buffers: the router sends what waits and goes on, losing nothing.
func TestFragmentsBeyondOneRound(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	pa.dev = linktest.NewDevice("pa", 9000, 256)
	a, _ := twoNodes(t, 1450, []*testPod{pa}, nil)
	const packets = 12 // 7 fragments each: 84, more than the 64 spares
	for i := range packets {
		pa.send(ipv4(pa.ip, netip.MustParseAddr("10.244.1.5"), 64, header.UDPProtocolNumber, false, udpPayload(1, uint16(i), 9000-28)))
	}
	waitCounter(t, a.r, "fragments_sent", 7*packets)
	if s := a.r.Stats(); s["drop_too_big"] != 0 || s["drop_tx_error"] != 0 {
		t.Errorf("drops: too big %d, tx error %d", s["drop_too_big"], s["drop_tx_error"])
	}
}

// A pod's bandwidth limits police both directions with the router's clock:
// a burst passes, then packets are dropped until tokens accrue.
func TestBandwidthPolicer(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	n := newNode(t, Config{}, pa, pb)
	pkt := func(src, dst *testPod, seq uint16) []byte {
		return ipv4(src.ip, dst.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, seq, 1000-28)) // 1000 bytes
	}
	// pa may send 8000 bit/s with a 3000-byte burst: 3 packets, then none.
	if err := n.r.SetBandwidth("pa", Bandwidth{EgressRate: 8000, EgressBurst: 3000 * 8}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		pa.send(pkt(pa, pb, uint16(i)))
	}
	waitCounter(t, n.r, "drop_rate_limited", 2)
	for range 3 {
		pb.recvIPv4(t)
	}
	// One second later, 1000 bytes more may pass.
	n.clk.Advance(time.Second)
	pa.send(pkt(pa, pb, 9))
	if got := header.UDP(pb.recvIPv4(t).Payload()).DestinationPort(); got != 9 {
		t.Fatalf("after a second: got port %d, want 9", got)
	}
	// Ingress: traffic to pa is limited too; pb itself is not.
	if err := n.r.SetBandwidth("pa", Bandwidth{IngressRate: 8000, IngressBurst: 1000 * 8}); err != nil {
		t.Fatal(err)
	}
	pb.send(pkt(pb, pa, 1))
	pb.send(pkt(pb, pa, 2))
	waitCounter(t, n.r, "drop_rate_limited", 3)
	if got := header.UDP(pa.recvIPv4(t).Payload()).DestinationPort(); got != 1 {
		t.Fatalf("to pa: got port %d, want 1", got)
	}
	for i := range 5 {
		pa.send(pkt(pa, pb, uint16(20+i))) // egress is unlimited now
	}
	for range 5 {
		pb.recvIPv4(t)
	}
	if err := n.r.SetBandwidth("nope", Bandwidth{}); err == nil {
		t.Fatal("SetBandwidth on an unknown port succeeded")
	}
}

// A packet from another node whose local pod does not answer ARP is
// answered from this node's underlay address, like every ICMP error about
// a packet that came through the tunnel.
func TestNeighbourFailureFromTunnel(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	pc := newPod("pc", "10.244.1.5", 6)
	a, b := twoNodes(t, 1450, []*testPod{pa}, []*testPod{pc})
	pa.arpRequest(gateway)
	waitCounter(t, a.r, "arp_replies_sent", 1)
	pa.send(ipv4(pa.ip, pc.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8)))
	neighbourFails(t, b, pc.ip)
	checkICMP(t, pa.recvIPv4(t), node2, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable)
}

// neighbourFails waits until a packet waits on n for ip's MAC, then runs
// n's clock past every ARP retry: ip never answers, and the router gives up.
func neighbourFails(t *testing.T, n *testNode, ip netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !hasQueued(n.r, ip) { // the port's start already made it Incomplete
		if time.Now().After(deadline) {
			t.Fatalf("no packet queued for %s: %+v", ip, n.r.Neighbours())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 50 {
		n.clk.Advance(200 * time.Millisecond)
		n.r.Tick()
	}
}

// The request a new port sends for its pod goes through the neighbour table,
// so the pod's reply to it is one the table asked for and takes (the table
// creates no entry from a reply it did not ask for).
func TestPodReplyToPortStartRequestIsLearned(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	n := newNode(t, Config{}, pa)
	port, _ := n.r.Port("pa")
	for range 2 { // the gratuitous announcement and the request for pa
		pa.answerARP(t, pa.recv(t))
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if mac, s, ok := n.r.neigh.Peek(port.ID, pa.ip); ok && s == arp.Reachable && mac == pa.mac {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pa not Reachable at %v after answering: %+v", pa.mac, n.r.Neighbours())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An address in the cluster's pod ranges that no pod and no peer holds (a
// removed node's pods) is net unreachable, not sent to the host port like
// the rest of the world; a peer's range, more specific, still wins.
func TestClusterCIDRUnreachable(t *testing.T) {
	pa := newPod("pa", "10.244.0.4", 4)
	n := newNode(t, Config{ClusterCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, pa)
	pa.send(ipv4(pa.ip, netip.MustParseAddr("10.244.7.5"), 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8)))
	checkICMP(t, pa.recvIPv4(t), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4NetUnreachable)
	waitCounter(t, n.r, "drop_no_route", 1)
	// Outside the cluster: to the host port.
	pa.send(ipv4(pa.ip, netip.MustParseAddr("10.245.0.5"), 64, header.ICMPv4ProtocolNumber, true, echo(1, 2, 8)))
	select {
	case p := <-n.host.Out:
		if got := header.IPv4(p).DestinationAddress().String(); got != "10.245.0.5" {
			t.Fatalf("host port got a packet to %s", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("nothing to the host port")
	}
}
