package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// vxlanPair returns two vxlan backends, node A and node B, whose fake sockets
// are wired to each other; see pairUp.
func vxlanPair(t *testing.T) (a, b *VXLAN, connA, connB *linktest.Conn) {
	t.Helper()
	connA, connB = wiredConns(DefaultVXLANPort)
	var err error
	if a, err = NewVXLAN(connA, VXLANConfig{LocalMAC: VTEPMAC(nodeA)}); err != nil {
		t.Fatal(err)
	}
	if b, err = NewVXLAN(connB, VXLANConfig{LocalMAC: VTEPMAC(nodeB)}); err != nil {
		t.Fatal(err)
	}
	pairUp(t, a, b)
	return a, b, connA, connB
}

func TestVXLANRoundTrip(t *testing.T) {
	a, b, _, _ := vxlanPair(t)
	pkts := [][]byte{
		ipv4Packet("10.244.0.4", "10.244.1.5", 0, 0),
		ipv4Packet("10.244.0.4", "10.244.1.6", 100, 1),
		ipv4Packet("10.244.0.5", "10.244.1.7", 1400, 2),
	}
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = withHeadroom(p)
	}
	n, err := a.Send(bufs, []uint32{1, 1, 1}, testOffset)
	if n != 3 || err != nil {
		t.Fatalf("Send = %d, %v; want 3, nil", n, err)
	}
	rbufs, sizes, starts, peers := recvBuffers(8)
	got := 0
	for got < len(pkts) {
		n, err := b.Recv(rbufs, sizes, starts, peers, testOffset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] == 0 || peers[i] != 0 || starts[i] != testOffset+vxlanHeadroom {
				t.Fatalf("packet %d: size %d start %d peer %d; want inner packet from peer 0 at %d", got, sizes[i], starts[i], peers[i], testOffset+vxlanHeadroom)
			}
			wantPacket(t, rbufs[i][starts[i]:starts[i]+sizes[i]], pkts[got])
			got++
		}
	}
	var bytes uint64
	for _, p := range pkts {
		bytes += uint64(len(p))
	}
	wantStats(t, a.Stats(), Stats{TxPackets: 3, TxBytes: bytes})
	wantStats(t, b.Stats(), Stats{RxPackets: 3, RxBytes: bytes})
}

// TestVXLANWireFormat checks every byte Send puts in front of the inner packet
// and the destination address, for the default and a custom VNI and MAC.
func TestVXLANWireFormat(t *testing.T) {
	peerMAC := link.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	for _, tc := range []struct {
		name    string
		cfg     VXLANConfig
		peer    Peer
		want    []byte // VXLAN header + inner Ethernet header
		wantDst netip.AddrPort
	}{{
		name: "flannel defaults",
		cfg:  VXLANConfig{LocalMAC: VTEPMAC(nodeA)},
		peer: Peer{Addr: nodeB},
		want: []byte{
			0x08, 0, 0, 0, 0, 0, 0x01, 0, // I flag, VNI 1
			0x0a, 0x58, 192, 0, 2, 2, // derived peer VTEP MAC
			0x0a, 0x58, 192, 0, 2, 1, // our VTEP MAC
			0x08, 0x00,
		},
		wantDst: addrPort(nodeB, 8472),
	}, {
		name: "IANA port, 24-bit VNI, configured peer MAC",
		cfg:  VXLANConfig{VNI: 0xabcdef, Port: 4789, LocalMAC: VTEPMAC(nodeA)},
		peer: Peer{Addr: nodeB, VTEPMAC: peerMAC},
		want: []byte{
			0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0,
			0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
			0x0a, 0x58, 192, 0, 2, 1,
			0x08, 0x00,
		},
		wantDst: addrPort(nodeB, 4789),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			conn := linktest.NewConn(addrPort(nodeA, tc.wantDst.Port()), 1)
			v, err := NewVXLAN(conn, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			v.SetPeers(indexed(tc.peer))
			inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
			if n, err := v.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 1 || err != nil {
				t.Fatalf("Send = %d, %v", n, err)
			}
			d := <-conn.Out
			if d.Addr != tc.wantDst {
				t.Errorf("sent to %v, want %v", d.Addr, tc.wantDst)
			}
			want := append(append([]byte(nil), tc.want...), inner...)
			if !bytes.Equal(d.Data, want) {
				t.Errorf("datagram\n got %x\nwant %x", d.Data, want)
			}
		})
	}
}

