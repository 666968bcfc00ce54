package router

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

var a4 = netip.MustParseAddr

// Tunnel ingress: the underlay carries no authentication, so a packet from a
// peer index is only believed if its inner source is in that peer's pod
// range or is the peer node itself, and if it is for this node's pods.
func TestTunnelIngressChecksInnerAddresses(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	ping := func(src, dst netip.Addr) []byte {
		return ipv4(src, dst, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	}
	before := n.r.Stats()
	n.fromPeer(0,
		ping(a4("10.244.1.5"), pa.ip), // a pod of the sending peer: delivered
		ping(node2, pa.ip),            // the sending peer node itself: delivered
	)
	if got := len(pa.dev.take()); got != 2 {
		t.Fatalf("pod got %d packets from the peer, want 2", got)
	}
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2})

	before = n.r.Stats()
	n.fromPeer(0,
		ping(pa.ip, pa.ip),                       // a local pod's own address
		ping(a4("10.244.2.7"), pa.ip),            // the other peer's range
		ping(node3, pa.ip),                       // the other peer node
		ping(node1, pa.ip),                       // this node
		ping(a4("8.8.8.8"), pa.ip),               // anywhere
		ping(a4("10.244.1.5"), a4("10.244.1.9")), // back to the sender's range
		ping(a4("10.244.1.5"), a4("10.244.2.9")), // on to a third node
		ping(a4("10.244.1.5"), node1),            // this node's underlay address
		ping(a4("10.244.1.5"), a4("8.8.8.8")),    // the world, through our host
	)
	n.fromPeer(7, ping(a4("10.244.1.5"), pa.ip)) // no such peer index
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 6, "drop_tunnel_dst": 4})

	// Martian inner addresses, on either side.
	before = n.r.Stats()
	n.fromPeer(0,
		ping(a4("0.0.0.0"), pa.ip),
		ping(a4("127.0.0.1"), pa.ip),
		ping(a4("224.0.0.5"), pa.ip),
		ping(a4("255.255.255.255"), pa.ip),
		ping(a4("10.244.1.5"), a4("127.0.0.1")),
		ping(a4("10.244.1.5"), a4("224.0.0.1")),
		ping(a4("10.244.1.5"), a4("240.1.2.3")),
		ping(a4("10.244.1.5"), a4("255.255.255.255")),
		ping(a4("10.244.1.5"), a4("10.244.0.255")), // our pods' directed broadcast
		ping(a4("10.244.1.5"), a4("0.0.0.0")),
	)
	wantDelta(t, n.r, before, map[string]uint64{"drop_martian": 10})
	if got := len(pa.dev.take()) + len(n.host.take()) + len(n.conn.take()); got != 0 {
		t.Fatalf("%d packets left the router", got)
	}

	// The gateway answers a peer's pod, through the tunnel.
	before = n.r.Stats()
	n.fromPeer(1, ping(a4("10.244.2.7"), gateway))
	out := n.conn.take()
	if len(out) != 1 || out[0].Addr.Addr() != node3 {
		t.Fatalf("echo reply: %v, want one datagram to %s", out, node3)
	}
	wantDelta(t, n.r, before, map[string]uint64{"icmp_echo_replies": 1, "forwarded": 1, "tunnel_tx_packets": 1, "tunnel_tx_bytes": 36})
}

// Pod ingress: martian destinations sent to the gateway's MAC are dropped,
// never handed to the node's kernel through the host port.
func TestPodIngressMartians(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa := n.pods[0]
	udp := func(dst string) []byte {
		return ipv4(pa.ip, a4(dst), 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8))
	}
	before := n.r.Stats()
	n.fromPod(0, udp("127.0.0.1"), udp("224.0.0.251"), udp("239.255.255.250"), udp("255.255.255.255"),
		udp("0.0.0.0"), udp("0.1.2.3"), udp("240.0.0.1"), udp("10.244.0.255"))
	wantDelta(t, n.r, before, map[string]uint64{"drop_martian": 8})
	if got := len(n.host.take()) + len(pa.dev.take()) + len(n.pods[1].dev.take()); got != 0 {
		t.Fatalf("%d martian packets were sent on", got)
	}
	if got := pa.port.Drops.Load(); got != 8 {
		t.Errorf("port drops %d, want 8", got)
	}
	// The next addresses are not martians.
	before = n.r.Stats()
	n.fromPod(0, udp("8.8.8.8"), udp("10.244.0.5"))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2})
}

