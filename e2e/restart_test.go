package e2e

import (
	"syscall"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestRestartSurvival kills node2's taprouterd with SIGKILL in the middle of
// a cross-node iperf3 transfer and starts it again: the pods' persistent
// TAPs stay, the new daemon adopts them, the transfer completes, pc keeps
// its IP and MAC. A 20 ms ping train running alongside measures the outage,
// which must stay under maxOutage.
// maxOutage bounds the outage of TestRestartSurvival, generously: about
// 350 ms on a loaded 2-core machine, 300 ms of which is the test's own pause
// between the kill and the restart.
const maxOutage = 2 * time.Second

func TestRestartSurvival(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	daemons := startTaprouter(t, c, "vxlan")
	pa, pc := c.Pod("pa"), c.Pod("pc")
	node2 := c.Node("node2")
	mustPing(t, pa.Netns, pc.Addr(), 62)
	before, err := pc.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}

	const interval = 20 * time.Millisecond
	pinged := make(chan testbed.PingResult, 1)
	go func() {
		r, _ := pa.Ping(pc.Addr(), testbed.PingOptions{Count: 400, Interval: interval})
		pinged <- r
	}()
	type transfer struct {
		r   testbed.IperfResult
		err error
	}
	transferred := make(chan transfer, 1)
	go func() {
		r, err := c.Bed.Iperf(pa.Netns, pc.Netns, pc.Addr(), testbed.IperfOptions{Bytes: "500M"})
		transferred <- transfer{r, err}
	}()

	time.Sleep(1500 * time.Millisecond)
	old := daemons["node2"]
	delete(daemons, "node2") // its exit is the point, not a failure
	if err := old.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	old.Wait(5 * time.Second)
	killed := time.Now()
	if ok, err := pc.HasLink("eth0"); err != nil || !ok {
		t.Fatalf("pc lost eth0 when taprouterd was killed (%v)", err)
	}
	time.Sleep(300 * time.Millisecond) // the pods are cut off meanwhile
	restarted, err := c.Bed.StartDaemon(node2.Node, old.Config)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { restarted.Stop(5 * time.Second) })
	down := time.Since(killed)
	t.Logf("taprouterd on node2 was down for %v (killed, then started again and ready)", down.Round(time.Millisecond))
	if down > maxOutage {
		t.Errorf("taprouterd on node2 was down for %v, want at most %v", down.Round(time.Millisecond), maxOutage)
	}

	tr := <-transferred
	if tr.err != nil {
		t.Fatalf("iperf3 across the restart: %v", tr.err)
	}
	if err := tr.r.CheckTransfer(500 << 20); err != nil {
		t.Fatalf("iperf3 across the restart: %v", err)
	}
	p := <-pinged
	lost := p.Transmitted - p.Received
	outage := time.Duration(lost) * interval
	t.Logf("outage seen by a %v ping train: %d of %d echoes lost ≈ %v; iperf3 moved %d MiB at %.2f Gbit/s including the outage",
		interval, lost, p.Transmitted, outage, tr.r.BytesReceived>>20, tr.r.BitsPerSecond/1e9)
	if p.Received == 0 || lost == p.Transmitted {
		t.Fatalf("no echo came back at all:\n%s", p.Output)
	}
	if outage > maxOutage {
		t.Errorf("outage seen by the ping train: %d echoes lost ≈ %v, want at most %v:\n%s", lost, outage, maxOutage, p.Output)
	}

	after, err := pc.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if after.MAC != before.MAC || after.MTU != before.MTU {
		t.Errorf("pc eth0 changed across the restart: MAC %s → %s, MTU %d → %d", before.MAC, after.MAC, before.MTU, after.MTU)
	}
	mustPing(t, pc.Netns, pa.Addr(), 62)
	ports, err := restarted.Ports()
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 || ports[1].MAC != before.MAC.String() || ports[1].IP != pc.Addr().String() {
		t.Errorf("restarted daemon's ports %+v, want the host port and pc %s with MAC %s", ports, pc.Addr(), before.MAC)
	}
}