// validDatagram returns a datagram node A's backend sends to B.
func validDatagram(inner []byte) []byte {
	d := []byte{
		0x08, 0, 0, 0, 0, 0, 0x01, 0,
		0x0a, 0x58, 192, 0, 2, 2,
		0x0a, 0x58, 192, 0, 2, 1,
		0x08, 0x00,
	}
	return append(d, inner...)
}

func TestVXLANRecvChecks(t *testing.T) {
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	fromA := addrPort(nodeA, 51234) // the kernel sends from a hashed port
	edit := func(f func(d []byte) []byte) []byte { return f(validDatagram(inner)) }
	for _, tc := range []struct {
		name string
		src  netip.AddrPort
		d    []byte
		want Stats
	}{
		{"valid", fromA, validDatagram(inner), Stats{RxPackets: 1, RxBytes: uint64(len(inner))}},
		{"valid from IPv4-mapped source", netip.AddrPortFrom(netip.AddrFrom16(nodeA.As16()), 8472), validDatagram(inner), Stats{RxPackets: 1, RxBytes: uint64(len(inner))}},
		{"reserved bits ignored", fromA, edit(func(d []byte) []byte { d[0], d[1], d[7] = 0xff, 0xff, 0xff; return d }), Stats{RxPackets: 1, RxBytes: uint64(len(inner))}},
		{"broadcast inner destination", fromA, edit(func(d []byte) []byte { copy(d[8:14], link.Broadcast[:]); return d }), Stats{RxPackets: 1, RxBytes: uint64(len(inner))}},
		{"unknown peer", addrPort(nodeC, 8472), validDatagram(inner), Stats{DropUnknownPeer: 1}},
		{"I flag clear", fromA, edit(func(d []byte) []byte { d[0] = 0; return d }), Stats{DropBadVNI: 1}},
		{"wrong VNI", fromA, edit(func(d []byte) []byte { d[6] = 2; return d }), Stats{DropBadVNI: 1}},
		{"wrong inner MAC", fromA, edit(func(d []byte) []byte { d[13] = 3; return d }), Stats{DropBadMAC: 1}},
		{"multicast inner MAC", fromA, edit(func(d []byte) []byte { copy(d[8:14], []byte{1, 0, 0x5e, 0, 0, 1}); return d }), Stats{DropBadMAC: 1}},
		{"ARP ethertype", fromA, edit(func(d []byte) []byte { d[21] = 0x06; return d }), Stats{DropNotIPv4: 1}},
		{"IPv6 ethertype", fromA, edit(func(d []byte) []byte { d[20], d[21] = 0x86, 0xdd; return d }), Stats{DropNotIPv4: 1}},
		{"IP version 6", fromA, edit(func(d []byte) []byte { d[22] = 0x65; return d }), Stats{DropNotIPv4: 1}},
		{"IHL below 5", fromA, edit(func(d []byte) []byte { d[22] = 0x44; return d }), Stats{DropMalformed: 1}},
		{"total length below header", fromA, edit(func(d []byte) []byte { binary.BigEndian.PutUint16(d[24:26], 19); return d }), Stats{DropMalformed: 1}},
		{"total length beyond datagram", fromA, edit(func(d []byte) []byte { binary.BigEndian.PutUint16(d[24:26], uint16(len(inner)+1)); return d }), Stats{DropTruncated: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, b, _, connB := vxlanPair(t)
			got, peer := recvOne(t, b, connB, tc.src, tc.d)
			wantStats(t, b.Stats(), tc.want)
			if tc.want.RxPackets == 1 {
				wantPacket(t, got, inner)
				if peer != 0 {
					t.Errorf("peer = %d, want 0", peer)
				}
			} else if got != nil {
				t.Errorf("delivered %x, want drop", got)
			}
		})
	}
}

