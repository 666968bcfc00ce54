package router

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// arpDevice is a capDevice whose Read hands over the frames in in, once.
type arpDevice struct {
	capDevice
	in [][]byte
}

func (d *arpDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := min(len(bufs), len(d.in))
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], d.in[i])
	}
	d.in = d.in[n:]
	return n, nil
}

// The companion of TestAttackDirectQueuedCountedForwarded: a packet that
// waits in the direct backend for its peer's underlay MAC is forwarded
// once, when the peer answers and it leaves (tunnel_tx_resolved), not when
// it was queued.
func TestDirectQueuedCountedForwardedWhenSent(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	local, peerMAC := link.HardwareAddr{2, 0, 0, 0, 1, 1}, link.HardwareAddr{2, 0, 0, 0, 2, 2}
	underlay := &arpDevice{capDevice: capDevice{name: "eth0", mtu: 1500}}
	d, err := tunnel.NewDirect(underlay, tunnel.DirectConfig{LocalAddr: node1, LocalMAC: local, LocalPodCIDR: podCIDR0, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	n := newSyncNode(t, Config{Tunnel: d, TunnelMTU: 1500, Clock: clk}, 1450)
	pa := n.pods[0]
	pkt := ipv4(pa.ip, a4("10.244.1.5"), 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8))
	before := n.r.Stats()
	n.fromPod(0, pkt)
	wantDelta(t, n.r, before, nil) // queued: nothing forwarded, nothing dropped
	underlay.take()

	// node2's kernel answers SetPeers' request.
	reply := make([]byte, arp.FrameLen)
	arp.EncodeFrame(reply, local, peerMAC, &arp.Packet{Op: arp.OpReply, SenderMAC: peerMAC, SenderIP: node2, TargetMAC: local, TargetIP: node1})
	underlay.in = [][]byte{reply}
	bufs, sizes, starts, peers := make([][]byte, 1), make([]int, 1), make([]int, 1), make([]uint32, 1)
	bufs[0] = make([]byte, 2048)
	if got, err := d.Recv(bufs, sizes, starts, peers, 64); got != 1 || err != nil || sizes[0] != 0 {
		t.Fatalf("Recv of the reply = %d, %v, size %d; want 1, nil, 0", got, err, sizes[0])
	}
	out := underlay.take()
	if len(out) != 1 || link.HardwareAddr(out[0][0:6]) != peerMAC || len(out[0]) != ethHeaderLen+len(pkt) || header.IPv4(out[0][14:]).TTL() != 63 {
		t.Fatalf("underlay got %x, want the queued packet (TTL 63) to %v", out, peerMAC)
	}
	wantDelta(t, n.r, before, map[string]uint64{
		"forwarded": 1, "tunnel_tx_resolved": 1, "tunnel_tx_packets": 1, "tunnel_tx_bytes": uint64(len(pkt)),
		"tunnel_arp_learned": 1,
	})
}
