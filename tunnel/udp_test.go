package tunnel

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link/linktest"
)

// udpPair returns two udp backends, A and B, wired to each other; see
// pairUp.
func udpPair(t *testing.T) (a, b *UDP, connA, connB *linktest.Conn) {
	t.Helper()
	connA, connB = wiredConns(DefaultUDPPort)
	a, _ = NewUDP(connA, UDPConfig{})
	b, _ = NewUDP(connB, UDPConfig{})
	pairUp(t, a, b)
	return a, b, connA, connB
}

func TestUDPRoundTrip(t *testing.T) {
	a, b, _, _ := udpPair(t)
	pkts := [][]byte{
		ipv4Packet("10.244.0.4", "10.244.1.5", 0, 0),
		ipv4Packet("10.244.0.4", "10.244.1.6", 1400, 2),
	}
	bufs := [][]byte{withHeadroom(pkts[0]), withHeadroom(pkts[1])}
	if n, err := a.Send(bufs, []uint32{1, 1}, testOffset); n != 2 || err != nil {
		t.Fatalf("Send = %d, %v; want 2, nil", n, err)
	}
	rbufs, sizes, starts, peers := recvBuffers(8)
	for got := 0; got < len(pkts); {
		n, err := b.Recv(rbufs, sizes, starts, peers, testOffset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] == 0 || peers[i] != 0 || starts[i] != testOffset {
				t.Fatalf("packet %d: size %d start %d peer %d", got, sizes[i], starts[i], peers[i])
			}
			wantPacket(t, rbufs[i][starts[i]:starts[i]+sizes[i]], pkts[got])
			got++
		}
	}
	total := uint64(len(pkts[0]) + len(pkts[1]))
	wantStats(t, a.Stats(), Stats{TxPackets: 2, TxBytes: total})
	wantStats(t, b.Stats(), Stats{RxPackets: 2, RxBytes: total})
}

// TestUDPWireFormat: the datagram is the inner packet, unchanged, to peer:8285.
func TestUDPWireFormat(t *testing.T) {
	conn := linktest.NewConn(addrPort(nodeA, DefaultUDPPort), 1)
	u, _ := NewUDP(conn, UDPConfig{Port: 9000})
	defer u.Close()
	u.SetPeers(indexed(Peer{Addr: nodeB}))
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, err := u.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 1 || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	d := <-conn.Out
	if d.Addr != addrPort(nodeB, 9000) {
		t.Errorf("sent to %v, want %v", d.Addr, addrPort(nodeB, 9000))
	}
	wantPacket(t, d.Data, inner)
}

func TestUDPSendUnknownPeer(t *testing.T) {
	a, _, _, _ := udpPair(t)
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, _ := a.Send([][]byte{withHeadroom(inner)}, []uint32{2}, testOffset); n != 0 || a.Stats().DropUnknownPeer != 1 {
		t.Errorf("Send to peer index 2 of 2: sent %d, drop_unknown_peer %d; want 0, 1", n, a.Stats().DropUnknownPeer)
	}
}

func TestUDPRecvChecks(t *testing.T) {
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	fromA := addrPort(nodeA, 40000)
	edit := func(f func(d []byte)) []byte { d := append([]byte(nil), inner...); f(d); return d }
	ok := Stats{RxPackets: 1, RxBytes: uint64(len(inner))}
	for _, tc := range []struct {
		name string
		src  netip.AddrPort
		d    []byte
		want Stats
	}{
		{"valid", fromA, inner, ok},
		{"padding trimmed", fromA, append(append([]byte(nil), inner...), 0, 0, 0, 0), ok},
		{"unknown peer", addrPort(nodeC, DefaultUDPPort), inner, Stats{DropUnknownPeer: 1}},
		{"IP version 6", fromA, edit(func(d []byte) { d[0] = 0x60 }), Stats{DropNotIPv4: 1}},
		{"IHL below 5", fromA, edit(func(d []byte) { d[0] = 0x41 }), Stats{DropMalformed: 1}},
		{"IHL beyond total length", fromA, edit(func(d []byte) { d[0] = 0x4f }), Stats{DropMalformed: 1}},
		{"total length beyond datagram", fromA, edit(func(d []byte) { binary.BigEndian.PutUint16(d[2:4], 100) }), Stats{DropTruncated: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, _, connB := udpPair(t)
			got, _ := recvOne(t, b, connB, tc.src, tc.d)
			wantStats(t, b.Stats(), tc.want)
			if tc.want.RxPackets == 1 {
				wantPacket(t, got, inner)
			} else if got != nil {
				t.Errorf("delivered %x, want drop", got)
			}
		})
	}
}

func TestUDPRecvTruncated(t *testing.T) {
	_, b, _, connB := udpPair(t)
	d := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	for n := range len(d) {
		if got, _ := recvOne(t, b, connB, addrPort(nodeA, 1), d[:n]); got != nil {
			t.Fatalf("%d-byte prefix delivered %x", n, got)
		}
	}
	wantStats(t, b.Stats(), Stats{DropTruncated: uint64(len(d))})
}