// TestVXLANRecvTruncated feeds every proper prefix of a valid datagram.
func TestVXLANRecvTruncated(t *testing.T) {
	_, b, _, connB := vxlanPair(t)
	d := validDatagram(ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee))
	for n := range len(d) {
		if got, _ := recvOne(t, b, connB, addrPort(nodeA, 8472), d[:n]); got != nil {
			t.Fatalf("%d-byte prefix delivered %x", n, got)
		}
	}
	wantStats(t, b.Stats(), Stats{DropTruncated: uint64(len(d))})
}

// TestVXLANRecvTrimsPadding: a minimum-size inner frame arrives padded to 60
// bytes; the IPv4 total length says where the packet ends.
func TestVXLANRecvTrimsPadding(t *testing.T) {
	_, b, _, connB := vxlanPair(t)
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 0, 0)
	d := append(validDatagram(inner), make([]byte, 60-ethHeaderLen-len(inner))...)
	got, _ := recvOne(t, b, connB, addrPort(nodeA, 8472), d)
	wantPacket(t, got, inner)
}

func TestVXLANSendUnknownPeer(t *testing.T) {
	a, _, _, _ := vxlanPair(t)
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	bufs := [][]byte{withHeadroom(inner), withHeadroom(inner), withHeadroom(inner)}
	n, err := a.Send(bufs, []uint32{1, 2, 7}, testOffset)
	if n != 1 || err != nil {
		t.Fatalf("Send = %d, %v; want 1, nil", n, err)
	}
	wantStats(t, a.Stats(), Stats{TxPackets: 1, TxBytes: uint64(len(inner)), DropUnknownPeer: 2})
}

func TestVXLANSendShortHeadroom(t *testing.T) {
	a, _, _, _ := vxlanPair(t)
	b := make([]byte, vxlanHeadroom-1+20)
	if _, err := a.Send([][]byte{b}, []uint32{1}, vxlanHeadroom-1); !errors.Is(err, errShortHeadroom) {
		t.Fatalf("Send with offset %d: err = %v, want %v", vxlanHeadroom-1, err, errShortHeadroom)
	}
}

// TestVXLANSetPeersReindexes: after SetPeers, Recv reports the new index of
// the same node and forgets removed nodes.
func TestVXLANSetPeersReindexes(t *testing.T) {
	_, b, _, connB := vxlanPair(t)
	d := validDatagram(ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee))
	b.SetPeers(indexed(Peer{Addr: nodeC}, Peer{Addr: nodeA}))
	if got, peer := recvOne(t, b, connB, addrPort(nodeA, 8472), d); got == nil || peer != 1 {
		t.Fatalf("after reorder: delivered %v from peer %d, want peer 1", got != nil, peer)
	}
	b.SetPeers(indexed(Peer{Addr: nodeC}))
	if got, _ := recvOne(t, b, connB, addrPort(nodeA, 8472), d); got != nil {
		t.Fatal("datagram from a removed peer delivered")
	}
}

func TestNewVXLANErrors(t *testing.T) {
	conn := linktest.NewConn(addrPort(nodeA, 8472), 1)
	if _, err := NewVXLAN(conn, VXLANConfig{}); err == nil {
		t.Error("NewVXLAN without LocalMAC succeeded")
	}
	if _, err := NewVXLAN(conn, VXLANConfig{VNI: 1 << 24, LocalMAC: macA}); err == nil {
		t.Error("NewVXLAN with a 25-bit VNI succeeded")
	}
}
