package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// row is one line of the result table.
type row struct {
	backend, path, rtt, ttl, throughput, result string
}

// path is a pod-to-pod path the demo measures from pa.
type path struct {
	name    string
	to      string // pod name
	wantTTL int    // TTL of the replies pa sees: 64 minus one per router
}

var paths = []path{{"same-node", "pb", 63}, {"cross-node", "pc", 62}}

// demoBackend runs the cluster with backend, prints the properties it
// proved, and returns the table rows; ok is false when a property failed.
func demoBackend(taprouterd, backend string, duration time.Duration, showConfig bool) (rows []row, ok bool) {
	fmt.Printf("== %s backend (pod MTU %d)\n", backend, testbed.PodMTU(backend))
	failAll := func(err error) ([]row, bool) {
		fmt.Printf("  [FAIL] setup: %v\n", err)
		for _, p := range paths {
			rows = append(rows, row{backend, p.name, "-", "-", "-", "FAIL: setup"})
		}
		return rows, false
	}
	bed, err := testbed.New(taprouterd)
	if err != nil {
		return failAll(err)
	}
	defer func() {
		if !ok {
			fmt.Fprintf(os.Stderr, "process logs of the %s run:\n%s", backend, bed.Logs())
		}
		if err := bed.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "taprouter-demo: teardown: %v\n", err)
		}
	}()
	c, err := bed.AddCluster(testbed.Seed())
	if err != nil {
		return failAll(err)
	}
	for _, n := range c.Nodes {
		doc, cfg, err := renderConfig(c, n, backend)
		if err != nil {
			return failAll(err)
		}
		if showConfig {
			fmt.Printf("%s\n", doc)
		}
		if _, err := bed.StartDaemon(n.Node, cfg); err != nil {
			return failAll(err)
		}
	}

	ok = true
	pa := c.Pod("pa")
	ttls := map[string]int{}
	for _, p := range paths {
		r, ttl := measure(bed, pa, c.Pod(p.to), p, duration)
		r.backend = backend
		rows = append(rows, r)
		ttls[p.name] = ttl
		ok = ok && r.result == "ok"
	}

	proofs := []func() (string, error){
		func() (string, error) { return proveARP(pa) },
		func() (string, error) { return proveTTL(ttls) },
		func() (string, error) { return proveNoSNAT(bed, pa, c.Pod("pc")) },
		func() (string, error) { return proveTraceroute(pa, c.Pod("pc"), c.Node("node2").Addr) },
		func() (string, error) { return provePMTU(pa, c.Pod("pc"), testbed.PodMTU(backend)) },
	}
	for _, prove := range proofs {
		msg, err := prove()
		if err != nil {
			fmt.Printf("  [FAIL] %v\n", err)
			ok = false
			continue
		}
		fmt.Printf("  [ok] %s\n", msg)
	}
	return rows, ok
}

// measure pings to from pa and runs an iperf3 TCP test; it returns the table
// row and the TTL the replies carried.
func measure(bed *testbed.Bed, pa, to *testbed.Pod, p path, duration time.Duration) (row, int) {
	r := row{path: p.name, rtt: "-", ttl: "-", throughput: "-"}
	pr, err := pa.Ping(to.Addr(), testbed.PingOptions{Count: 10, Interval: 100 * time.Millisecond})
	if err != nil {
		r.result = "FAIL: " + err.Error()
		return r, 0
	}
	ttl, ttlErr := pr.TTL()
	if pr.Received > 0 {
		r.rtt = fmt.Sprintf("%.3f ms", float64(pr.RTTAvg)/float64(time.Millisecond))
		r.ttl = fmt.Sprint(ttl)
	}
	switch {
	case pr.Received != pr.Transmitted:
		r.result = fmt.Sprintf("FAIL: ping lost %d of %d", pr.Transmitted-pr.Received, pr.Transmitted)
		return r, ttl
	case ttlErr != nil || ttl != p.wantTTL:
		r.result = fmt.Sprintf("FAIL: TTL %s, want %d", r.ttl, p.wantTTL)
		return r, ttl
	}
	ir, err := bed.Iperf(pa.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: duration})
	if err != nil || ir.BytesReceived == 0 {
		r.result = fmt.Sprintf("FAIL: iperf3: %v", err)
		return r, ttl
	}
	r.throughput = fmt.Sprintf("%.2f Gbit/s", ir.BitsPerSecond/1e9)
	r.result = "ok"
	return r, ttl
}

