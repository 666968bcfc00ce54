package router

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
)

// outcome is what one input did to the router's counters.
type outcome struct {
	drops, forwarded, icmpErrors, echoReplies, fragments, arp uint64
	names                                                     []string // the drop counters that moved
}

func outcomeOf(before, after map[string]uint64) outcome {
	var o outcome
	for k, v := range after {
		d := v - before[k]
		if d == 0 {
			continue
		}
		switch {
		case k == "drop_neighbour_queue": // also neigh_queue_drops; none with static neighbours
			o.drops += d
			o.names = append(o.names, k)
		case strings.HasPrefix(k, "drop_"):
			o.drops += d
			o.names = append(o.names, k)
		case k == "forwarded":
			o.forwarded = d
		case k == "icmp_unreachable", k == "icmp_time_exceeded", k == "icmp_frag_needed":
			o.icmpErrors += d
		case k == "icmp_echo_replies":
			o.echoReplies = d
		case k == "fragments_sent":
			o.fragments = d
		case k == "arp_received":
			o.arp = d
		}
	}
	return o
}

// check asserts that the input moved exactly one counter of its own: one
// drop reason, or forwarded (as itself, as an echo reply or as fragments), or
// ARP received; besides, the ICMP errors it caused were forwarded.
func (o outcome) check() error {
	switch {
	case o.icmpErrors > 1:
		return fmt.Errorf("%d ICMP errors for one input", o.icmpErrors)
	case o.arp == 1 && o.drops == 0 && o.forwarded == 0 && o.icmpErrors == 0:
	case o.drops == 1 && o.arp == 0 && o.forwarded == o.icmpErrors && o.echoReplies == 0 && o.fragments == 0:
	case o.drops == 0 && o.arp == 0 && o.icmpErrors == 0 && o.fragments == 0 && o.forwarded == 1:
	case o.drops == 0 && o.arp == 0 && o.icmpErrors == 0 && o.echoReplies == 0 && o.fragments >= 2 && o.forwarded == o.fragments:
	default:
		return fmt.Errorf("not exactly one outcome: %+v", o)
	}
	if o.echoReplies > 1 || (o.echoReplies == 1 && o.forwarded != 1 && o.forwarded != o.fragments) {
		return fmt.Errorf("echo replies: %+v", o)
	}
	return nil
}

// checkOut asserts that p, a packet the router sent, is valid IPv4 within
// mtu, and either the input forwarded (same addresses, TTL one less) or one
// the router originated (from one of its own addresses, TTL 64).
func checkOut(p []byte, mtu int, in header.IPv4, own ...netip.Addr) error {
	h := header.IPv4(p)
	if !h.IsValid(len(p)) || !h.IsChecksumValid() || int(h.TotalLength()) != len(p) {
		return fmt.Errorf("invalid IPv4 packet or checksum: %x", p)
	}
	if len(p) > mtu {
		return fmt.Errorf("%d bytes on a link of MTU %d", len(p), mtu)
	}
	src := netip.AddrFrom4(h.SourceAddress().As4())
	for _, a := range own {
		if src == a {
			if h.TTL() != defaultTTL {
				return fmt.Errorf("the router's own packet from %s has TTL %d", src, h.TTL())
			}
			return nil
		}
	}
	if len(in) < header.IPv4MinimumSize {
		return fmt.Errorf("forwarded a packet from a frame with no IPv4 header: %x", p)
	}
	if src != netip.AddrFrom4(in.SourceAddress().As4()) || h.DestinationAddress() != in.DestinationAddress() {
		return fmt.Errorf("forwarded %s → %s, the input was %s → %s", src, h.DestinationAddress(), in.SourceAddress(), in.DestinationAddress())
	}
	if h.TTL() != in.TTL()-1 {
		return fmt.Errorf("forwarded with TTL %d, the input had %d", h.TTL(), in.TTL())
	}
	return nil
}

