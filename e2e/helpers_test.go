package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// newCluster builds specs on a fresh bed that is torn down when the test
// ends, after dumping every process's log if the test failed.
func newCluster(t *testing.T, specs []testbed.NodeSpec) *testbed.Cluster {
	t.Helper()
	bed, err := testbed.New(taprouterd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs:\n%s", bed.Logs())
		}
		if err := bed.Close(); err != nil {
			t.Errorf("tearing down the bed: %v", err)
		}
	})
	c, err := bed.AddCluster(specs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startTaprouter starts taprouterd on nodes (all when none are given) and
// fails the test if any of them has exited by the time the test ends.
func startTaprouter(t *testing.T, c *testbed.Cluster, backend string, nodes ...*testbed.ClusterNode) map[string]*testbed.Daemon {
	t.Helper()
	daemons, err := c.StartTaprouter(backend, nodes...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for name, d := range daemons {
			if exited, err := d.Exited(); exited {
				t.Errorf("taprouterd on %s exited during the test (%v)", name, err)
			}
		}
	})
	return daemons
}

// oneNode starts a one-node vxlan cluster whose taprouterd the test stops
// and restarts itself (it is stopped at cleanup, not checked for having
// exited).
func oneNode(t *testing.T) (*testbed.Cluster, *testbed.ClusterNode, *testbed.Daemon) {
	t.Helper()
	c := newCluster(t, testbed.Seed()[:1])
	daemons := startTaprouter(t, c, "vxlan")
	d := daemons["node1"]
	delete(daemons, "node1")
	t.Cleanup(func() { d.Stop(5 * time.Second) })
	return c, c.Node("node1"), d
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// mustPing pings 5 times and wants every reply with TTL wantTTL.
func mustPing(t *testing.T, from *testbed.Netns, to netip.Addr, wantTTL int) testbed.PingResult {
	t.Helper()
	r, err := from.Ping(to, testbed.PingOptions{Count: 5, Interval: 100 * time.Millisecond, Deadline: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ttl, ttlErr := r.TTL()
	if r.Transmitted != 5 || r.Received != 5 || ttlErr != nil || ttl != wantTTL {
		t.Fatalf("ping %s → %s: %d/%d replies, TTL %d (%v); want 5/5 with TTL %d:\n%s",
			from.Name, to, r.Received, r.Transmitted, ttl, ttlErr, wantTTL, r.Output)
	}
	t.Logf("ping %s → %s: 0%% loss, TTL %d, avg RTT %v", from.Name, to, ttl, r.RTTAvg)
	return r
}

func stats(t *testing.T, d *testbed.Daemon) map[string]uint64 {
	t.Helper()
	s, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantDelta fails the test unless counter name on d grows by exactly delta
// from its value in before. It waits up to 3 s for the counter to reach
// that value, then settles for 200 ms and reads it again, so that a counter
// incremented twice for one event is caught even when the second increment
// comes a little later.
func wantDelta(t *testing.T, d *testbed.Daemon, before map[string]uint64, name string, delta uint64) {
	t.Helper()
	start, ok := before[name]
	if !ok {
		t.Errorf("taprouterd on %s reports no counter %q", d.Node.Name, name)
		return
	}
	if _, err := d.WaitCounter(name, start+delta, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	got, err := d.Counter(name)
	if err != nil {
		t.Fatal(err)
	}
	if got != start+delta {
		t.Errorf("counter %s on %s grew by %d, want exactly %d", name, d.Node.Name, int64(got-start), delta)
	}
}

// captureOnePing pings once from → to while capturing on ns's eth0 with
// filter, and returns the two packets captured: the request and the reply.
func captureOnePing(t *testing.T, bed *testbed.Bed, ns *testbed.Netns, filter string, from, to *testbed.Pod) []testbed.Packet {
	t.Helper()
	capture, err := bed.StartCapture(ns, "eth0", filter, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := from.Ping(to.Addr(), testbed.PingOptions{Count: 1}); err != nil || r.Received != 1 {
		t.Fatalf("ping %s → %s: %v\n%s", from.Spec.Name, to.Addr(), err, r.Output)
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 2 {
		t.Fatalf("captured %d packets on %s's eth0 (%s), want the request and the reply", len(packets), ns.Name, filter)
	}
	return packets
}

// editState rewrites the port entries of node's state file (its daemon is
// stopped) with edit; the file must hold wantPorts entries before.
func editState(t *testing.T, bed *testbed.Bed, node *testbed.Node, wantPorts int, edit func([]json.RawMessage) []json.RawMessage) {
	t.Helper()
	path := filepath.Join(bed.StateDir(node), "ports.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Version int               `json:"version"`
		Node    string            `json:"node"`
		Ports   []json.RawMessage `json:"ports"`
	}
	if err := json.Unmarshal(b, &st); err != nil || len(st.Ports) != wantPorts {
		t.Fatalf("state file %s: %v, want %d ports", b, err, wantPorts)
	}
	st.Ports = edit(st.Ports)
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
