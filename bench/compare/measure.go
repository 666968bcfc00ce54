package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// plan says what to measure on one path of a setup.
type plan struct {
	path string // "same-node" (pa → pb) or "cross-node" (pa → pc)
	ping bool   // ping RTT p50 and p99
	tcp4 bool   // one more TCP run with 4 streams
	udp  bool   // a UDP run with 64-byte datagrams at no rate limit
}

// The paths of the demo topology and their destination pod.
var destination = map[string]string{"same-node": "pb", "cross-node": "pc"}

// stats are one path's numbers.
type stats struct {
	tcp      float64 // median iperf3 receiver bits/s, 1 stream
	tcpBytes uint64  // bytes the receiver got over all 1-stream runs
	// daemonCPU is the CPU time of every taprouterd of the setup (utime +
	// stime) during the 1-stream runs; softirq is the machine's softirq
	// time during them.
	daemonCPU, softirq time.Duration
	tcp4               float64 // receiver bits/s with 4 streams (-P 4)
	rtt50, rtt99       time.Duration
	udp                testbed.IperfResult // summed over the UDP clients
	err                error
}

// cpuPerGB returns CPU seconds per GB (1e9 bytes) received.
func (s stats) cpuPerGB(cpu time.Duration) float64 {
	if s.tcpBytes == 0 {
		return 0
	}
	return cpu.Seconds() / (float64(s.tcpBytes) / 1e9)
}

// wiring wires a fresh cluster and returns the taprouterd daemons it
// started (none for the kernel setups).
type wiring func(*testbed.Cluster) (map[string]*testbed.Daemon, error)

// measureSetup builds the demo topology on a fresh bed, wires it, and
// measures the paths of plans from pa. profile, if set, is called with the
// daemons when the first cross-node iperf3 run starts and returns a function
// to wait for what it started (the daemons' CPU profiles).
func measureSetup(name string, s settings, wire wiring, taprouterd string, plans []plan,
	profile func(map[string]*testbed.Daemon) (wait func())) map[string]stats {
	fmt.Printf("measuring %s ...\n", name)
	results := map[string]stats{}
	fail := func(err error) map[string]stats {
		for _, p := range plans {
			results[p.path] = stats{err: fmt.Errorf("%s: %w", name, err)}
		}
		return results
	}
	bed, err := testbed.New(taprouterd)
	if err != nil {
		return fail(err)
	}
	defer bed.Close()
	c, err := bed.AddCluster(testbed.Seed())
	if err != nil {
		return fail(err)
	}
	daemons, err := wire(c)
	if err != nil {
		return fail(err) // a daemon's setup error includes its log
	}
	pa := c.Pod("pa")
	for _, p := range plans {
		var hook func() func()
		if p.path == "cross-node" && profile != nil {
			hook = func() func() { return profile(daemons) }
		}
		st := measurePath(bed, pa, c.Pod(destination[p.path]), p, s, daemons, hook)
		if st.err != nil {
			st.err = fmt.Errorf("%s %s: %w", name, p.path, st.err)
			fmt.Println(indent(bed.Logs()))
		}
		results[p.path] = st
	}
	return results
}

// measurePath measures from → to as p says: ping, iperf3 TCP s.reps times
// (with the daemons' CPU and the machine's softirq time around each run),
// TCP with 4 streams, UDP.
func measurePath(bed *testbed.Bed, from, to *testbed.Pod, p plan, s settings, daemons map[string]*testbed.Daemon, profile func() func()) stats {
	var st stats
	if p.ping {
		pr, err := from.Ping(to.Addr(), testbed.PingOptions{Count: s.pings, Interval: s.pingInterval, Deadline: time.Duration(s.pings)*s.pingInterval + 2*time.Second})
		if err != nil {
			return stats{err: err}
		}
		if pr.Received != pr.Transmitted || len(pr.RTTs) != pr.Received {
			return stats{err: fmt.Errorf("ping: %d of %d replies, %d RTTs", pr.Received, pr.Transmitted, len(pr.RTTs))}
		}
		st.rtt50, st.rtt99 = pr.RTTPercentile(50), pr.RTTPercentile(99)
	}
	var rates []float64
	for i := range s.reps {
		wait := func() {}
		if i == 0 && profile != nil {
			wait = profile()
		}
		cpu0, soft0, err := cpuNow(daemons)
		if err != nil {
			return stats{err: err}
		}
		r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: s.duration})
		cpu1, soft1, cerr := cpuNow(daemons)
		wait()
		if err != nil {
			return stats{err: err}
		}
		if cerr != nil {
			return stats{err: cerr}
		}
		rates = append(rates, r.BitsPerSecond)
		st.tcpBytes += r.BytesReceived
		st.daemonCPU += cpu1 - cpu0
		st.softirq += soft1 - soft0
	}
	st.tcp = median(rates)
	if p.tcp4 {
		r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Duration: s.duration, Streams: 4})
		if err != nil {
			return stats{err: err}
		}
		st.tcp4 = r.BitsPerSecond
	}
	if p.udp {
		// A sender at no rate limit fills its pod's queue toward the
		// router, where its TCP control connection's segments are lost as
		// often as its datagrams: iperf3 then gives up waiting for the
		// server's report ("unable to read from stream socket"). Such a
		// run measured nothing; it is run again, at most twice, and said.
		var r testbed.IperfResult
		var err error
		for try := 0; try < 3; try++ {
			r, err = bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{
				Duration: s.duration, UDP: true, Length: 64, Bitrate: "0", Clients: s.udpClients})
			if err == nil || !strings.Contains(err.Error(), "unable to read from stream socket") {
				break
			}
			fmt.Fprintf(os.Stderr, "  UDP run %s → %s lost iperf3's control connection (try %d of 3): %v\n", from.Spec.Name, to.Spec.Name, try+1, firstLine(err.Error()))
		}
		if err != nil {
			return stats{err: err}
		}
		st.udp = r
	}
	return st
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// cpuNow returns the CPU time the daemons have used so far, together, and
// the machine's softirq time.
func cpuNow(daemons map[string]*testbed.Daemon) (cpu, softirq time.Duration, err error) {
	for _, d := range daemons {
		c, err := testbed.ProcessCPU(d.Pid())
		if err != nil {
			return 0, 0, err
		}
		cpu += c
	}
	softirq, err = testbed.SoftirqCPU()
	return cpu, softirq, err
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
