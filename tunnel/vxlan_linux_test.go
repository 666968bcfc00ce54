package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/udp"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// TestVXLANKernelInterop runs the vxlan backend against a Linux kernel vxlan
// device configured exactly as flannel configures flannel.1, across a veth
// pair between two network namespaces the test creates (underlayPair):
//
//	a: our backend on a UDP socket at underlayA:8472
//	b: flannel.1 (VNI 1, dstport 8472, nolearning), 10.244.1.0/32,
//	   route 10.244.0.0/24 via 10.244.0.0 onlink
//
// It runs twice: sending from the VXLAN port, and through 8 senders on
// ports of their own (VXLANConfig.Senders): the kernel takes any source
// port.
func TestVXLANKernelInterop(t *testing.T) {
	t.Run("from-8472", func(t *testing.T) { testVXLANKernelInterop(t, 0) })
	t.Run("senders", func(t *testing.T) { testVXLANKernelInterop(t, 8) })
}

func testVXLANKernelInterop(t *testing.T, nSenders int) {
	a, b := underlayPair(t)
	ourMAC := VTEPMAC(underlayA)

	// flannel's vxlan backend, verbatim.
	b.IP("link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", underlayB.String(),
		"dev", "veth-b", "dstport", "8472", "nolearning")
	b.IP("addr", "add", "10.244.1.0/32", "dev", "flannel.1")
	b.IP("link", "set", "flannel.1", "up")
	b.MustExec("bridge", "fdb", "append", ourMAC.String(), "dev", "flannel.1", "dst", underlayA.String())
	b.IP("neigh", "replace", "10.244.0.0", "lladdr", ourMAC.String(), "dev", "flannel.1", "nud", "permanent")
	b.IP("route", "replace", "10.244.0.0/24", "via", "10.244.0.0", "dev", "flannel.1", "onlink")
	b.WaitActive("flannel.1")
	kernelMAC, err := link.ParseMAC(flannelLink(t, b).Address)
	if err != nil {
		t.Fatal(err)
	}

	conn, senders := listenVXLAN(t, a, nSenders)
	tun, err := NewVXLAN(conn, VXLANConfig{LocalMAC: ourMAC, Senders: senders})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	peers := []Peer{{Node: "b", Addr: underlayB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}, VTEPMAC: kernelMAC}}
	tun.SetPeers(indexed(peers...))
	replies := receiveAll(tun)

	send := func(tun *VXLAN, seq uint16) {
		t.Helper()
		pkt := withHeadroom(icmpEcho("10.244.0.4", "10.244.1.0", seq))
		if n, err := tun.Send([][]byte{pkt}, []uint32{0}, testOffset); n != 1 || err != nil {
			t.Fatalf("Send = %d, %v", n, err)
		}
	}

	send(tun, 1)
	expectEchoReply(t, replies, "10.244.1.0", "10.244.0.4", 1)
	rxBefore := flannelLink(t, b).Stats64.Rx.Packets

	// The same request under VNI 2: the kernel has no VTEP for it.
	wrongVNI, err := NewVXLAN(conn, VXLANConfig{VNI: 2, LocalMAC: ourMAC, Senders: senders}) // shares the sockets; never closed
	if err != nil {
		t.Fatal(err)
	}
	wrongVNI.SetPeers(indexed(peers...))
	send(wrongVNI, 2)
	select {
	case r := <-replies:
		t.Fatalf("kernel answered a VNI 2 datagram: %x", r)
	case <-time.After(300 * time.Millisecond):
	}
	if rx := flannelLink(t, b).Stats64.Rx.Packets; rx != rxBefore {
		t.Errorf("flannel.1 rx_packets went from %d to %d after a VNI 2 datagram, want unchanged", rxBefore, rx)
	}

	send(tun, 3) // the path still works, and reply 2 never comes
	expectEchoReply(t, replies, "10.244.1.0", "10.244.0.4", 3)
	if s := tun.Stats(); s.TxPackets != 2 || s.RxPackets != 2 || s.DropBadVNI+s.DropUnknownPeer+s.DropBadMAC+s.DropTruncated != 0 {
		t.Errorf("stats %+v: want 2 sent, 2 received, no drops", s)
	}
	if w := conn.WriteStats(); nSenders > 0 && w.Messages != 0 {
		t.Errorf("the VXLAN socket sent %d messages, want 0: the senders send", w.Messages)
	}
}

