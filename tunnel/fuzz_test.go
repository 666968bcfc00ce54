package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// dispositions sums the counters of which every received datagram or frame
// moves exactly one: delivered, one of the drops, ignored, or consumed as
// ARP.
func dispositions(s Stats) uint64 {
	return s.RxPackets + s.DropUnknownPeer + s.DropBadVNI + s.DropTruncated + s.DropNotIPv4 +
		s.DropMalformed + s.DropBadMAC + s.DropVLAN + s.Ignored + s.ARPLearned + s.ARPConflicts + s.ARPUnsolicited
}

// checkReceived fails unless one Recv of one input moved exactly one
// disposition counter, and what it delivered lies within the buffer, is an
// IPv4 packet of exactly its total length, and (if Recv completed its
// checksum) has a checksum that verifies.
func checkReceived(t *testing.T, before, after Stats, n int, buf []byte, size, start int) {
	t.Helper()
	if n != 1 {
		t.Fatalf("Recv returned %d, want 1", n)
	}
	if d := dispositions(after) - dispositions(before); d != 1 {
		t.Fatalf("one input moved %d disposition counters: before %+v after %+v", d, before, after)
	}
	delivered := after.RxPackets - before.RxPackets
	if (size != 0) != (delivered == 1) {
		t.Fatalf("size %d but rx_packets moved by %d", size, delivered)
	}
	if size == 0 {
		return
	}
	if start < 0 || start+size > len(buf) || size < ipv4HeaderLen {
		t.Fatalf("delivered [%d:%d] of a %d-byte buffer", start, start+size, len(buf))
	}
	p := buf[start : start+size]
	if p[0]>>4 != 4 || int(p[0]&0x0f)*4 < ipv4HeaderLen || int(p[0]&0x0f)*4 > size || int(binary.BigEndian.Uint16(p[2:4])) != size {
		t.Fatalf("delivered a packet that is not IPv4 of its total length %d: %x", size, p)
	}
	if after.ChecksumsCompleted != before.ChecksumsCompleted && !verifies(p) {
		t.Fatalf("completed checksum does not verify: %x", p)
	}
}

func FuzzVXLANRecv(f *testing.F) {
	tcp := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 100)
	f.Add(validDatagram(tcp), true)
	f.Add(validDatagram(partial(tcp)), true)
	f.Add(validDatagram(ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)), false)
	f.Add([]byte{0x08, 0, 0, 0}, true)
	conn := linktest.NewConn(addrPort(nodeB, DefaultVXLANPort), 1)
	v, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(nodeB)})
	if err != nil {
		f.Fatal(err)
	}
	v.SetPeers(indexed(Peer{Addr: nodeA}))
	fuzzDatagrams(f, v, conn)
}

func FuzzUDPRecv(f *testing.F) {
	tcp := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 100)
	f.Add(tcp, true)
	f.Add(partial(transportPacket("10.244.0.4", "10.244.1.5", protoUDP, 3)), true)
	f.Add(tcp[:19], false)
	conn := linktest.NewConn(addrPort(nodeB, DefaultUDPPort), 1)
	u, _ := NewUDP(conn, UDPConfig{})
	u.SetPeers(indexed(Peer{Addr: nodeA}))
	fuzzDatagrams(f, u, conn)
}

// fuzzDatagrams feeds each input to tun as a datagram from its peer (or from
// a stranger) and checks checkReceived's invariants.
func fuzzDatagrams(f *testing.F, tun Tunnel, conn *linktest.Conn) {
	bufs, sizes, starts, peers := recvBuffers(1)
	f.Fuzz(func(t *testing.T, d []byte, fromPeer bool) {
		if len(d) > len(bufs[0])-testOffset {
			d = d[:len(bufs[0])-testOffset]
		}
		src := addrPort(nodeA, 40000)
		if !fromPeer {
			src = addrPort(nodeC, 40000)
		}
		before := tun.Stats()
		conn.In <- linktest.Datagram{Addr: src, Data: d}
		n, _ := tun.Recv(bufs, sizes, starts, peers, testOffset)
		checkReceived(t, before, tun.Stats(), n, bufs[0], sizes[0], starts[0])
		if sizes[0] != 0 && tun.Stats().ChecksumsCompleted == before.ChecksumsCompleted &&
			!bytes.Equal(bufs[0][starts[0]:starts[0]+sizes[0]], d[starts[0]-testOffset:][:sizes[0]]) {
			t.Fatalf("delivered bytes differ from the datagram's")
		}
	})
}

