package tunnel

import (
	"encoding/json"
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
func TestVXLANKernelInterop(t *testing.T) {
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

	var conn *udp.Conn
	a.Do(func() { conn, err = udp.Listen(netip.AddrPortFrom(underlayA, DefaultVXLANPort)) })
	if err != nil {
		t.Fatal(err)
	}
	tun, err := NewVXLAN(conn, VXLANConfig{LocalMAC: ourMAC})
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
	wrongVNI, err := NewVXLAN(conn, VXLANConfig{VNI: 2, LocalMAC: ourMAC}) // shares the socket; never closed
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
