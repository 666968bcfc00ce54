package e2e

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// intruderAddr is an underlay address that is no node's.
var intruderAddr = addr("192.168.49.66")

// TestBadDatagrams sends node1's taprouterd malformed or unexpected underlay
// datagrams: each must be dropped and counted, and the daemon must keep
// forwarding.
func TestBadDatagrams(t *testing.T) {
	requireDaemon(t)
	for _, backend := range []string{"vxlan", "udp"} {
		t.Run(backend, func(t *testing.T) { testBadDatagrams(t, backend) })
	}
}

func testBadDatagrams(t *testing.T, backend string) {
	c := newCluster(t, testbed.Seed())
	intruder, err := c.Bed.AddUnderlayHost("intruder", intruderAddr)
	if err != nil {
		t.Fatal(err)
	}
	daemons := startTaprouter(t, c, backend)
	d1 := daemons["node1"]
	node1, node2 := c.Node("node1"), c.Node("node2")
	pa, pc := c.Pod("pa"), c.Pod("pc")
	mustPing(t, pc.Netns, pa.Addr(), 62)

	port := uint16(8472)
	if backend == "udp" {
		port = 8285
	}
	dst := netip.AddrPortFrom(node1.Addr, port)
	echo := testbed.ICMPEcho(pc.Addr(), pa.Addr(), 64, 0x7e57, 1)
	// encap wraps echo as node2 would, with vni on vxlan.
	encap := func(vni uint32) []byte {
		if backend == "udp" {
			return echo
		}
		return testbed.VXLANFrame(vni, node1.VTEPMAC(), node2.VTEPMAC(), echo)
	}

	send := func(t *testing.T, from *testbed.Netns, counter string, payloads ...[]byte) {
		t.Helper()
		before := stats(t, d1)
		if err := from.SendUDP(dst, payloads...); err != nil {
			t.Fatal(err)
		}
		wantDelta(t, d1, before, counter, uint64(len(payloads)))
		// Each datagram is counted once: no other drop counter moved.
		if got, want := dropTotal(stats(t, d1)), dropTotal(before)+uint64(len(payloads)); got != want {
			t.Errorf("the drop counters together grew by %d for %d datagrams, want %d", int64(got-dropTotal(before)), len(payloads), len(payloads))
		}
		if exited, err := d1.Exited(); exited {
			t.Fatalf("taprouterd exited (%v)", err)
		}
	}
	if backend == "vxlan" {
		t.Run("wrong-vni", func(t *testing.T) { send(t, node2.Netns, "drop_bad_vni", encap(2)) })
		t.Run("truncated", func(t *testing.T) {
			// Shorter than the VXLAN header; a VXLAN header and half an
			// Ethernet header.
			send(t, node2.Netns, "drop_truncated", []byte{0x08, 0, 0, 0}, encap(1)[:8+10])
		})
	} else {
		t.Run("truncated", func(t *testing.T) { send(t, node2.Netns, "drop_truncated", echo[:10]) })
		t.Run("not-ipv4", func(t *testing.T) {
			v6 := make([]byte, 48)
			v6[0] = 0x60
			send(t, node2.Netns, "drop_not_ipv4", v6)
		})
	}
	t.Run("unknown-peer", func(t *testing.T) { send(t, intruder, "drop_unknown_peer", encap(1)) })
	t.Run("still-forwarding", func(t *testing.T) {
		mustPing(t, pa.Netns, pc.Addr(), 62)
		mustPing(t, pc.Netns, pa.Addr(), 62)
	})
}

// TestShutdown stops taprouterd with SIGTERM: it must exit cleanly, remove
// its host port and leave the pods' interfaces.
func TestShutdown(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	node1 := c.Node("node1")
	cfg := c.DaemonConfig(node1, "vxlan")
	cfg.LogFormat = "json"
	d, err := c.Bed.StartDaemon(node1.Node, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, c.Pod("pa").Netns, c.Pod("pb").Addr(), 63)
	// The node's own namespace (kubelet probes) reaches its pods through the
	// host port; the pod's reply crosses the router once.
	mustPing(t, node1.Netns, c.Pod("pa").Addr(), 63)
	if ok, err := node1.HasLink("taprouter0"); err != nil || !ok {
		t.Fatalf("node1 has no taprouter0 while the daemon runs (%v)", err)
	}
	start := time.Now()
	if err := d.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v; log:\n%s", err, d.Log())
	}
	t.Logf("exited cleanly %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if ok, err := node1.HasLink("taprouter0"); err != nil || ok {
		t.Errorf("taprouter0 still in node1 after SIGTERM (%v)", err)
	}
	for _, p := range node1.Spec.Pods {
		if ok, err := c.Pod(p.Name).HasLink("eth0"); err != nil || !ok {
			t.Errorf("pod %s lost its eth0 after SIGTERM (%v)", p.Name, err)
		}
	}
	// --log-format json: every line is a JSON object; setup and shutdown are logged.
	msgs := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(d.Log()), "\n") {
		var entry struct {
			Level, Msg string
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Level == "" {
			t.Fatalf("log line is not a zap JSON entry: %q (%v)", line, err)
		}
		msgs[entry.Msg] = true
	}
	for _, want := range []string{"underlay", "pod port added", "ready", "shutting down"} {
		if !msgs[want] {
			t.Errorf("no %q in the JSON log:\n%s", want, d.Log())
		}
	}
}

// dropTotal sums the drop reasons (drop_*; the tunnel's tunnel_drop_*
// copies are left out).
func dropTotal(s map[string]uint64) (n uint64) {
	for name, v := range s {
		if strings.HasPrefix(name, "drop_") {
			n += v
		}
	}
	return n
}
