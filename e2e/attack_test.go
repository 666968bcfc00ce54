package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/api"
)

// TestAttackStateTwoEntriesOneInterface: a state file with a second entry
// (another containerID, another address) for a live pod's netns and
// ifName. Both pass the per-entry checks, as nothing compares entries'
// (netns, ifName). At restart the live pod's TAP is adopted first; the
// second entry's adoption fails (TUNSETIFF: busy) and it is "kept on
// record, not attached". A DEL of that second container (or GC) then
// detaches it, which deletes eth0 in the namespace: the live pod's. The
// second entry should be dropped at load (two entries for one interface),
// and the API should refuse such an ADD as a conflict rather than a 500.
func TestAttackStateTwoEntriesOneInterface(t *testing.T) {
	requireDaemon(t)
	c, node1, d := oneNode(t)
	live, err := c.Bed.AddNetns("live")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := api.NewClient(d.Socket)
	if _, err := client.AddPort(ctx, api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.20"}); err != nil {
		t.Fatal(err)
	}
	// The API: a second container for the same interface.
	_, err = client.AddPort(ctx, api.PortRequest{ContainerID: "twin", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.21"})
	if api.ErrorCode(err) != api.CodeConflict {
		t.Errorf("ADD of a second container for live's netns and eth0: %v (code %q), want a conflict", err, api.ErrorCode(err))
	}
	if err := d.Terminate(); err != nil {
		t.Fatal(err)
	}
	editState(t, c.Bed, node1.Node, 1, func(ports []json.RawMessage) []json.RawMessage {
		return append(ports, json.RawMessage(fmt.Sprintf(`{"name": "twin/eth0", "containerID": "twin", "ifName": "eth0", "netns": %q, "ip": "10.244.0.21"}`, live.Path())))
	})
	restarted, err := c.Bed.StartDaemon(node1.Node, d.Config)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { restarted.Stop(5 * time.Second) })
	client = api.NewClient(restarted.Socket)
	if err := client.RemovePort(ctx, api.Attachment{ContainerID: "twin", IfName: "eth0"}); err != nil {
		t.Logf("DEL twin: %v", err)
	}
	if out, _ := live.IP("-o", "link"); !strings.Contains(out, "eth0") {
		t.Errorf("DEL of container twin deleted live's eth0; live's links:\n%s", out)
	}
	mustPing(t, live, addr("10.244.0.4"), 63)
}