func FuzzDirectRecv(f *testing.F) {
	inner := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 100)
	f.Add(ipv4Frame(underlayMACA, underlayMACB, inner), uint8(0))
	f.Add(ipv4Frame(underlayMACA, strangerMAC, partial(inner)), uint8(link.RxChecksumPartial))
	f.Add(ipv4Frame(underlayMACA, underlayMACB, inner), uint8(link.RxVLAN))
	f.Add(arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA), uint8(0))
	f.Add(arpFrame(arp.OpReply, underlayMACA, strangerMAC, nodeB, nodeA), uint8(0))
	f.Add(arpFrame(arp.OpRequest, link.Broadcast, strangerMAC, nodeC, nodeA), uint8(0))
	dev := &metaDevice{Device: linktest.NewDevice("underlay", 1500, 64)}
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: &fakeClock{}})
	if err != nil {
		f.Fatal(err)
	}
	d.SetPeers(indexed(Peer{Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}}, Peer{Addr: nodeC}))
	bufs, sizes, starts, peers := recvBuffers(1)
	f.Fuzz(func(t *testing.T, frame []byte, meta uint8) {
		for len(dev.Out) > 0 {
			<-dev.Out // probes and requests the frames caused
		}
		if len(frame) > len(bufs[0])-testOffset {
			frame = frame[:len(bufs[0])-testOffset]
		}
		dev.next = link.RxMeta(meta)
		before := d.Stats()
		dev.In <- frame
		n, _ := d.Recv(bufs, sizes, starts, peers, testOffset)
		after := d.Stats()
		checkReceived(t, before, after, n, bufs[0], sizes[0], starts[0])
		if sizes[0] != 0 {
			if starts[0] != testOffset+ethHeaderLen || int(peers[0]) >= 2 {
				t.Fatalf("delivered at %d from peer %d", starts[0], peers[0])
			}
			got := bufs[0][starts[0] : starts[0]+sizes[0]]
			if after.ChecksumsCompleted == before.ChecksumsCompleted && !bytes.Equal(got, frame[ethHeaderLen:ethHeaderLen+sizes[0]]) {
				t.Fatalf("delivered bytes differ from the frame's")
			}
		}
	})
}

// FuzzCompleteChecksum: whatever the packet, completeChecksum changes at
// most the two bytes of the transport checksum field, and when it reports a
// completion the checksum verifies.
func FuzzCompleteChecksum(f *testing.F) {
	tcp := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 100)
	f.Add(tcp, false)
	f.Add(partial(tcp), false)
	f.Add(partial(transportPacket("10.244.1.5", "10.244.0.4", protoUDP, 7)), true)
	f.Fuzz(func(t *testing.T, p []byte, always bool) {
		size, reason := checkIPv4(p)
		if reason != dropNone {
			return
		}
		p = p[:size]
		mode := completeIfPartial
		if always {
			mode = completeAlways
		}
		orig := bytes.Clone(p)
		done := completeChecksum(p, mode)
		field := int(p[0]&0x0f)*4 + checksumOffset(p[9])
		for i := range p {
			if p[i] != orig[i] && (!done || i < field || i > field+1) {
				t.Fatalf("byte %d changed: %x → %x", i, orig, p)
			}
		}
		if done && !verifies(p) {
			t.Fatalf("completed checksum does not verify: %x", p)
		}
		if !always && verifies(orig) && done {
			t.Fatalf("completed a checksum that verified: %x", orig)
		}
	})
}
