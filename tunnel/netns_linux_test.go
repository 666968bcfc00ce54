package tunnel

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/podnet/netnstest"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// The underlay of the root tests: two namespaces joined by a veth pair.
var (
	underlayA = netip.MustParseAddr("198.51.100.1") // veth-a in namespace a
	underlayB = netip.MustParseAddr("198.51.100.2") // veth-b in namespace b
)

// underlayPair creates two namespaces joined by veth-a (underlayA/24) and
// veth-b (underlayB/24), both up and active. It skips unless run as root.
func underlayPair(t testing.TB) (a, b *netnstest.NS) {
	t.Helper()
	a, b = netnstest.New(t, "tun-a"), netnstest.New(t, "tun-b")
	a.IP("link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", b.Name)
	a.IP("addr", "add", underlayA.String()+"/24", "dev", "veth-a")
	b.IP("addr", "add", underlayB.String()+"/24", "dev", "veth-b")
	a.IP("link", "set", "veth-a", "up")
	b.IP("link", "set", "veth-b", "up")
	a.WaitActive("veth-a")
	b.WaitActive("veth-b")
	return a, b
}

const echoID, echoPayload = 0x7a7a, "taprouter-tunnel"

// icmpEcho returns an ICMP echo request with id echoID and echoPayload.
func icmpEcho(src, dst string, seq uint16) []byte {
	p := ipv4Header(src, dst, 1, 8+len(echoPayload))
	icmp := p[ipv4HeaderLen:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:6], echoID)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	copy(icmp[8:], echoPayload)
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
	return p
}

// expectEchoReply waits for the next packet on replies and checks that it is
// the reply from src to dst to icmpEcho(dst, src, seq).
func expectEchoReply(t *testing.T, replies <-chan []byte, src, dst string, seq uint16) {
	t.Helper()
	var p []byte
	select {
	case p = <-replies:
	case <-time.After(5 * time.Second):
		t.Fatalf("no echo reply %d from the kernel within 5s", seq)
	}
	if len(p) != ipv4HeaderLen+8+len(echoPayload) || p[9] != 1 {
		t.Fatalf("reply is not an ICMP packet of the request's size: %x", p)
	}
	if s, d := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])); s.String() != src || d.String() != dst {
		t.Fatalf("reply %v -> %v, want %s -> %s", s, d, src, dst)
	}
	icmp := p[ipv4HeaderLen:]
	if icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:6]) != echoID || binary.BigEndian.Uint16(icmp[6:8]) != seq || string(icmp[8:]) != echoPayload {
		t.Fatalf("reply is not echo reply id %#x seq %d: %x", echoID, seq, icmp)
	}
	if checksum.Checksum(p[:ipv4HeaderLen], 0) != 0xffff || checksum.Checksum(icmp, 0) != 0xffff {
		t.Fatalf("reply has a bad checksum: %x", p)
	}
}

// receiveAll runs Recv until tun is closed and passes on copies of the
// inner packets.
func receiveAll(tun Tunnel) <-chan []byte {
	out := make(chan []byte, 16)
	go func() {
		bufs, sizes, starts, peers := recvBuffers(8)
		for {
			n, err := tun.Recv(bufs, sizes, starts, peers, testOffset)
			if err != nil {
				return
			}
			for i := range n {
				if sizes[i] > 0 {
					out <- append([]byte(nil), bufs[i][starts[i]:starts[i]+sizes[i]]...)
				}
			}
		}
	}()
	return out
}
