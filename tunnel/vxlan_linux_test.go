package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/udp"
	"github.com/vishvananda/netns"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// TestVXLANKernelInterop runs the vxlan backend against a Linux kernel vxlan
// device configured exactly as flannel configures flannel.1, across a veth
// pair between two network namespaces the test creates:
//
//	ns A: veth 198.51.100.1, our backend on a UDP socket at :8472
//	ns B: veth 198.51.100.2, flannel.1 (VNI 1, dstport 8472, nolearning),
//	      10.244.1.0/32, route 10.244.0.0/24 via 10.244.0.0 onlink
func TestVXLANKernelInterop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, a veth pair and a kernel vxlan device")
	}
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2): %v", tool, err)
		}
	}
	var (
		underlayA = netip.MustParseAddr("198.51.100.1")
		underlayB = netip.MustParseAddr("198.51.100.2")
		ourMAC    = VTEPMAC(underlayA)
		nsA       = fmt.Sprintf("trtun-a-%d", os.Getpid())
		nsB       = fmt.Sprintf("trtun-b-%d", os.Getpid())
	)
	for _, ns := range []string{nsA, nsB} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	ip(t, "-n", nsA, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", nsB)
	ip(t, "-n", nsA, "addr", "add", underlayA.String()+"/24", "dev", "veth-a")
	ip(t, "-n", nsA, "link", "set", "veth-a", "up")
	ip(t, "-n", nsB, "addr", "add", underlayB.String()+"/24", "dev", "veth-b")
	ip(t, "-n", nsB, "link", "set", "veth-b", "up")

	// flannel's vxlan backend, verbatim.
	ip(t, "-n", nsB, "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", underlayB.String(),
		"dev", "veth-b", "dstport", "8472", "nolearning")
	ip(t, "-n", nsB, "addr", "add", "10.244.1.0/32", "dev", "flannel.1")
	ip(t, "-n", nsB, "link", "set", "flannel.1", "up")
	run(t, "ip", "netns", "exec", nsB, "bridge", "fdb", "append", ourMAC.String(), "dev", "flannel.1", "dst", underlayA.String())
	ip(t, "-n", nsB, "neigh", "replace", "10.244.0.0", "lladdr", ourMAC.String(), "dev", "flannel.1", "nud", "permanent")
	ip(t, "-n", nsB, "route", "replace", "10.244.0.0/24", "via", "10.244.0.0", "dev", "flannel.1", "onlink")
	kernelMAC, err := link.ParseMAC(flannelLink(t, nsB).Address)
	if err != nil {
		t.Fatal(err)
	}

	var conn *udp.Conn
	inNetns(t, nsA, func() { conn, err = udp.Listen(netip.AddrPortFrom(underlayA, DefaultVXLANPort)) })
	if err != nil {
		t.Fatal(err)
	}
	tun, err := NewVXLAN(conn, VXLANConfig{LocalMAC: ourMAC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tun.Close() })
	peers := []Peer{{Node: "b", Addr: underlayB, PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), VTEPMAC: kernelMAC}}
	tun.SetPeers(peers)
	replies := receiveAll(tun)

	send := func(tun *VXLAN, seq uint16) {
		t.Helper()
		pkt := withHeadroom(icmpEcho("10.244.0.4", "10.244.1.0", 0x7a7a, seq))
		if n, err := tun.Send([][]byte{pkt}, []uint32{0}, testOffset); n != 1 || err != nil {
			t.Fatalf("Send = %d, %v", n, err)
		}
	}
	expectReply := func(seq uint16) {
		t.Helper()
		select {
		case r := <-replies:
			checkEchoReply(t, r, seq)
		case <-time.After(5 * time.Second):
			t.Fatalf("no echo reply %d from the kernel within 5s; our stats %+v", seq, tun.Stats())
		}
	}

	send(tun, 1)
	expectReply(1)
	rxBefore := flannelLink(t, nsB).Stats64.Rx.Packets

	// The same request under VNI 2: the kernel has no VTEP for it.
	wrongVNI, err := NewVXLAN(conn, VXLANConfig{VNI: 2, LocalMAC: ourMAC}) // shares the socket; never closed
	if err != nil {
		t.Fatal(err)
	}
	wrongVNI.SetPeers(peers)
	send(wrongVNI, 2)
	select {
	case r := <-replies:
		t.Fatalf("kernel answered a VNI 2 datagram: %x", r)
	case <-time.After(300 * time.Millisecond):
	}
	if rx := flannelLink(t, nsB).Stats64.Rx.Packets; rx != rxBefore {
		t.Errorf("flannel.1 rx_packets went from %d to %d after a VNI 2 datagram, want unchanged", rxBefore, rx)
	}

	send(tun, 3) // the path still works, and reply 2 never comes
	expectReply(3)
	if s := tun.Stats(); s.TxPackets != 2 || s.RxPackets != 2 || s.DropBadVNI+s.DropUnknownPeer+s.DropBadMAC+s.DropTruncated != 0 {
		t.Errorf("stats %+v: want 2 sent, 2 received, no drops", s)
	}
}

// icmpEcho returns an ICMP echo request with a 16-byte payload.
func icmpEcho(src, dst string, id, seq uint16) []byte {
	p := ipv4Header(src, dst, 1, 8+16)
	icmp := p[ipv4HeaderLen:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:6], id)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	copy(icmp[8:], "taprouter-tunnel")
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
	return p
}

// checkEchoReply checks that p is the kernel's reply to icmpEcho(10.244.0.4,
// 10.244.1.0, 0x7a7a, seq).
func checkEchoReply(t *testing.T, p []byte, seq uint16) {
	t.Helper()
	if len(p) != ipv4HeaderLen+8+16 || p[9] != 1 {
		t.Fatalf("reply is not a 44-byte ICMP packet: %x", p)
	}
	if src, dst := netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])); src.String() != "10.244.1.0" || dst.String() != "10.244.0.4" {
		t.Fatalf("reply %v -> %v, want 10.244.1.0 -> 10.244.0.4", src, dst)
	}
	icmp := p[ipv4HeaderLen:]
	if icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:6]) != 0x7a7a || binary.BigEndian.Uint16(icmp[6:8]) != seq || string(icmp[8:]) != "taprouter-tunnel" {
		t.Fatalf("reply is not echo reply id 0x7a7a seq %d: %x", seq, icmp)
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

type ipLink struct {
	Address string `json:"address"`
	Stats64 struct {
		Rx struct {
			Packets uint64 `json:"packets"`
		} `json:"rx"`
	} `json:"stats64"`
}

// flannelLink returns flannel.1's MAC and counters in namespace ns.
func flannelLink(t *testing.T, ns string) ipLink {
	t.Helper()
	out := run(t, "ip", "-n", ns, "-j", "-s", "link", "show", "dev", "flannel.1")
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("parsing ip -j link output %q: %v", out, err)
	}
	return links[0]
}

func ip(t *testing.T, args ...string) { t.Helper(); run(t, "ip", args...) }

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// inNetns runs f on a thread switched into namespace ns. A socket stays in
// the namespace it was created in, so only its creation needs the switch.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	f()
	if err := netns.Set(orig); err != nil {
		panic("cannot return to the original network namespace: " + err.Error())
	}
}