func proveARP(pa *testbed.Pod) (string, error) {
	gw := pa.Node.Spec.Gateway
	nb, found, err := pa.Neighbour("eth0", gw)
	if err != nil {
		return "", err
	}
	own, err := pa.Link("eth0")
	if err != nil {
		return "", err
	}
	if !found || nb.MAC.IsZero() || nb.MAC == own.MAC || !slices.Contains([]string{"REACHABLE", "STALE", "DELAY"}, nb.State) {
		return "", fmt.Errorf("ARP: pa has no usable entry for gateway %s: %+v", gw, nb)
	}
	return fmt.Sprintf("ARP: pa resolved its gateway %s to the router's MAC %s (%s); pa's own eth0 is %s",
		gw, nb.MAC, nb.State, own.MAC), nil
}

func proveTTL(ttls map[string]int) (string, error) {
	if ttls["same-node"] != 63 || ttls["cross-node"] != 62 {
		return "", fmt.Errorf("TTL: replies came back with TTL %d (same node) and %d (other node), want 63 and 62",
			ttls["same-node"], ttls["cross-node"])
	}
	return "TTL: replies arrive with 63 from the same node and 62 from the other node: one decrement per taprouter hop", nil
}

// proveNoSNAT captures in pc what pa's ping looks like when it arrives.
func proveNoSNAT(bed *testbed.Bed, pa, pc *testbed.Pod) (string, error) {
	capture, err := bed.StartCapture(pc.Netns, "eth0", "icmp[icmptype] == icmp-echo", 3)
	if err != nil {
		return "", err
	}
	if _, err := pa.Ping(pc.Addr(), testbed.PingOptions{Count: 3, Interval: 100 * time.Millisecond}); err != nil {
		return "", err
	}
	packets, err := capture.Wait(5 * time.Second)
	if err != nil {
		return "", err
	}
	if len(packets) == 0 {
		return "", errors.New("no SNAT: pc captured no echo request")
	}
	for _, p := range packets {
		if p.Src != pa.Addr() {
			return "", fmt.Errorf("no SNAT: pc captured an echo request from %s, want pa's %s", p.Src, pa.Addr())
		}
	}
	return fmt.Sprintf("no SNAT: tcpdump in pc captured %d echo requests from %s, pa's own address", len(packets), pa.Addr()), nil
}

// proveTraceroute shows the hops a pod sees across nodes: its gateway, the
// remote node's router, the remote pod.
func proveTraceroute(pa, pc *testbed.Pod, node2 netip.Addr) (string, error) {
	hops, out, err := pa.Traceroute(pc.Addr(), 6)
	if err != nil {
		return "", fmt.Errorf("traceroute: %v\n%s", err, out)
	}
	want := []netip.Addr{pa.Node.Spec.Gateway, node2, pc.Addr()}
	if !slices.Equal(hops, want) {
		return "", fmt.Errorf("traceroute pa → pc: hops %v, want %v:\n%s", hops, want, out)
	}
	return fmt.Sprintf("traceroute: pa → pc lists %s (pa's gateway), %s (node2's router), %s", want[0], want[1], want[2]), nil
}

// provePMTU runs tracepath from pa to pc.
func provePMTU(pa, pc *testbed.Pod, podMTU int) (string, error) {
	tp, err := pa.Tracepath(pc.Addr(), 6)
	if err != nil {
		return "", fmt.Errorf("tracepath: %v\n%s", err, tp.Output)
	}
	if tp.PMTU != podMTU {
		return "", fmt.Errorf("tracepath pa → pc: pmtu %d, want %d:\n%s", tp.PMTU, podMTU, tp.Output)
	}
	return fmt.Sprintf("tracepath: pa → pc path MTU %d (underlay 1500 minus the backend's overhead)", tp.PMTU), nil
}
