package router

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/tunnel"
)

// Every packet that reaches the egress moves exactly one counter: forwarded
// when its device or the tunnel took it, or one drop reason when not; never
// both (item 9: no silent loss, no double count).
func TestEveryPacketMovesOneCounter(t *testing.T) {
	udp := func(src, dst netip.Addr, port uint16) []byte {
		return ipv4(src, dst, 64, header.UDPProtocolNumber, false, udpPayload(1, port, 8))
	}
	world := a4("8.8.8.8")

	t.Run("device refuses", func(t *testing.T) {
		n := newSyncNode(t, Config{}, 1450, 1450)
		pa, pb := n.pods[0], n.pods[1]
		pb.dev.fail, n.host.fail = true, true
		before := n.r.Stats()
		n.fromPod(0, udp(pa.ip, pb.ip, 1), udp(pa.ip, pb.ip, 2), udp(pa.ip, world, 3))
		wantDelta(t, n.r, before, map[string]uint64{"drop_tx_error": 3})
		if d, tx := pb.port.Drops.Load(), pb.port.TxPackets.Load(); d != 2 || tx != 0 {
			t.Errorf("pb: %d drops, %d tx packets; want 2, 0", d, tx)
		}
		// The same packets once the devices take them again.
		pb.dev.fail, n.host.fail = false, false
		before = n.r.Stats()
		n.fromPod(0, udp(pa.ip, pb.ip, 1), udp(pa.ip, pb.ip, 2), udp(pa.ip, world, 3))
		wantDelta(t, n.r, before, map[string]uint64{"forwarded": 3})
		if got := len(pb.dev.take()) + len(n.host.take()); got != 3 {
			t.Errorf("%d packets sent, want 3", got)
		}
	})

	t.Run("port removed", func(t *testing.T) {
		// The egress stage runs after the route lookup: the port goes
		// between the lookup and the write, as RemovePort on another
		// goroutine can make it.
		var r *Router
		remove := StageFunc{StageName: "remove", Func: func(p *Packet) {
			if _, ok := r.Port("p1"); ok {
				if err := r.RemovePort("p1"); err != nil {
					panic(err)
				}
			}
		}}
		n := newSyncNode(t, Config{EgressStages: []Stage{remove}}, 1450, 1450)
		r = n.r
		pa, pb := n.pods[0], n.pods[1]
		before := n.r.Stats()
		n.fromPod(0, udp(pa.ip, pb.ip, 1), udp(pa.ip, pb.ip, 2))
		wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 2})
		if got := len(pb.dev.take()); got != 0 {
			t.Errorf("the removed port was sent %d packets", got)
		}
	})

	t.Run("host port missing", func(t *testing.T) {
		n := newSyncNode(t, Config{}, 1450)
		pa := n.pods[0]
		n.r.mu.Lock()
		n.r.publish(func(ps []*Port) []*Port { ps[HostPortID] = nil; return ps })
		n.r.mu.Unlock()
		before := n.r.Stats()
		n.fromPod(0, udp(pa.ip, world, 1), udp(pa.ip, world, 2))
		wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 2})
		if got := len(n.host.take()); got != 0 {
			t.Errorf("the host device was sent %d packets", got)
		}
	})

	t.Run("tunnel refuses part of a batch", func(t *testing.T) {
		n := newSyncNode(t, Config{}, 1450)
		pa := n.pods[0]
		n.conn.limit(1)
		peerPod := a4("10.244.1.5")
		pkt := udp(pa.ip, peerPod, 1)
		before := n.r.Stats()
		n.fromPod(0, pkt, udp(pa.ip, peerPod, 2), udp(pa.ip, peerPod, 3))
		wantDelta(t, n.r, before, map[string]uint64{
			"forwarded": 1, "drop_tx_error": 2,
			"tunnel_tx_packets": 1, "tunnel_tx_bytes": uint64(len(pkt)), "tunnel_tx_errors": 2,
		})
		if out := n.conn.take(); len(out) != 1 || out[0].Addr.Addr() != node2 {
			t.Errorf("sent %v, want one datagram to %s", out, node2)
		}
	})
}

// The direct backend queues a packet whose peer MAC it is still resolving:
// it is not forwarded until the underlay ARP reply comes and it is sent
// (tunnel_tx_resolved, in forwarded), and it is drop_no_neighbour, not
// forwarded, when the peer never answers.
func TestDirectQueuedCountWhenSent(t *testing.T) {
	localMAC := link.HardwareAddr{2, 0xaa, 0, 0, 0, 1}
	node2MAC := link.HardwareAddr{2, 0xaa, 0, 0, 0, 2}
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	under := linktest.NewDevice("underlay", 1500, 64)
	d, err := tunnel.NewDirect(under, tunnel.DirectConfig{LocalAddr: node1, LocalMAC: localMAC, LocalPodCIDR: podCIDR0, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	n := newSyncNode(t, Config{Tunnel: d, TunnelMTU: 1500, Clock: clk}, 1450)
	drain := func() (frames [][]byte) {
		for {
			select {
			case f := <-under.Out:
				frames = append(frames, f)
			default:
				return frames
			}
		}
	}
	// SetPeers asks for every peer's MAC (an Incomplete entry each, so that
	// only their solicited replies are taken).
	if got := len(drain()); got != 2 {
		t.Fatalf("%d frames on the underlay after SetPeers, want an ARP request per peer (2)", got)
	}
	pa := n.pods[0]
	pkt := func(dst string, port uint16) []byte {
		return ipv4(pa.ip, a4(dst), 64, header.UDPProtocolNumber, false, udpPayload(1, port, 8))
	}

	before := n.r.Stats()
	n.fromPod(0, pkt("10.244.1.5", 1), pkt("10.244.1.5", 2))
	wantDelta(t, n.r, before, map[string]uint64{}) // queued behind SetPeers' request: neither forwarded nor dropped
	if got := len(drain()); got != 0 {
		t.Fatalf("%d frames on the underlay, want none (the request is out already)", got)
	}

	reply := arp.Packet{Op: arp.OpReply, SenderMAC: node2MAC, SenderIP: node2, TargetMAC: localMAC, TargetIP: node1}
	f := make([]byte, arp.FrameLen)
	arp.EncodeFrame(f, localMAC, node2MAC, &reply)
	under.In <- f
	before = n.r.Stats()
	if _, err := d.Recv(n.tw.bufs, n.tw.sizes, n.tw.starts, n.tw.peers, headroom); err != nil {
		t.Fatal(err)
	}
	size := uint64(len(pkt("10.244.1.5", 1)))
	wantDelta(t, n.r, before, map[string]uint64{
		"forwarded": 2, "tunnel_tx_resolved": 2, "tunnel_tx_packets": 2, "tunnel_tx_bytes": 2 * size, "tunnel_arp_learned": 1,
	})
	out := drain()
	if len(out) != 2 || link.HardwareAddr(out[0][0:6]) != node2MAC || link.HardwareAddr(out[1][0:6]) != node2MAC {
		t.Fatalf("underlay got %d frames, want the 2 queued ones to %s", len(out), node2MAC)
	}

	// node3 never answers.
	before = n.r.Stats()
	n.fromPod(0, pkt("10.244.2.5", 1))
	for range 50 {
		clk.Advance(100 * time.Millisecond)
		n.r.Tick()
	}
	drain()
	wantDelta(t, n.r, before, map[string]uint64{
		// 3 probes in all; the first went out at SetPeers.
		"drop_no_neighbour": 1, "tunnel_drop_no_neighbour": 1, "tunnel_arp_requests": 2, "tunnel_arp_failures": 1,
	})
}