// checkPodFrames checks what the router sent a pod: ARP from the gateway or
// IPv4 from the gateway's MAC to the pod's.
func checkPodFrames(pod *syncPod, frames [][]byte, in header.IPv4, own ...netip.Addr) error {
	for _, f := range frames {
		if len(f) < ethHeaderLen || link.HardwareAddr(f[6:12]) != gwMAC {
			return fmt.Errorf("frame to %s not from the gateway MAC: %x", pod.ip, f)
		}
		switch binary.BigEndian.Uint16(f[12:14]) {
		case etherTypeARP:
			if a, err := arp.Parse(f[ethHeaderLen:]); err != nil || a.SenderIP != gateway || a.SenderMAC != gwMAC {
				return fmt.Errorf("ARP to %s: %+v %v", pod.ip, a, err)
			}
		case etherTypeIP:
			if link.HardwareAddr(f[0:6]) != pod.mac {
				return fmt.Errorf("IPv4 frame for %s to MAC %x", pod.ip, f[0:6])
			}
			if err := checkOut(f[ethHeaderLen:], pod.dev.mtu, in, own...); err != nil {
				return fmt.Errorf("to %s: %w", pod.ip, err)
			}
		default:
			return fmt.Errorf("frame to %s of type %x", pod.ip, f[12:14])
		}
	}
	return nil
}

// ipHeaderOf is the IPv4 header (or nil) of what fed to the router.
func ipHeaderOf(b []byte) header.IPv4 {
	if len(b) < header.IPv4MinimumSize {
		return nil
	}
	return header.IPv4(b)
}

// FuzzPodFrame feeds arbitrary frames from a pod into the router (pods
// 10.244.0.4 and .5 with known MACs, a host port, a tunnel to two peers) and
// checks that each moves exactly one counter and that whatever leaves is
// valid IPv4: forwarded with its TTL decremented, or the router's own.
func FuzzPodFrame(f *testing.F) {
	n := newSyncNode(f, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	eth := func(p []byte) []byte { return ethernet(gwMAC, pa.mac, etherTypeIP, p) }
	udp := func(dst netip.Addr, ttl uint8, df bool, size int) []byte {
		return eth(ipv4(pa.ip, dst, ttl, header.UDPProtocolNumber, df, udpPayload(1, 2, size)))
	}
	peerPod := netip.MustParseAddr("10.244.1.5")
	f.Add(udp(pb.ip, 64, true, 10))
	f.Add(udp(peerPod, 64, true, 100))
	f.Add(udp(netip.MustParseAddr("8.8.8.8"), 64, false, 10))
	f.Add(udp(netip.MustParseAddr("10.244.0.99"), 64, false, 10)) // no such pod
	f.Add(udp(pb.ip, 1, false, 10))                               // TTL expired
	f.Add(udp(peerPod, 64, true, 1450))                           // frag needed
	f.Add(udp(peerPod, 64, false, 1450))                          // fragmented
	f.Add(udp(gateway, 64, false, 10))                            // port unreachable
	f.Add(udp(netip.MustParseAddr("224.0.0.251"), 64, false, 10))
	f.Add(eth(ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 56))))
	f.Add(eth(ipv4(pa.ip, gateway, 64, header.TCPProtocolNumber, true, make([]byte, 20))))
	f.Add(eth(ipv4Opts(pa.ip, peerPod, testOptions, false, 0, make([]byte, 2000))))
	f.Add(eth(ipv4Opts(pa.ip, pb.ip, testOptions, true, 800, make([]byte, 100))))
	f.Add(n.arpFrom(0, arp.OpRequest))
	f.Add(n.arpFrom(0, arp.OpReply))
	f.Add(n.arpFrom(1, arp.OpRequest)) // spoofed
	f.Add(ethernet(gwMAC, pa.mac, 0x86dd, make([]byte, 40)))
	f.Add(ethernet(gwMAC, pa.mac, 0x8100, append([]byte{0, 5, 8, 0}, ipv4(pa.ip, pb.ip, 64, 17, false, udpPayload(1, 2, 8))...)))
	f.Add(udp(pb.ip, 64, true, 9000)) // cut to the buffer
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := n.r.Stats()
		rx := pa.port.RxPackets.Load()
		n.framesFromPod(0, frame)
		o := outcomeOf(before, n.r.Stats())
		if err := o.check(); err != nil {
			t.Fatalf("frame %x: %v (drops %v)", frame, err, o.names)
		}
		if got := pa.port.RxPackets.Load() - rx; got != 1 {
			t.Fatalf("rx packets moved by %d", got)
		}
		var in header.IPv4
		if len(frame) > ethHeaderLen {
			in = ipHeaderOf(frame[ethHeaderLen:])
		}
		for _, pod := range n.pods {
			if err := checkPodFrames(pod, pod.dev.take(), in, gateway); err != nil {
				t.Fatalf("frame %x: %v", frame, err)
			}
		}
		for _, p := range n.host.take() {
			if err := checkOut(p, n.host.mtu, in); err != nil {
				t.Fatalf("frame %x: to the host: %v", frame, err)
			}
		}
		for _, d := range n.conn.take() {
			if err := checkOut(d.Data, n.r.cfg.TunnelMTU, in); err != nil {
				t.Fatalf("frame %x: to %s: %v", frame, d.Addr, err)
			}
		}
	})
}

