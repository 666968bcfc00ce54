package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/internal/testbed"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
)

// impostorAddr is the underlay address of the host that answers ARP for
// node2.
var impostorAddr = addr("192.168.49.77")

// rawSender opens an AF_PACKET socket on ifname inside ns, closed at
// cleanup, for frames the test writes itself.
func rawSender(t *testing.T, ns *testbed.Netns, ifname string) *afpacket.Socket {
	t.Helper()
	var s *afpacket.Socket
	if err := ns.Do(func() (err error) { s, err = afpacket.Open(ifname); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func linkMAC(t *testing.T, ns *testbed.Netns, dev string) link.HardwareAddr {
	t.Helper()
	l, err := ns.Link(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.MAC
}

// counterDelta returns how much each of names grew on d since before.
func counterDelta(t *testing.T, d *testbed.Daemon, before map[string]uint64, names ...string) map[string]uint64 {
	t.Helper()
	now := stats(t, d)
	delta := map[string]uint64{}
	for _, n := range names {
		if _, ok := now[n]; !ok {
			t.Fatalf("taprouterd on %s reports no counter %q", d.Node.Name, n)
		}
		delta[n] = now[n] - before[n]
	}
	return delta
}

func wantDeltas(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("counter %s grew by %d, want exactly %d", k, got[k], w)
		}
	}
}

// TestDirectUnderlayHardening runs the direct backend on both nodes with a
// third host on the underlay L2.
//
//   - arp-impostor: the host answers ARP for node2's address (unsolicited
//     replies to node1 and a gratuitous broadcast). node1 keeps node2's MAC,
//     re-probes it, and pod traffic between the nodes keeps flowing; each
//     claim is counted in tunnel_arp_conflicts and nothing in
//     drop_unknown_peer. (Before: node1 took the impostor's MAC, sent pc's
//     traffic to it and dropped node2's frames as unknown for ~40 s.)
//   - vlan: node2 sends pod packets to node1 through a VLAN subinterface
//     (eth0.10); node1 drops and counts every one as drop_vlan instead of
//     delivering it as untagged traffic.
func TestDirectUnderlayHardening(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	impostor, err := c.Bed.AddUnderlayHost("impostor", impostorAddr)
	if err != nil {
		t.Fatal(err)
	}
	daemons := startTaprouter(t, c, "direct")
	d1 := daemons["node1"]
	node1, node2 := c.Node("node1"), c.Node("node2")
	pa, pc := c.Pod("pa"), c.Pod("pc")
	mustPing(t, pa.Netns, pc.Addr(), 62)
	node1MAC, node2MAC := linkMAC(t, node1.Netns, "eth0"), linkMAC(t, node2.Netns, "eth0")

	t.Run("arp-impostor", func(t *testing.T) {
		sock := rawSender(t, impostor, "eth0")
		fake := sock.HWAddr()
		claims := [][]byte{
			arpFrame(node1MAC, fake, arp.OpReply, node2.Addr, node1MAC, node1.Addr),
			arpFrame(node1MAC, fake, arp.OpReply, node2.Addr, node1MAC, node1.Addr),
			arpFrame(node1MAC, fake, arp.OpReply, node2.Addr, node1MAC, node1.Addr),
			arpFrame(link.Broadcast, fake, arp.OpRequest, node2.Addr, link.HardwareAddr{}, node2.Addr), // gratuitous
		}
		before := stats(t, d1)
		for _, f := range claims {
			if n, err := sock.Write([][]byte{f}, 0); n != 1 {
				t.Fatalf("impostor's write: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		mustPing(t, pa.Netns, pc.Addr(), 62)
		mustPing(t, pc.Netns, pa.Addr(), 62)
		wantDeltas(t, counterDelta(t, d1, before, "tunnel_arp_conflicts", "drop_unknown_peer", "tunnel_arp_mac_changes", "drop_no_neighbour"),
			map[string]uint64{"tunnel_arp_conflicts": uint64(len(claims)), "drop_unknown_peer": 0, "tunnel_arp_mac_changes": 0, "drop_no_neighbour": 0})
		// Long enough for the re-probes to have ended either way.
		time.Sleep(4 * time.Second)
		mustPing(t, pa.Netns, pc.Addr(), 62)
		if s := stats(t, d1); s["tunnel_arp_mac_changes"] != 0 || s["drop_unknown_peer"] != before["drop_unknown_peer"] {
			t.Errorf("after the re-probes: tunnel_arp_mac_changes %d, drop_unknown_peer grew by %d; want 0 and 0",
				s["tunnel_arp_mac_changes"], s["drop_unknown_peer"]-before["drop_unknown_peer"])
		}
		if !strings.Contains(d1.Log(), "underlay ARP conflict") {
			t.Error("taprouterd did not log the conflict")
		}
	})

	t.Run("vlan", func(t *testing.T) {
		// A VLAN subinterface tags the frames it sends; a kernel without
		// 802.1Q support (no 8021q: "Unknown device type") gets the same
		// tagged frames on the wire from a raw socket on eth0 that writes
		// the tag itself. Either way node1's kernel moves the tag into
		// the packet metadata, where taprouterd must find it.
		var sock *afpacket.Socket
		var tag []byte
		if out, err := node2.IP("link", "add", "link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10"); err == nil {
			for _, args := range [][]string{
				{"link", "set", "eth0.10", "addrgenmode", "none"}, // no IPv6 chatter on the VLAN
				{"link", "set", "eth0.10", "up"},
			} {
				if out, err := node2.IP(args...); err != nil {
					t.Fatalf("ip %v: %v\n%s", args, err, out)
				}
			}
			sock = rawSender(t, node2.Netns, "eth0.10")
		} else if strings.Contains(out+err.Error(), "Unknown device type") {
			t.Logf("no VLAN devices in this kernel (%v); writing 802.1Q-tagged frames (VLAN 10) on eth0", err)
			sock = rawSender(t, node2.Netns, "eth0")
			tag = []byte{0x81, 0x00, 0x00, 10}
		} else {
			t.Fatalf("ip link add eth0.10: %v\n%s", err, out)
		}
		const n = 3
		before := stats(t, d1)
		for i := range n {
			echo := testbed.ICMPEcho(pc.Addr(), pa.Addr(), 64, 0x7e57, uint16(i))
			f := append(append(append(append([]byte(nil), node1MAC[:]...), node2MAC[:]...), tag...), 0x08, 0x00)
			if w, err := sock.Write([][]byte{append(f, echo...)}, 0); w != 1 {
				t.Fatalf("write of a VLAN 10 frame: %v", err)
			}
		}
		if _, err := d1.WaitCounter("drop_vlan", before["drop_vlan"]+n, 3*time.Second); err != nil {
			t.Fatal(err)
		}
		wantDeltas(t, counterDelta(t, d1, before, "drop_vlan", "tunnel_rx_packets"), map[string]uint64{"drop_vlan": n, "tunnel_rx_packets": 0})
		mustPing(t, pc.Netns, pa.Addr(), 62) // the untagged network still works
	})
}

// TestDirectKernelPeer runs taprouterd's direct backend on node1 and a
// plain kernel-routed node2 (kindnet's ptp routes) with default offloads:
// node2's TCP checksums arrive partial (TP_STATUS_CSUMNOTREADY) and its TSO
// frames arrive as 64 KB super-frames, which no NIC puts on a wire but a
// veth passes on; taprouterd completes the checksums and splits the
// super-frames, so TCP works both ways.
func TestDirectKernelPeer(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	node1, node2 := c.Node("node1"), c.Node("node2")
	if err := c.WireKernelPTP(node2); err != nil {
		t.Fatal(err)
	}
	requireOffloads(t, node2, "tx-checksumming", "tcp-segmentation-offload")
	daemons := startTaprouter(t, c, "direct", node1)
	pa, pc := c.Pod("pa"), c.Pod("pc")
	mustPing(t, pa.Netns, pc.Addr(), 62)
	mustPing(t, pc.Netns, pa.Addr(), 62)
	t.Run("iperf3/taprouter-to-kernel", func(t *testing.T) { testTransfer(t, c.Bed, pa, pc) })
	t.Run("iperf3/kernel-to-taprouter", func(t *testing.T) { testTransfer(t, c.Bed, pc, pa) })
	checkOffloadCounters(t, daemons["node1"], true)
}

// arpFrame returns an Ethernet ARP frame from src to dst.
func arpFrame(dst, src link.HardwareAddr, op uint16, senderIP netip.Addr, targetMAC link.HardwareAddr, targetIP netip.Addr) []byte {
	p := arp.Packet{Op: op, SenderMAC: src, SenderIP: senderIP, TargetMAC: targetMAC, TargetIP: targetIP}
	f := make([]byte, arp.FrameLen)
	arp.EncodeFrame(f, dst, src, &p)
	return f
}