// listenVXLAN opens, in ns, the VXLAN socket on underlayA:8472 and n
// senders (udp.ListenSenders), closed at cleanup unless a backend closed
// them.
func listenVXLAN(t testing.TB, ns *netnstest.NS, n int) (*udp.Conn, []link.DatagramConn) {
	t.Helper()
	var conn *udp.Conn
	var conns []*udp.Conn
	var err error
	ns.Do(func() {
		if conn, err = udp.Listen(netip.AddrPortFrom(underlayA, DefaultVXLANPort)); err == nil && n > 0 {
			conns, err = udp.ListenSenders(underlayA, n)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	senders := make([]link.DatagramConn, len(conns))
	for i, c := range conns {
		senders[i] = c
	}
	t.Cleanup(func() {
		conn.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return conn, senders
}

// TestVXLANSourcePorts sends two inner TCP flows, interleaved in one batch
// and then one packet at a time, through a vxlan backend with 8 senders in
// namespace a, and reads the outer datagrams with a plain UDP socket on
// underlayB:8472 in namespace b: every packet of a flow leaves from the one
// port of the sender its flow hashes to (two flows the test knows hash to
// different senders), in order, from an ephemeral port of a's local port
// range; and a batch's packets of one sender still go as one GSO message.
func TestVXLANSourcePorts(t *testing.T) {
	a, b := underlayPair(t)
	conn, senders := listenVXLAN(t, a, 8)
	tun, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(underlayA), Senders: senders})
	if err != nil {
		t.Fatal(err)
	}
	tun.SetPeers(indexed(Peer{Node: "b", Addr: underlayB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}}))

	var rx *net.UDPConn
	b.Do(func() {
		rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(underlayB, DefaultVXLANPort)))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })

	// Flow 1 from port 40000; flow 2 from the first port after it whose
	// flow goes through another sender.
	flow := func(sport uint16, seq uint32) []byte {
		p := flowPacket("10.244.0.4", "10.244.1.5", protoTCP, sport, 80, 1000)
		binary.BigEndian.PutUint32(p[ipv4HeaderLen+4:], seq)
		return withHeadroom(p)
	}
	const sport1 = 40000
	k1 := senderOf(flow(sport1, 0)[testOffset:], len(senders))
	sport2 := uint16(sport1 + 1)
	for senderOf(flow(sport2, 0)[testOffset:], len(senders)) == k1 {
		sport2++
	}
	k2 := senderOf(flow(sport2, 0)[testOffset:], len(senders))
	wantPort := map[uint16]uint16{sport1: senders[k1].LocalAddr().Port(), sport2: senders[k2].LocalAddr().Port()}

	send := func(bufs ...[]byte) {
		t.Helper()
		if n, err := tun.Send(bufs, make([]uint32, len(bufs)), testOffset); n != len(bufs) || err != nil {
			t.Fatalf("Send = %d, %v; want %d, nil", n, err, len(bufs))
		}
	}
	send(flow(sport1, 1), flow(sport2, 1), flow(sport1, 2), flow(sport2, 2), flow(sport1, 3), flow(sport2, 3))
	send(flow(sport1, 4))
	send(flow(sport2, 4))
	send(flow(sport1, 5))
	const total = 9

	lo, hi := localPortRange(t, a)
	seen := map[uint16]uint32{} // inner source port: last sequence number
	count := map[uint16]int{}
	buf := make([]byte, 2048)
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range total {
		n, from, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i+1, total, err)
		}
		d := buf[:n]
		if n != vxlanHeadroom+ipv4HeaderLen+20+1000 || d[0] != vxlanFlagI {
			t.Fatalf("datagram %d: %d bytes %x, want a vxlan datagram of the 1040-byte inner packet", i+1, n, d[:min(n, 64)])
		}
		inner := d[vxlanHeadroom:]
		sport, seq := binary.BigEndian.Uint16(inner[20:22]), binary.BigEndian.Uint32(inner[24:28])
		want, ok := wantPort[sport]
		if !ok {
			t.Fatalf("datagram %d carries inner source port %d, sent none", i+1, sport)
		}
		if from.Addr() != underlayA || from.Port() != want {
			t.Errorf("flow from port %d, packet %d: outer source %v, want %v:%d (sender %d of its hash)", sport, seq, from, underlayA, want, senderOf(inner, len(senders)))
		}
		if p := int(from.Port()); p < lo || p > hi || p == DefaultVXLANPort {
			t.Errorf("outer source port %d is not an ephemeral port of %d-%d", p, lo, hi)
		}
		if seq != seen[sport]+1 {
			t.Errorf("flow from port %d: packet %d after %d", sport, seq, seen[sport])
		}
		seen[sport] = seq
		count[sport]++
	}
	if wantPort[sport1] == wantPort[sport2] {
		t.Errorf("two senders share port %d", wantPort[sport1])
	}
	if count[sport1] != 5 || count[sport2] != 4 {
		t.Errorf("received %d and %d packets of the flows, want 5 and 4", count[sport1], count[sport2])
	}

	// The batch went as one GSO message of 3 per sender, the rest alone;
	// the counters are the senders' sums, and the VXLAN socket sent none.
	s := tun.Stats()
	if !senders[k1].(*udp.Conn).GSO() || !senders[k2].(*udp.Conn).GSO() {
		t.Fatal("the senders have no UDP GSO on this kernel")
	}
	if s.TxPackets != total || s.TxErrors != 0 || s.TxMessages != 5 || s.TxGSOMessages != 2 || s.TxGSODatagrams != 6 {
		t.Errorf("stats %+v: want 9 packets in 5 messages, 2 of them GSO with 6 datagrams", s)
	}
	if w := conn.WriteStats(); w.Messages != 0 {
		t.Errorf("the VXLAN socket sent %d messages, want 0", w.Messages)
	}
}

