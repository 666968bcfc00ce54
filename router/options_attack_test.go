package router

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// withOptions returns pkt (an IHL 5 packet) with opts (a multiple of 4
// bytes) inserted after its fixed header, lengths and checksum fixed.
func withOptions(pkt, opts []byte) []byte {
	b := append(append(append([]byte(nil), pkt[:20]...), opts...), pkt[20:]...)
	h := header.IPv4(b)
	h.SetHeaderLength(uint8(20 + len(opts)))
	h.SetTotalLength(uint16(len(b)))
	h.SetChecksum(0)
	h.SetChecksum(^checksum.Checksum(b[:20+len(opts)], 0))
	return b
}

// TestAttackSourceRoutedForwarded: Linux drops a source-routed packet
// (LSRR/SSRR option) it would forward unless accept_source_route is set,
// which it is not by default (ip_rcv_options: "source route option ...
// drop", counted as a martian when log_martians is on). taprouter forwards
// one from a pod to another pod, or from a peer to a pod, options and all:
// a pod on another node (or anyone forging a peer's datagrams) can make
// packets carry a source route through this node, which the router it
// replaces would have dropped.
func TestAttackSourceRoutedForwarded(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	lsrr := []byte{0x83, 7, 4, 10, 244, 1, 9, 0x01} // loose source route via 10.244.1.9, NOP
	ssrr := []byte{0x89, 7, 4, 10, 244, 1, 9, 0x01} // strict
	before := n.r.Stats()
	n.fromPod(0,
		withOptions(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)), lsrr),
		withOptions(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)), ssrr))
	n.fromPeer(0, withOptions(ipv4(a4("10.244.1.5"), pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)), lsrr))
	if got := len(pb.dev.take()); got != 0 {
		t.Errorf("%d of 3 source-routed packets were forwarded to pod B", got)
	}
	if s := n.r.Stats(); s["forwarded"]-before["forwarded"] != 0 {
		t.Errorf("forwarded moved by %d, want 0", s["forwarded"]-before["forwarded"])
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_source_route": 3})
	// Other options (record route, here) are still forwarded.
	rr := []byte{0x07, 7, 4, 0, 0, 0, 0, 0x01}
	before = n.r.Stats()
	n.fromPod(0, withOptions(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)), rr))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1})
	if got := len(pb.dev.take()); got != 1 {
		t.Errorf("pod B got %d packets with record route, want 1", got)
	}
}
