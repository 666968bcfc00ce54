package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestInvalidConfig runs taprouterd on configurations that are valid but for
// one field; each must exit non-zero with one line naming that field.
func TestInvalidConfig(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	node1 := c.Node("node1")

	base := func() testbed.DaemonConfig { return c.DaemonConfig(node1, "vxlan") }
	t.Run("base-config-starts", func(t *testing.T) {
		d, err := c.Bed.StartDaemon(node1.Node, base())
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Terminate(); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, d.Log())
		}
	})

	cases := []struct {
		name   string
		field  string // the field the one-line message must name
		mutate func(*testbed.DaemonConfig)
	}{
		{"missing-node", "node", func(c *testbed.DaemonConfig) { c.Node = "" }},
		{"bad-podCIDR", "podCIDR", func(c *testbed.DaemonConfig) { c.PodCIDR = "10.244.0.0/33" }},
		{"gateway-outside-podCIDR", "gateway", func(c *testbed.DaemonConfig) { c.Gateway = "10.245.0.1" }},
		{"unknown-backend", "backend", func(c *testbed.DaemonConfig) { c.Backend = "geneve" }},
		{"no-such-underlay-interface", "underlay.interface", func(c *testbed.DaemonConfig) { c.Underlay.Interface = "nosuch0" }},
		{"vni-out-of-range", "vxlan.vni", func(c *testbed.DaemonConfig) { c.VXLAN.VNI = 1 << 24 }},
		{"vxlan-port-0", "vxlan.port", func(c *testbed.DaemonConfig) { c.VXLAN.Port = 0 }},
		{"udp-port-0", "udp.port", func(c *testbed.DaemonConfig) {
			c.Backend, c.VXLAN, c.UDP = "udp", nil, &testbed.UDPConfig{Port: 0}
		}},
		{"duplicate-peer-podCIDR", "peers[1].podCIDR", func(c *testbed.DaemonConfig) {
			c.Peers = append(c.Peers, testbed.PeerConfig{Node: "node3", Address: "192.168.49.4", PodCIDR: c.Peers[0].PodCIDR})
		}},
		{"peer-podCIDR-overlaps-ours", "peers[0].podCIDR", func(c *testbed.DaemonConfig) { c.Peers[0].PodCIDR = "10.244.0.0/16" }},
		{"port-ip-outside-podCIDR", "ports[0].ip", func(c *testbed.DaemonConfig) { c.Ports[0].IP = "10.244.5.4" }},
		{"duplicate-port-ip", "ports[1].ip", func(c *testbed.DaemonConfig) { c.Ports[1].IP = c.Ports[0].IP }},
		{"duplicate-port-name", "ports[1].name", func(c *testbed.DaemonConfig) { c.Ports[1].Name = c.Ports[0].Name }},
		{"missing-netns", "ports[0].netns", func(c *testbed.DaemonConfig) { c.Ports[0].Netns = "/var/run/netns/taprouter-e2e-no-such-netns" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mutate(&cfg)
			res, err := c.Bed.RunDaemonToExit(node1.Netns, cfg.YAML(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if res.Started {
				t.Fatalf("taprouterd accepted the config and kept running; output:\n%s", res.Output)
			}
			lines := res.OutputLines()
			prefix := "taprouterd: config: " + tc.field + ": "
			if res.ExitCode == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) {
				t.Fatalf("exit %d, output:\n%s\nwant a non-zero exit and exactly one line starting %q", res.ExitCode, res.Output, prefix)
			}
			t.Logf("exit %d: %s", res.ExitCode, lines[0])
		})
	}
}