// FuzzTunnelIngress feeds arbitrary inner packets into the router as if the
// tunnel had decapsulated them from a peer index (0: node2, 1: node3, 2: no
// such peer), with the same invariant as FuzzPodFrame, and checks that
// nothing reaches the node's host port (ICMP errors go back through the
// tunnel) and that a pod only gets packets whose source is the sending
// peer's.
func FuzzTunnelIngress(f *testing.F) {
	n := newSyncNode(f, Config{}, 1450, 1450)
	pa := n.pods[0]
	peerPod := netip.MustParseAddr("10.244.1.5")
	udp := func(src, dst netip.Addr, ttl uint8, df bool, size int) []byte {
		return ipv4(src, dst, ttl, header.UDPProtocolNumber, df, udpPayload(1, 2, size))
	}
	f.Add(uint8(0), udp(peerPod, pa.ip, 64, true, 10))
	f.Add(uint8(0), udp(node2, pa.ip, 64, true, 10))
	f.Add(uint8(1), udp(peerPod, pa.ip, 64, true, 10)) // from the wrong peer
	f.Add(uint8(2), udp(peerPod, pa.ip, 64, true, 10))
	f.Add(uint8(0), udp(pa.ip, pa.ip, 64, true, 10))
	f.Add(uint8(0), udp(peerPod, netip.MustParseAddr("8.8.8.8"), 64, true, 10))
	f.Add(uint8(0), udp(peerPod, netip.MustParseAddr("10.244.0.99"), 64, true, 10))
	f.Add(uint8(0), udp(peerPod, pa.ip, 1, true, 10))
	f.Add(uint8(0), udp(peerPod, pa.ip, 64, true, 1600))  // frag needed
	f.Add(uint8(0), udp(peerPod, pa.ip, 64, false, 1600)) // fragmented
	f.Add(uint8(0), udp(peerPod, netip.MustParseAddr("10.244.0.255"), 64, false, 10))
	f.Add(uint8(0), ipv4(peerPod, gateway, 64, header.ICMPv4ProtocolNumber, true, echo(1, 1, 56)))
	f.Add(uint8(0), []byte{0x45})
	f.Fuzz(func(t *testing.T, peer uint8, inner []byte) {
		peer %= 3
		if len(inner) == 0 {
			return // Recv's "dropped and counted by the tunnel"
		}
		if len(inner) > len(n.tw.bufs[0])-headroom {
			inner = inner[:len(n.tw.bufs[0])-headroom] // what the tunnel's buffers hold
		}
		before := n.r.Stats()
		n.fromPeer(uint32(peer), inner)
		o := outcomeOf(before, n.r.Stats())
		if err := o.check(); err != nil || o.arp != 0 {
			t.Fatalf("peer %d inner %x: %v (drops %v)", peer, inner, err, o.names)
		}
		in := ipHeaderOf(inner)
		if got := n.host.take(); len(got) != 0 {
			t.Fatalf("peer %d inner %x: %d packets reached the host", peer, inner, len(got))
		}
		peerCIDR := []netip.Prefix{podCIDR1, podCIDR2}[min(int(peer), 1)]
		peerAddr := []netip.Addr{node2, node3}[min(int(peer), 1)]
		for _, pod := range n.pods {
			frames := pod.dev.take()
			if err := checkPodFrames(pod, frames, in, gateway, node1); err != nil {
				t.Fatalf("peer %d inner %x: %v", peer, inner, err)
			}
			for _, fr := range frames {
				if binary.BigEndian.Uint16(fr[12:14]) != etherTypeIP {
					continue
				}
				src := netip.AddrFrom4([4]byte(fr[ethHeaderLen+12 : ethHeaderLen+16]))
				if peer == 2 || (!peerCIDR.Contains(src) && src != peerAddr) {
					t.Fatalf("peer %d inner %x: %s got a packet from %s", peer, inner, pod.ip, src)
				}
			}
		}
		for _, d := range n.conn.take() {
			if err := checkOut(d.Data, n.r.cfg.TunnelMTU, in, gateway, node1); err != nil {
				t.Fatalf("peer %d inner %x: to %s: %v", peer, inner, d.Addr, err)
			}
		}
	})
}