// BenchmarkSendUnderlay is Send of batches of 64 1400-byte packets through
// real sockets over the veth pair (into a socket in namespace b that drops
// everything): from the VXLAN socket (senders=0) or through 8 senders, for
// batches of 1, 4 and 64 flows. Each sender a batch uses is a sendmmsg of
// its own, which is what spreading costs.
func BenchmarkSendUnderlay(b *testing.B) {
	for _, n := range []int{0, 8} {
		for _, flows := range []int{1, 4, 64} {
			b.Run(fmt.Sprintf("senders=%d/flows=%d", n, flows), func(b *testing.B) {
				nsA, nsB := underlayPair(b)
				conn, senders := listenVXLAN(b, nsA, n)
				tun, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(underlayA), Senders: senders})
				if err != nil {
					b.Fatal(err)
				}
				tun.SetPeers(indexed(Peer{Addr: underlayB}))
				var sink *udp.Conn
				nsB.Do(func() { sink, err = udp.Listen(netip.AddrPortFrom(underlayB, DefaultVXLANPort), udp.SendOnly()) })
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { sink.Close() })
				const batch = 64
				bufs, dst := make([][]byte, batch), make([]uint32, batch)
				for i := range bufs {
					bufs[i] = withHeadroom(flowPacket("10.244.0.4", "10.244.1.5", protoTCP, uint16(40000+i%flows), 5201, benchInnerLen-40))
				}
				send := func() {
					if n, err := tun.Send(bufs, dst, testOffset); n != batch || err != nil {
						b.Fatalf("Send = %d, %v", n, err)
					}
				}
				send() // the sockets' send batches are made at first use
				b.SetBytes(batch * benchInnerLen)
				b.ReportAllocs()
				for b.Loop() {
					send()
				}
				s := tun.Stats()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/pkt")
				b.ReportMetric(float64(s.TxMessages)/float64(s.TxPackets)*batch, "msgs/batch")
			})
		}
	}
}

// localPortRange returns ns's net.ipv4.ip_local_port_range.
func localPortRange(t testing.TB, ns *netnstest.NS) (lo, hi int) {
	t.Helper()
	out := ns.MustExec("cat", "/proc/sys/net/ipv4/ip_local_port_range")
	if _, err := fmt.Sscan(out, &lo, &hi); err != nil {
		t.Fatalf("ip_local_port_range %q: %v", out, err)
	}
	return lo, hi
}

type ipLink struct {
	Address string `json:"address"`
	Stats64 struct {
		Rx struct {
			Packets uint64 `json:"packets"`
		} `json:"rx"`
	} `json:"stats64"`
}

// flannelLink returns flannel.1's MAC and counters in ns.
func flannelLink(t *testing.T, ns *netnstest.NS) ipLink {
	t.Helper()
	out := ns.IP("-j", "-s", "link", "show", "dev", "flannel.1")
	var links []ipLink
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("parsing ip -j link output %q: %v", out, err)
	}
	return links[0]
}
