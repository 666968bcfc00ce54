package tunnel

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
)

// TestDirectKernelInterop runs the direct backend on an AF_PACKET socket
// against a Linux peer set up the way flannel host-gw sets up nodes, across
// the veth pair of underlayPair:
//
//	a: our backend on veth-a, pod range 10.244.0.0/24
//	b: a "pod" address 10.244.1.5 on lo, route 10.244.0.0/24 via underlayA
//
// Our ARP request must be answered by b's kernel, the echo request must reach
// b and its reply come back to us; b's traffic to node a itself must be left
// to a's kernel.
func TestDirectKernelInterop(t *testing.T) {
	a, b := underlayPair(t)
	b.IP("addr", "add", "10.244.1.5/32", "dev", "lo")
	b.IP("route", "add", "10.244.0.0/24", "via", underlayA.String(), "dev", "veth-b")
	macB := ifaceMAC(t, b.IP("-j", "link", "show", "veth-b"))
	var err error

	macA := ifaceMAC(t, a.IP("-j", "link", "show", "veth-a"))
	var sock *afpacket.Socket
	a.Do(func() {
		sock, err = afpacket.OpenFiltered("veth-a", DirectFilter(macA, netip.MustParsePrefix("10.244.0.0/24")))
	})
	if err != nil {
		t.Fatal(err)
	}
	tun, err := NewDirect(sock, DirectConfig{LocalAddr: underlayA, LocalMAC: sock.HWAddr(), LocalPodCIDR: netip.MustParsePrefix("10.244.0.0/24")})
	if err != nil {
		sock.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	tun.SetPeers(indexed(Peer{Node: "b", Addr: underlayB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}}))
	replies := receiveAll(tun)
	stopTicks := make(chan struct{})
	t.Cleanup(func() { close(stopTicks) })
	go func() { // the router's timer loop
		for {
			select {
			case <-time.After(100 * time.Millisecond):
				tun.Tick()
			case <-stopTicks:
				return
			}
		}
	}()

	pkt := withHeadroom(icmpEcho("10.244.0.4", "10.244.1.5", 1))
	if _, err := tun.Send([][]byte{pkt}, []uint32{0}, testOffset); err != nil {
		t.Fatal(err)
	}
	expectEchoReply(t, replies, "10.244.1.5", "10.244.0.4", 1)
	n := tun.Neighbours()
	if len(n) != 1 || n[0].IP != underlayB || n[0].MAC != macB || n[0].State != arp.Reachable {
		t.Errorf("Neighbours() = %+v, want %v at %v, REACHABLE", n, underlayB, macB)
	}

	// Node b pings node a itself: a's kernel answers; the socket's filter
	// keeps the frames from us (without it they would count as ignored).
	ignored := tun.Stats().Ignored
	b.MustExec("ping", "-c", "1", "-W", "2", underlayA.String())
	select {
	case r := <-replies:
		t.Fatalf("the kernel's own traffic was delivered: %x", r)
	case <-time.After(100 * time.Millisecond):
	}
	s := tun.Stats()
	if s.Ignored != ignored {
		t.Errorf("b's echo request to node a reached the socket (ignored %d -> %d): the filter should keep it out", ignored, s.Ignored)
	}
	if s.TxPackets != 1 || s.RxPackets != 1 || s.ARPRequests == 0 || s.ARPLearned == 0 || s.DropUnknownPeer+s.DropNoNeighbour != 0 {
		t.Errorf("stats %+v: want 1 sent, 1 received, ARP requested and learned, no drops", s)
	}
}

// TestDirectInboundOnlyPeer is the restart case against a Linux peer: b's
// kernel already knows node a's MAC, so it sends to a's pods without ARPing.
// The backend's own request from SetPeers must get b resolved and b's
// packets accepted, not dropped as from an unknown peer.
func TestDirectInboundOnlyPeer(t *testing.T) {
	a, b := underlayPair(t)
	b.IP("addr", "add", "10.244.1.5/32", "dev", "lo")
	b.IP("route", "add", "10.244.0.0/24", "via", underlayA.String(), "dev", "veth-b")
	b.MustExec("ping", "-c", "1", "-W", "2", underlayA.String()) // b's kernel learns a's MAC

	var sock *afpacket.Socket
	var err error
	a.Do(func() { sock, err = afpacket.Open("veth-a") })
	if err != nil {
		t.Fatal(err)
	}
	tun, err := NewDirect(sock, DirectConfig{LocalAddr: underlayA, LocalMAC: sock.HWAddr(), LocalPodCIDR: netip.MustParsePrefix("10.244.0.0/24")})
	if err != nil {
		sock.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	packets := receiveAll(tun)
	tun.SetPeers(indexed(Peer{Node: "b", Addr: underlayB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}}))
	for deadline := time.Now().Add(2 * time.Second); tun.Stats().ARPLearned == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("b's kernel did not answer SetPeers' ARP request within 2s: stats %+v", tun.Stats())
		}
	}

	// Nobody answers this ping; only its echo request matters.
	b.Command("ping", "-c", "1", "-W", "1", "-I", "10.244.1.5", "10.244.0.4").Run()
	select {
	case p := <-packets:
		if len(p) < ipv4HeaderLen+8 || p[9] != 1 || p[ipv4HeaderLen] != 8 || netip.AddrFrom4([4]byte(p[16:20])) != netip.MustParseAddr("10.244.0.4") {
			t.Fatalf("delivered %x, want b's echo request to 10.244.0.4", p)
		}
	case <-time.After(time.Second):
		t.Fatalf("b's echo request was not delivered: stats %+v", tun.Stats())
	}
	if s := tun.Stats(); s.DropUnknownPeer != 0 || s.TxPackets != 0 {
		t.Errorf("stats %+v: want no drop_unknown_peer and nothing sent but ARP", s)
	}
}

// ifaceMAC returns the MAC in the output of "ip -j link show DEV".
func ifaceMAC(t *testing.T, ipJSON string) link.HardwareAddr {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(ipJSON), &links); err != nil || len(links) != 1 {
		t.Fatalf("reading a MAC from ip -j link: %v", err)
	}
	mac, err := link.ParseMAC(links[0].Address)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}