// An ICMP error about a packet from a peer node's own address goes back
// through the tunnel to that peer, not to the node's kernel (which drops a
// packet with its own address as source).
func TestTunnelErrorsGoBackToThePeer(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	before := n.r.Stats()
	n.fromPeer(1, ipv4(node3, a4("10.244.0.99"), 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)))
	wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 1, "icmp_unreachable": 1, "forwarded": 1, "tunnel_tx_packets": 1, "tunnel_tx_bytes": 20 + 8 + 36})
	if got := len(n.host.take()); got != 0 {
		t.Fatalf("%d packets to the host", got)
	}
	out := n.conn.take()
	if len(out) != 1 || out[0].Addr.Addr() != node3 {
		t.Fatalf("sent %v, want the error to %s", out, node3)
	}
	checkICMP(t, header.IPv4(out[0].Data), node1, node3, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable)
}

// A peer configured by the 4-in-6 form of its address (::ffff:a.b.c.d, as a
// dual-stack parser may give it) is the same node: packets from its own
// address pass the tunnel check, as they do the tunnel's peer lookup.
func TestTunnelPeerAddress4In6(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	mapped := netip.AddrFrom16(node2.As16())
	if !mapped.Is4In6() {
		t.Fatalf("%v is not 4-in-6", mapped)
	}
	if err := n.r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: mapped, PodCIDRs: []netip.Prefix{podCIDR1}}}); err != nil {
		t.Fatal(err)
	}
	ping := func(src netip.Addr) []byte {
		return ipv4(src, pa.ip, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	}
	before := n.r.Stats()
	n.fromPeer(0, ping(node2), ping(a4("10.244.1.5")))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2})
	if got := len(pa.dev.take()); got != 2 {
		t.Fatalf("pod got %d packets, want 2", got)
	}
	before = n.r.Stats()
	n.fromPeer(0, ping(node3)) // still not another node
	wantDelta(t, n.r, before, map[string]uint64{"drop_tunnel_spoofed": 1})
}

// HostPortAddr, the pod range's network address, is the node's: a peer's
// pod answering the node (a reply to the node's source HostPortAddr) is
// delivered to the host port, not dropped as a martian, not answered as
// an address without a pod; a pod of this node reaches it too.
func TestHostPortAddrDeliveredToHost(t *testing.T) {
	hostAddr := a4("10.244.0.0")
	n := newSyncNode(t, Config{HostPortAddr: hostAddr}, 1450)
	ping := func(src, dst netip.Addr) []byte {
		return ipv4(src, dst, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 8))
	}
	before := n.r.Stats()
	n.fromPeer(0, ping(a4("10.244.1.5"), hostAddr))
	n.fromPod(0, ping(n.pods[0].ip, hostAddr))
	if got := len(n.host.take()); got != 2 {
		t.Fatalf("host port got %d packets for %s, want 2", got, hostAddr)
	}
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2})
	if _, err := n.r.AddPodPort("px", &capDevice{name: "px", mtu: 1450}, hostAddr, link.HardwareAddr{2, 0, 0, 0, 0, 0x99}, 1450); err == nil {
		t.Fatalf("a pod port got the host port's address %s", hostAddr)
	}
	if _, err := New(Config{PodCIDR: podCIDR0, Gateway: gateway, HostPortAddr: a4("10.244.1.0")}); err == nil {
		t.Fatal("New took a HostPortAddr outside PodCIDR")
	}
}
