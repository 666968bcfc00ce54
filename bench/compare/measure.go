package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// measurement is one path's numbers.
type measurement struct {
	bitsPerSecond float64       // median iperf3 receiver throughput
	rtt           time.Duration // average ping RTT
	err           error
	measured      bool
}

func (m measurement) throughput() string {
	switch {
	case m.err != nil:
		return "error"
	case !m.measured:
		return "-"
	}
	return fmt.Sprintf("%.2f Gbit/s", m.bitsPerSecond/1e9)
}

func (m measurement) latency() string {
	switch {
	case m.err != nil:
		return "error"
	case !m.measured:
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(m.rtt)/float64(time.Microsecond))
}

// measureSetup builds the demo topology on a fresh bed, wires it with wire,
// and measures pa → pb (same-node) and pa → pc (cross-node).
func measureSetup(name string, s settings, wire func(*testbed.Cluster) error, taprouterd, backend string) map[string]measurement {
	fmt.Printf("measuring %s ...\n", name)
	results := map[string]measurement{}
	fail := func(err error) map[string]measurement {
		for _, path := range []string{"same-node", "cross-node"} {
			results[path] = measurement{err: fmt.Errorf("%s: %w", name, err)}
		}
		return results
	}
	bed, err := testbed.New(taprouterd)
	if err != nil {
		return fail(err)
	}
	defer bed.Close()
	defer bed.CloseOnInterrupt()()
	c, err := bed.AddCluster(testbed.Seed())
	if err != nil {
		return fail(err)
	}
	if err := wire(c); err != nil {
		return fail(err) // a daemon's setup error includes its log
	}
	pa := c.Pod("pa")
	for path, to := range map[string]*testbed.Pod{"same-node": c.Pod("pb"), "cross-node": c.Pod("pc")} {
		m := measurePath(bed, pa, to, s)
		if m.err != nil {
			m.err = fmt.Errorf("%s %s: %w", name, path, m.err)
			fmt.Println(indent(bed.Logs()))
		}
		results[path] = m
	}
	return results
}

func measurePath(bed *testbed.Bed, from, to *testbed.Pod, s settings) measurement {
	pr, err := from.Ping(to.Addr(), testbed.PingOptions{Count: s.pings, Interval: 20 * time.Millisecond})
	if err != nil {
		return measurement{err: err}
	}
	if pr.Received != pr.Transmitted {
		return measurement{err: fmt.Errorf("ping lost %d of %d", pr.Transmitted-pr.Received, pr.Transmitted)}
	}
	var rates []float64
	for range s.reps {
		r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: s.duration})
		if err != nil {
			return measurement{err: err}
		}
		rates = append(rates, r.BitsPerSecond)
	}
	slices.Sort(rates)
	return measurement{bitsPerSecond: rates[len(rates)/2], rtt: pr.RTTAvg, measured: true}
}
