package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link/linktest"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

const testOffset = 64 // headroom the tests leave in front of inner packets

var (
	nodeA = netip.MustParseAddr("192.0.2.1")
	nodeB = netip.MustParseAddr("192.0.2.2")
	nodeC = netip.MustParseAddr("192.0.2.3")
)

// ipv4Packet returns an IPv4 packet from src to dst with protocol UDP and n
// bytes of payload, each set to fill.
func ipv4Packet(src, dst string, n int, fill byte) []byte {
	p := ipv4Header(src, dst, 17, n)
	for i := ipv4HeaderLen; i < len(p); i++ {
		p[i] = fill
	}
	return p
}

// ipv4Header returns a packet of 20+n bytes with a valid IPv4 header (TTL
// 64, checksum set) and n zero bytes of payload.
//
// (gvisor's pkg/tcpip/header would do, but it does not build in this module:
// it pulls golang.org/x/exp and golang.org/x/time, which go.mod lacks.)
func ipv4Header(src, dst string, proto byte, n int) []byte {
	p := make([]byte, ipv4HeaderLen+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	p[8], p[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:12], ^checksum.Checksum(p[:ipv4HeaderLen], 0))
	return p
}

// withHeadroom copies pkt behind testOffset bytes of headroom, with spare
// room after it as a router buffer would have.
func withHeadroom(pkt []byte) []byte {
	b := make([]byte, testOffset+len(pkt), testOffset+2048)
	copy(b[testOffset:], pkt)
	return b
}

// recvBuffers returns n receive buffers and their per-packet result slices.
func recvBuffers(n int) (bufs [][]byte, sizes, starts []int, peers []uint32) {
	bufs = make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, testOffset+2048)
	}
	return bufs, make([]int, n), make([]int, n), make([]uint32, n)
}

// wiredConns returns fake sockets of node A and node B on port, each
// delivering what it sends to the other.
func wiredConns(port uint16) (connA, connB *linktest.Conn) {
	connA = linktest.NewConn(addrPort(nodeA, port), 64)
	connB = linktest.NewConn(addrPort(nodeB, port), 64)
	linktest.Wire(connA, connB)
	linktest.Wire(connB, connA)
	return connA, connB
}

// pairUp gives the backends of nodes A and B the peers of the pair tests (A
// knows B as peer 1, C is its peer 0; B knows A as peer 0) and closes them
// at cleanup.
func pairUp(t *testing.T, a, b Tunnel) {
	t.Cleanup(func() { a.Close(); b.Close() })
	a.SetPeers(indexed(Peer{Node: "c", Addr: nodeC}, Peer{Node: "b", Addr: nodeB}))
	b.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
}

// recvOne feeds datagram d from src to tun through its fake conn and returns
// the decapsulated inner packet (nil if dropped) and its peer index.
func recvOne(t *testing.T, tun Tunnel, conn *linktest.Conn, src netip.AddrPort, d []byte) ([]byte, uint32) {
	t.Helper()
	conn.In <- linktest.Datagram{Addr: src, Data: d}
	bufs, sizes, starts, peers := recvBuffers(1)
	n, err := tun.Recv(bufs, sizes, starts, peers, testOffset)
	if err != nil || n != 1 {
		t.Fatalf("Recv = %d, %v; want 1, nil", n, err)
	}
	if sizes[0] == 0 {
		return nil, 0
	}
	return bufs[0][starts[0] : starts[0]+sizes[0]], peers[0]
}

// wantStats fails the test if got differs from want, naming every field.
func wantStats(t *testing.T, got, want Stats) {
	t.Helper()
	g, w := got.Map(), want.Map()
	for k := range w {
		if g[k] != w[k] {
			t.Errorf("stats %s = %d, want %d", k, g[k], w[k])
		}
	}
}

func wantPacket(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("inner packet differs:\n got %x\nwant %x", got, want)
	}
}

func addrPort(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

var macA = VTEPMAC(nodeA)

// indexed gives the peers IDs 0, 1, ...: their index in the list, as the
// tests name them in Send and expect them from Recv.
func indexed(peers ...Peer) []Peer {
	for i := range peers {
		peers[i].ID = uint32(i)
	}
	return peers
}
