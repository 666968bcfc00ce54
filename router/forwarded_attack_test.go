package router

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// TestAttackDirectQueuedCountedForwarded: issue 8 item 9 says packets
// queued for resolution are not counted as forwarded until sent. The pod
// side does that (neighbourHooks.Resolved), but with the direct backend a
// packet for a peer whose underlay MAC is unknown is queued by the tunnel's
// own ARP table, and the router has already counted it as forwarded in
// transmit. When the peer never answers, the same packet is counted once
// more, as tunnel drop_no_neighbour: forwarded and dropped, for a packet
// that never left.
func TestAttackDirectQueuedCountedForwarded(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	underlay := &capDevice{name: "eth0", mtu: 1500}
	d, err := tunnel.NewDirect(underlay, tunnel.DirectConfig{LocalAddr: node1, LocalMAC: link.HardwareAddr{2, 0, 0, 0, 1, 1}, LocalPodCIDR: podCIDR0, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	n := newSyncNode(t, Config{Tunnel: d, TunnelMTU: 1500, Clock: clk}, 1450)
	n.clk = clk
	pa := n.pods[0]
	before := n.r.Stats()
	n.fromPod(0, ipv4(pa.ip, a4("10.244.1.5"), 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)))
	for range 50 { // 5 s: the underlay resolution fails (3 requests, 1 s apart)
		clk.Advance(100 * time.Millisecond)
		n.r.Tick()
	}
	after := n.r.Stats()
	if f, dn := after["forwarded"]-before["forwarded"], after["drop_no_neighbour"]-before["drop_no_neighbour"]; f != 0 || dn != 1 {
		t.Errorf("one packet to a peer that never answers ARP: forwarded +%d, drop_no_neighbour +%d; want +0 and +1", f, dn)
	}
}
