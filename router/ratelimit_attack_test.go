package router

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/tunnel"
)

// TestAttackICMPDestLimitSharedSlot: the per-destination ICMP limit keeps
// 1024 hashed slots and lets two destinations in one slot share a bucket
// while the first is busy. Within one /24 the multiplicative hash never
// pairs two addresses, but across a cluster's /16 about 1 address in 1024
// shares a local pod's slot, whatever the random seed: here a pod on
// another node whose traceroute passes through this one. Local pod A's
// flood of unreachable packets then starves that pod's traceroute (issue 8
// item 8: "one pod's flood cannot starve another pod's traceroute"). Linux
// keys the limit by the exact address (inet_peer), so A's flood never
// touches anybody else's budget.
func TestAttackICMPDestLimitSharedSlot(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	l := n.r.icmpTo
	slot := func(a netip.Addr) uint32 {
		b := a.As4()
		k := binary.BigEndian.Uint32(b[:])
		return ((k ^ l.seed) * 0x9e3779b1) >> (32 - destBits)
	}
	// With the router's own seed: the first pod address of another node's
	// /24 in 10.244.0.0/16 that shares pa's slot.
	var victim netip.Addr
search:
	for third := 1; third < 256; third++ {
		for last := 2; last < 255; last++ {
			if v := netip.AddrFrom4([4]byte{10, 244, byte(third), byte(last)}); slot(v) == slot(pa.ip) {
				victim = v
				break search
			}
		}
	}
	if !victim.IsValid() {
		t.Fatalf("no address of 10.244.0.0/16 shares %s's slot (seed %#x)", pa.ip, l.seed)
	}
	peerCIDR := netip.PrefixFrom(victim, 24).Masked()
	if err := n.r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{peerCIDR}}}); err != nil {
		t.Fatal(err)
	}

	for sent := 0; sent < 200; sent += 50 {
		batch := make([][]byte, 0, 50)
		for i := range 50 {
			batch = append(batch, ipv4(pa.ip, a4("10.244.0.99"), 64, header.UDPProtocolNumber, false, udpPayload(1, uint16(sent+i), 8)))
		}
		n.fromPod(0, batch...)
	}
	pa.dev.take()

	// The remote pod's traceroute to pa: this node is the hop whose TTL
	// runs out.
	before := n.r.Stats()
	for probe := range 3 {
		n.fromPeer(0, ipv4(victim, pa.ip, 1, header.UDPProtocolNumber, false, udpPayload(40000, 33434+uint16(probe), 24)))
	}
	if got := len(n.conn.take()); got != 3 {
		t.Errorf("the remote pod %s got %d of 3 time exceeded while local pod %s floods (both in slot %d, seed %#x)", victim, got, pa.ip, slot(pa.ip), l.seed)
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_ttl": 3, "icmp_time_exceeded": 3, "forwarded": 3, "tunnel_tx_packets": 3, "tunnel_tx_bytes": 3 * 80})
}
