package router

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// A test pod: its addresses and the fake TAP the router serves it through.
type testPod struct {
	name string
	ip   netip.Addr
	mac  link.HardwareAddr
	dev  *linktest.Device
}

var (
	gwMAC   = link.HardwareAddr{0x0e, 0x58, 192, 168, 49, 2}
	gateway = netip.MustParseAddr("10.244.0.1")
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newPod(name, ip string, last byte) *testPod {
	return &testPod{name: name, ip: netip.MustParseAddr(ip), mac: link.HardwareAddr{0x02, 0, 0, 0, 0, last}, dev: linktest.NewDevice(name, 1450, 256)}
}

// ipv4 builds an IPv4 packet with the given protocol and payload.
func ipv4(src, dst netip.Addr, ttl uint8, proto tcpip.TransportProtocolNumber, df bool, payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+len(payload))
	h := header.IPv4(b)
	var flags uint8
	if df {
		flags = header.IPv4FlagDontFragment
	}
	h.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), ID: 0x1234, Flags: flags, TTL: ttl, Protocol: uint8(proto),
		SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4())})
	h.SetChecksum(^h.CalculateChecksum())
	copy(b[header.IPv4MinimumSize:], payload)
	return b
}

// echo builds an ICMP echo request with n bytes of data.
func echo(id, seq uint16, n int) []byte {
	b := make([]byte, header.ICMPv4MinimumSize+n)
	icmp := header.ICMPv4(b)
	icmp.SetType(header.ICMPv4Echo)
	icmp.SetIdent(id)
	icmp.SetSequence(seq)
	for i := range n {
		b[header.ICMPv4MinimumSize+i] = byte(i)
	}
	icmp.SetChecksum(^checksum.Checksum(b, 0))
	return b
}

func udpPayload(sport, dport uint16, n int) []byte {
	b := make([]byte, 8+n)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+n))
	return b // checksum 0: none, legal for UDP over IPv4
}

func ethernet(dst, src link.HardwareAddr, typ uint16, payload []byte) []byte {
	b := make([]byte, 14+len(payload))
	writeEthernet(b, dst, src, typ)
	copy(b[14:], payload)
	return b
}

// send puts an IPv4 packet on the pod's wire toward the gateway MAC.
func (p *testPod) send(pkt []byte) { p.dev.In <- ethernet(gwMAC, p.mac, etherTypeIP, pkt) }

// arpRequest has the pod ask who has target.
func (p *testPod) arpRequest(target netip.Addr) {
	a := arp.Packet{Op: arp.OpRequest, SenderMAC: p.mac, SenderIP: p.ip, TargetIP: target}
	b := make([]byte, arp.FrameLen)
	arp.EncodeFrame(b, link.Broadcast, p.mac, &a)
	p.dev.In <- b
}

// recv returns the next frame the router sent the pod, failing after 2s.
func (p *testPod) recv(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-p.dev.Out:
		return f
	case <-time.After(2 * time.Second):
		t.Fatalf("%s: no frame from the router", p.name)
		return nil
	}
}

// recvIPv4 skips ARP and returns the next IPv4 packet sent to the pod,
// checking the Ethernet header the router wrote.
func (p *testPod) recvIPv4(t *testing.T) header.IPv4 {
	t.Helper()
	for {
		f := p.recv(t)
		if binary.BigEndian.Uint16(f[12:14]) != etherTypeIP {
			p.answerARP(t, f)
			continue
		}
		if link.HardwareAddr(f[0:6]) != p.mac || link.HardwareAddr(f[6:12]) != gwMAC {
			t.Fatalf("%s: frame %x → %x, want %s → %s", p.name, f[6:12], f[0:6], gwMAC, p.mac)
		}
		h := header.IPv4(f[14:])
		if !h.IsValid(len(h)) || !h.IsChecksumValid() {
			t.Fatalf("%s: invalid IPv4 packet or checksum: %x", p.name, f)
		}
		return h
	}
}

// answerARP replies to the router's request for the pod's address.
func (p *testPod) answerARP(t *testing.T, f []byte) {
	t.Helper()
	a, err := arp.Parse(f[14:])
	if err != nil {
		t.Fatalf("%s: bad ARP from the router: %v", p.name, err)
	}
	if a.Op != arp.OpRequest || a.TargetIP != p.ip {
		return // gratuitous announcement of the gateway
	}
	if a.SenderMAC != gwMAC || a.SenderIP != gateway {
		t.Fatalf("%s: ARP request from %s/%s, want the gateway %s/%s", p.name, a.SenderIP, a.SenderMAC, gateway, gwMAC)
	}
	reply := arp.Packet{Op: arp.OpReply, SenderMAC: p.mac, SenderIP: p.ip, TargetMAC: gwMAC, TargetIP: gateway}
	b := make([]byte, arp.FrameLen)
	arp.EncodeFrame(b, gwMAC, p.mac, &reply)
	p.dev.In <- b
}

// checkICMP asserts an ICMP packet's type, code and checksum and returns it.
func checkICMP(t *testing.T, h header.IPv4, src, dst netip.Addr, typ header.ICMPv4Type, code header.ICMPv4Code) header.ICMPv4 {
	t.Helper()
	if h.TransportProtocol() != header.ICMPv4ProtocolNumber {
		t.Fatalf("protocol %d, want ICMP", h.Protocol())
	}
	if s, d := netip.AddrFrom4(h.SourceAddress().As4()), netip.AddrFrom4(h.DestinationAddress().As4()); s != src || d != dst {
		t.Fatalf("ICMP %s → %s, want %s → %s", s, d, src, dst)
	}
	icmp := header.ICMPv4(h.Payload())
	if icmp.Type() != typ || icmp.Code() != code {
		t.Fatalf("ICMP type %d code %d, want %d/%d", icmp.Type(), icmp.Code(), typ, code)
	}
	if checksum.Checksum(icmp, 0) != 0xffff {
		t.Fatal("ICMP checksum invalid")
	}
	return icmp
}

// waitCounter waits until the counter called name reaches want, and fails
// if it is not exactly want then (nor a moment later: an overshoot that
// arrives with the same batch shows).
func waitCounter(t *testing.T, r *Router, name string, want uint64) {
	t.Helper()
	if _, ok := r.Stats()[name]; !ok {
		t.Fatalf("no counter %s", name)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := r.Stats()[name]
		if got >= want {
			time.Sleep(10 * time.Millisecond)
			if got = r.Stats()[name]; got != want {
				t.Fatalf("counter %s = %d, want exactly %d", name, got, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s = %d, want %d", name, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
