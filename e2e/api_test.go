package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/internal/testbed"
)

// TestAPIPortsSurviveRestart attaches two pods through the daemon's API,
// kills the daemon, deletes one pod's namespace, and restarts it: the live
// pod is re-adopted with its IP and MAC and still reachable, the stale one
// is cleaned up (no port, no route, not in the state file).
func TestAPIPortsSurviveRestart(t *testing.T) {
	requireDaemon(t)
	specs := testbed.Seed()[:1] // node1 alone, with pa and pb from its config
	c := newCluster(t, specs)
	node1 := c.Node("node1")
	daemons := startTaprouter(t, c, "vxlan")
	d := daemons["node1"]
	ctx := context.Background()

	live, err := c.Bed.AddNetns("live")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.Bed.AddNetns("gone")
	if err != nil {
		t.Fatal(err)
	}
	client := api.NewClient(d.Socket)
	pLive, err := client.AddPort(ctx, api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.20"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AddPort(ctx, api.PortRequest{ContainerID: "gone", IfName: "eth0", NetNS: gone.Path(), IP: "10.244.0.21"}); err != nil {
		t.Fatal(err)
	}
	// A retried ADD answers with the same port; another container cannot
	// take the address.
	if again, err := client.AddPort(ctx, api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.20"}); err != nil || again != pLive {
		t.Fatalf("retried add: %+v, %v; want %+v", again, err, pLive)
	}
	if _, err := client.AddPort(ctx, api.PortRequest{ContainerID: "thief", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.20"}); api.ErrorCode(err) != api.CodeConflict {
		t.Fatalf("second container on 10.244.0.20: %v, want a conflict", err)
	}
	mustPing(t, live, addr("10.244.0.4"), 63)
	if res, err := client.CheckPort(ctx, api.Attachment{ContainerID: "live", IfName: "eth0"}); err != nil || !res.OK {
		t.Fatalf("check: %+v %v", res, err)
	}

	delete(daemons, "node1") // its exit is the point, not a failure
	if err := d.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.Wait(5 * time.Second)
	if err := c.Bed.DeleteNetns(gone); err != nil {
		t.Fatal(err)
	}
	restarted, err := c.Bed.StartDaemon(node1.Node, d.Config)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { restarted.Stop(5 * time.Second) })
	client = api.NewClient(restarted.Socket)

	got, err := client.GetPort(ctx, api.Attachment{ContainerID: "live", IfName: "eth0"})
	if err != nil || got.MAC != pLive.MAC || got.IP != pLive.IP {
		t.Fatalf("after restart: %+v, %v; want %+v", got, err, pLive)
	}
	mustPing(t, live, addr("10.244.0.4"), 63)
	if _, err := client.GetPort(ctx, api.Attachment{ContainerID: "gone", IfName: "eth0"}); api.ErrorCode(err) != api.CodeNotFound {
		t.Errorf("stale port still known: %v", err)
	}
	routes, err := restarted.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Prefix == "10.244.0.21/32" {
			t.Errorf("stale route %+v", r)
		}
	}
	state, err := os.ReadFile(filepath.Join(c.Bed.StateDir(node1.Node), "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(state), `"live"`) || strings.Contains(string(state), `"gone"`) {
		t.Errorf("state file after restart:\n%s", state)
	}
	if !strings.Contains(restarted.Log(), "stale port") {
		t.Errorf("the cleanup of the stale port is not logged:\n%s", restarted.Log())
	}

	// DEL is idempotent; the pod's eth0 goes away.
	for range 2 {
		if err := client.RemovePort(ctx, api.Attachment{ContainerID: "live", IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := live.HasLink("eth0"); err != nil || ok {
		t.Errorf("live still has eth0 after DELETE (%v)", err)
	}
}
