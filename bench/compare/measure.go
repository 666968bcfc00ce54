package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// measurement is one path's numbers.
type measurement struct {
	bitsPerSecond float64       // median iperf3 receiver throughput
	streams4      float64       // the same with 4 parallel streams (-P 4), cross-node only
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

func (m measurement) throughput4() string {
	switch {
	case m.err != nil:
		return "error"
	case m.streams4 == 0:
		return "-"
	}
	return fmt.Sprintf("%.2f Gbit/s", m.streams4/1e9)
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
// profile, if set, is called when the first cross-node iperf3 run starts
// and returns a function to wait for what it started (the daemons' CPU
// profiles).
func measureSetup(name string, s settings, wire func(*testbed.Cluster) error, taprouterd, backend string, profile func() (wait func())) map[string]measurement {
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
		var hook func() func()
		if path == "cross-node" {
			hook = profile
		}
		m := measurePath(bed, pa, to, s, hook, path == "cross-node")
		if m.err != nil {
			m.err = fmt.Errorf("%s %s: %w", name, path, m.err)
			fmt.Println(indent(bed.Logs()))
		}
		results[path] = m
	}
	return results
}

// measurePath pings and runs iperf3 s.reps times from → to, and once more
// with 4 streams if parallel.
func measurePath(bed *testbed.Bed, from, to *testbed.Pod, s settings, profile func() func(), parallel bool) measurement {
	pr, err := from.Ping(to.Addr(), testbed.PingOptions{Count: s.pings, Interval: 20 * time.Millisecond})
	if err != nil {
		return measurement{err: err}
	}
	if pr.Received != pr.Transmitted {
		return measurement{err: fmt.Errorf("ping lost %d of %d", pr.Transmitted-pr.Received, pr.Transmitted)}
	}
	var rates []float64
	for i := range s.reps {
		wait := func() {}
		if i == 0 && profile != nil {
			wait = profile()
		}
		r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: s.duration})
		wait()
		if err != nil {
			return measurement{err: err}
		}
		rates = append(rates, r.BitsPerSecond)
	}
	slices.Sort(rates)
	m := measurement{bitsPerSecond: rates[len(rates)/2], rtt: pr.RTTAvg, measured: true}
	if parallel {
		r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: s.duration, Streams: 4})
		if err != nil {
			return measurement{err: err}
		}
		m.streams4 = r.BitsPerSecond
	}
	return m
}

// cpuProfiles starts a CPU profile of seconds on every daemon (GET
// /debug/pprof/profile on its socket) and returns a function that waits
// for them and writes each to dir/<name>-<node>.pprof.
func cpuProfiles(daemons map[string]*testbed.Daemon, seconds int, dir, name string) func() {
	var wg sync.WaitGroup
	for node, d := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
			}}}
			resp, err := client.Get(fmt.Sprintf("http://taprouterd/debug/pprof/profile?seconds=%d", seconds))
			if err != nil {
				fmt.Fprintf(os.Stderr, "profile %s %s: %v\n", name, node, err)
				return
			}
			defer resp.Body.Close()
			path := filepath.Join(dir, name+"-"+node+".pprof")
			f, err := os.Create(path)
			if err == nil {
				_, err = io.Copy(f, resp.Body)
				f.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				fmt.Fprintf(os.Stderr, "profile %s %s: %v %s\n", name, node, err, resp.Status)
				return
			}
			fmt.Printf("  CPU profile of %s on %s during the cross-node run: %s\n", name, node, path)
		}()
	}
	return wg.Wait
}
