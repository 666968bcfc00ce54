package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestEgressMasquerade runs both nodes with --masquerade's config fields
// (cluster CIDR 10.244.0.0/16) and an "internet" host on the underlay,
// 203.0.113.10, which node1 routes to and which has no route to the pods.
// pa's ping to it arrives from node1's underlay address, and is answered;
// pa's ping to pc on node2 arrives from pa's own address (tcpdump in each
// receiver). A deleted jump rule is put back by the repair loop
// (masquerade_repairs 1), and the rules stay when the daemon exits.
func TestEgressMasquerade(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	node1 := c.Node("node1")
	pa, pc := c.Pod("pa"), c.Pod("pc")
	internet := addr("203.0.113.10")
	inet, err := c.Bed.AddUnderlayHost("inet", addr("192.168.49.100"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inet.IP("addr", "add", internet.String()+"/32", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := node1.IP("route", "add", internet.String()+"/32", "via", "192.168.49.100"); err != nil {
		t.Fatal(err)
	}
	if err := node1.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	daemons := map[string]*testbed.Daemon{}
	for _, n := range c.Nodes {
		cfg := c.DaemonConfig(n, "vxlan")
		cfg.Masquerade = &testbed.MasqueradeConfig{Enabled: true, ClusterCIDRs: []string{"10.244.0.0/16"}}
		d, err := c.Bed.StartDaemon(n.Node, cfg)
		if err != nil {
			t.Fatal(err)
		}
		daemons[n.Name] = d
	}
	d1 := daemons["node1"]

	t.Run("to-internet-from-node-address", func(t *testing.T) {
		got := pingCaptured(t, c.Bed, inet, pa, internet)
		if got[0].Src != node1.Addr || got[0].Dst != internet {
			t.Errorf("the internet host got the echo request %s → %s, want %s → %s (masqueraded)", got[0].Src, got[0].Dst, node1.Addr, internet)
		}
		if got[1].Src != internet || got[1].Dst != node1.Addr {
			t.Errorf("the internet host answered %s → %s, want %s → %s", got[1].Src, got[1].Dst, internet, node1.Addr)
		}
	})
	t.Run("pod-to-pod-not-masqueraded", func(t *testing.T) {
		got := pingCaptured(t, c.Bed, pc.Netns, pa, pc.Addr())
		if got[0].Src != pa.Addr() || got[1].Dst != pa.Addr() {
			t.Errorf("pc saw %s → %s and answered %s → %s, want pa's own address %s both ways", got[0].Src, got[0].Dst, got[1].Src, got[1].Dst, pa.Addr())
		}
	})
	t.Run("repaired", func(t *testing.T) {
		before := stats(t, d1)
		if before["masquerade_repairs"] != 0 {
			t.Fatalf("masquerade_repairs %d before any change, want 0", before["masquerade_repairs"])
		}
		if out, err := node1.Run("iptables", "-w", "-t", "nat", "-F", "POSTROUTING"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if _, err := d1.WaitCounter("masquerade_repairs", 1, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		wantDelta(t, d1, before, "masquerade_repairs", 1)
		got := pingCaptured(t, c.Bed, inet, pa, internet)
		if got[0].Src != node1.Addr {
			t.Errorf("after the repair the internet host got an echo request from %s, want %s", got[0].Src, node1.Addr)
		}
	})
	t.Run("left-on-exit", func(t *testing.T) {
		for _, d := range daemons {
			if exited, err := d.Exited(); exited {
				t.Fatalf("taprouterd on %s exited during the test (%v)", d.Node.Name, err)
			}
		}
		if err := d1.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		out, err := node1.Run("iptables", "-w", "-t", "nat", "-S")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "-A POSTROUTING -m addrtype ! --dst-type LOCAL") || strings.Count(out, "-A TAPROUTER-MASQ") != 2 {
			t.Errorf("after taprouterd exited, node1's nat rules are:\n%s\nwant the jump and TAPROUTER-MASQ's two rules left in place", out)
		}
	})
}

// pingCaptured pings once from → to while capturing ICMP on ns's eth0 and
// returns the request and the reply as captured there.
func pingCaptured(t *testing.T, bed *testbed.Bed, ns *testbed.Netns, from *testbed.Pod, dst netip.Addr) []testbed.Packet {
	t.Helper()
	capture, err := bed.StartCapture(ns, "eth0", "icmp", 2)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := from.Ping(dst, testbed.PingOptions{Count: 1, Deadline: 5 * time.Second}); err != nil || r.Received != 1 {
		t.Fatalf("ping %s → %s: %v\n%s", from.Spec.Name, dst, err, r.Output)
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 2 || packets[0].ICMPType != 8 || packets[1].ICMPType != 0 {
		t.Fatalf("captured %+v on %s's eth0, want one echo request and its reply", packets, ns.Name)
	}
	return packets
}
