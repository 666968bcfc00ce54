package router

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// A pod whose MTU is above its port's buffers (jumbo frames on a 1450
// network): the device cuts the frame to the buffer, as a TAP's read does.
// The router answers "fragmentation needed" with what it can take instead
// of dropping the packet as malformed, so that path MTU discovery converges.
func TestTruncatedFrameAnswersFragNeeded(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	bufMTU := len(n.w.bufs[0]) - headroom - ethHeaderLen // what fits the buffer
	for _, tc := range []struct {
		name    string
		dst     netip.Addr
		df      bool
		wantMTU uint16
	}{
		{"to a pod, DF", pb.ip, true, 1450},
		{"to a pod, no DF", pb.ip, false, 1450}, // the rest is lost: the sender must learn anyway
		{"through the tunnel", netip.MustParseAddr("10.244.1.5"), true, 1450},
		{"to the gateway", gateway, true, uint16(bufMTU)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			big := ipv4(pa.ip, tc.dst, 64, header.UDPProtocolNumber, tc.df, udpPayload(1, 2, 9000-28))
			before := n.r.Stats()
			n.fromPod(0, big)
			wantDelta(t, n.r, before, map[string]uint64{"drop_too_big": 1, "icmp_frag_needed": 1, "forwarded": 1})
			out := pa.dev.take()
			if len(out) != 1 {
				t.Fatalf("pa got %d frames, want the ICMP error", len(out))
			}
			icmp := checkICMP(t, header.IPv4(out[0][14:]), gateway, pa.ip, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded)
			if icmp.MTU() != tc.wantMTU {
				t.Errorf("next-hop MTU %d, want %d", icmp.MTU(), tc.wantMTU)
			}
			if q := icmp.Payload(); len(q) != icmpQuoteLimit-28 || !bytes.Equal(q, big[:len(q)]) {
				t.Errorf("quoted %d bytes, want the first %d of the packet", len(q), icmpQuoteLimit-28)
			}
			if len(pb.dev.take())+len(n.conn.take())+len(n.host.take()) != 0 {
				t.Error("part of the packet was sent on")
			}
		})
	}
	// A packet that fits exactly is no truncation; one whose total length
	// is more than a short read is malformed (the buffer was not filled).
	before := n.r.Stats()
	n.fromPod(0, ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, false, echo(1, 1, bufMTU-28))) // its reply is fragmented for pa
	liar := ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 100))
	header.IPv4(liar).SetTotalLength(2000)
	header.IPv4(liar).SetChecksum(0)
	header.IPv4(liar).SetChecksum(^header.IPv4(liar).CalculateChecksum())
	n.fromPod(0, liar)
	wantDelta(t, n.r, before, map[string]uint64{"icmp_echo_replies": 1, "fragments_sent": 2, "forwarded": 2, "drop_malformed": 1})
}
