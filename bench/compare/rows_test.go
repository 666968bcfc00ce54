package main

import (
	"errors"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

func TestBuildRows(t *testing.T) {
	s := settings{duration: 5 * time.Second, reps: 3, pings: 200, pingInterval: 10 * time.Millisecond, udpClients: 2, scalePorts: 110, scalePeers: 5000,
		benchTest: "bin/bench.test", benchRuns: 3, benchPackets: 1000}
	m := measurements{
		ptp: map[string]stats{
			"same-node": {tcp: 10e9, rtt50: 50 * time.Microsecond, rtt99: 80 * time.Microsecond},
			// The kernel received all that was sent: sender-limited.
			"cross-node": {tcp: 8e9, tcpBytes: 5e9, softirq: 1500 * time.Millisecond, tcp4: 9e9, rtt50: 80 * time.Microsecond, rtt99: 100 * time.Microsecond,
				udp: testbed.IperfResult{PacketsSent: 200000, PacketsReceived: 200000, Seconds: 2}},
		},
		flannel: map[string]stats{"cross-node": {err: errors.New("no flannel")}},
		vxlan: map[string]stats{
			"same-node":  {tcp: 6e9, rtt50: 100 * time.Microsecond, rtt99: 200 * time.Microsecond},
			"cross-node": {tcp: 4e9, tcpBytes: 2e9, daemonCPU: 3 * time.Second, softirq: 500 * time.Millisecond},
		},
		udp:    map[string]stats{"cross-node": {tcp: 3e9, tcpBytes: 1e9, daemonCPU: 2 * time.Second}},
		direct: map[string]stats{"cross-node": {tcp: 2e9, tcpBytes: 1e9, daemonCPU: 4 * time.Second, udp: testbed.IperfResult{PacketsSent: 400000, PacketsReceived: 100000, Seconds: 2}}},
		scale:  scaleStats{mem: testbed.Memory{RSS: 50 << 20, PeakRSS: 60 << 20}},
		// The median rate is 5.5 (not the mean, 5.4); one run allocated.
		inMemory: inMemoryStats{runs: []benchRun{{mpps: 5.5, cpuNs: 150, allocs: 0}, {mpps: 4.2, cpuNs: 190, allocs: 0.0001}, {mpps: 6.5, cpuNs: 140, allocs: 0}}},
	}
	rows := buildRows(m, s)
	if len(rows) != 20 {
		t.Fatalf("%d rows, want 20", len(rows))
	}
	byName := map[string]Row{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	check := func(name string, taprouter, kernel, ratio *float64, note string) {
		t.Helper()
		r, ok := byName[name]
		if !ok {
			t.Errorf("no row %q", name)
			return
		}
		eq := func(a, b *float64) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
		if !eq(r.Taprouter, taprouter) || !eq(r.Kernel, kernel) || !eq(r.Ratio, ratio) || r.Note != note {
			t.Errorf("row %q = taprouter %v kernel %v ratio %v note %q; want %v %v %v %q", name,
				deref(r.Taprouter), deref(r.Kernel), deref(r.Ratio), r.Note, deref(taprouter), deref(kernel), deref(ratio), note)
		}
	}
	f := func(v float64) *float64 { return &v }
	check("cross-node TCP, direct vs kernel routes (kindnet ptp)", f(2), f(8), f(0.25), "median of 3 × 5s")
	check("cross-node TCP, vxlan vs kernel vxlan (flannel)", f(4), nil, nil, "kernel failed (stderr says why); median of 3 × 5s")
	check("cross-node TCP, udp (no kernel reference)", f(3), nil, nil, "median of 3 × 5s")
	check("same-node TCP, taprouterd (vxlan) vs kernel veth routes", f(6), f(10), f(0.6), "median of 3 × 5s")
	check("ping p99 same-node, vs kernel veth routes", f(200), f(80), f(2.5), "200 pings, 10ms apart")
	check("UDP 64 B packets/s cross-node, direct vs kernel routes", f(50000), f(100000), f(0.5),
		"2 clients; taprouter: sent 200000/s, 75.0% lost; kernel: sent 100000/s, 0.0% lost (got all the senders sent: sender-limited)")
	// 4 s over 1 GB against 1.5 s over 5 GB.
	check("CPU s/GB cross-node, direct: taprouterd vs kernel softirq", f(4), f(0.3), f(13.333),
		"taprouterd: utime+stime of both daemons, plus 0.000 s/GB softirq (machine-wide) in its run; kernel: softirq of all CPUs, machine-wide")
	check("CPU s/GB cross-node, vxlan: taprouterd vs kernel softirq", f(1.5), nil, nil,
		"kernel failed (stderr says why); taprouterd: utime+stime of both daemons, plus 0.250 s/GB softirq (machine-wide) in its run; kernel: softirq of all CPUs, machine-wide")
	check("taprouterd RSS, 110 ports + 5000 peers (vxlan)", f(50), nil, nil, "VmRSS after attaching; VmHWM 60.0 MiB")
	if r := byName["taprouterd RSS, 110 ports + 5000 peers (vxlan)"]; r.Limit == nil || *r.Limit != 64 || !r.meets() {
		t.Errorf("memory row %+v: want limit 64 MiB, met", r)
	}
	rate, alloc := "in memory, one core: pod → vxlan → pod through two routers, 64 B", "in memory: allocations per packet (the same runs)"
	check(rate, f(5.5), nil, nil, "BenchmarkCrossNodeVXLAN64 at GOMAXPROCS 1, median of 3 runs of 1000 packets; 150 CPU ns per packet")
	check(alloc, f(0.0001), nil, nil, "the largest allocs/pkt of any run: every allocation of the process during the run, per packet")
	if r := byName[rate]; r.Limit == nil || *r.Limit != 5 || !r.meets() || r.goal() != "≥ 5.00 Mpps" {
		t.Errorf("in-memory rate row %+v (goal %q): want limit 5 Mpps, met", r, r.goal())
	}
	if r := byName[alloc]; r.Limit == nil || *r.Limit != 0 || r.meets() {
		t.Errorf("allocation row %+v: want limit 0, not met by a run that allocated", r)
	}

	// A setup that did not run fails its rows, not the table.
	m.udp = nil
	for _, r := range buildRows(m, s) {
		if r.Name == "cross-node TCP, udp (no kernel reference)" && (r.Taprouter != nil || r.Note != "taprouter failed (stderr says why); median of 3 × 5s") {
			t.Errorf("row of a setup that did not run: %+v", r)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestParseBenchRuns reads go test's result lines of the in-memory
// benchmark, as -test.cpu 1 prints them (no -N suffix), and nothing else.
func TestParseBenchRuns(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/taprouter/taprouter/bench
cpu: AMD EPYC
BenchmarkCrossNodeVXLAN64     	 1000000	       149.5 ns/op	 428.18 MB/s	         6.690 Mpps	         0 allocs/pkt	       145.1 cpu-ns/pkt	       149.5 ns/pkt	       0 B/op	       0 allocs/op
BenchmarkCrossNodeVXLAN64-2   	 1000000	       189.0 ns/op	 338.69 MB/s	         5.292 Mpps	         0.0000010 allocs/pkt	       258.3 cpu-ns/pkt	       189.0 ns/pkt	       0 B/op	       0 allocs/op
BenchmarkCrossNodeVXLAN64     	 1000000	       165.2 ns/op	 387.37 MB/s	         6.053 Mpps	         0.0000020 allocs/pkt	       135.4 cpu-ns/pkt	       165.2 ns/pkt	       0 B/op	       0 allocs/op
PASS
ok  	github.com/taprouter/taprouter/bench	2.693s
`
	runs, err := parseBenchRuns(out, "BenchmarkCrossNodeVXLAN64")
	if err != nil {
		t.Fatal(err)
	}
	// The second run allocated twice in 1,000,000 packets, which its
	// allocs/op rounds to 0.
	want := []benchRun{{mpps: 6.690, cpuNs: 145.1, allocs: 0}, {mpps: 6.053, cpuNs: 135.4, allocs: 0.000002}}
	if len(runs) != len(want) || runs[0] != want[0] || runs[1] != want[1] {
		t.Errorf("runs %+v, want %+v", runs, want)
	}
	for _, bad := range []string{
		"PASS\n", // no result line
		"BenchmarkCrossNodeVXLAN64 2000000 180.6 ns/op 5.536 Mpps 0 allocs/pkt\n",             // no cpu-ns/pkt
		"BenchmarkCrossNodeVXLAN64 2000000 180.6 ns/op 5.536 Mpps 1 cpu-ns/pkt 0 allocs/op\n", // no allocs/pkt
		"BenchmarkCrossNodeVXLAN64 2000000 180.6 ns/op x Mpps 1 cpu-ns/pkt 0 allocs/pkt\n",    // not a number
	} {
		if runs, err := parseBenchRuns(bad, "BenchmarkCrossNodeVXLAN64"); err == nil {
			t.Errorf("%q: parsed %+v, want an error", bad, runs)
		}
	}
}

// TestMedianOf: the middle run of an odd count, the lower middle one of an
// even count.
func TestMedianOf(t *testing.T) {
	mpps := func(r benchRun) float64 { return r.mpps }
	for _, tc := range []struct {
		runs []float64
		want float64
	}{{[]float64{7}, 7}, {[]float64{9, 5, 7}, 7}, {[]float64{8, 5, 6, 9}, 6}, {[]float64{4, 4, 1, 9}, 4}} {
		var runs []benchRun
		for _, v := range tc.runs {
			runs = append(runs, benchRun{mpps: v})
		}
		if got := medianOf(runs, mpps); got != tc.want {
			t.Errorf("medianOf(%v) = %v, want %v", tc.runs, got, tc.want)
		}
	}
}
