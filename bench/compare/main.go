// Command compare measures taprouter against the Linux kernel on the demo
// topology (two nodes on a bridged veth underlay, pods pa and pb on node1, pc
// on node2): iperf3 TCP throughput (median of several runs) and ping RTT,
// same-node and cross-node, for each taprouter backend and for the kernel
// setup it replaces: kindnet-style ptp routes (veth pairs, /32 routes,
// ip_forward) for direct and same-node, flannel-style kernel vxlan for vxlan.
// The udp backend has no kernel counterpart here. It prints one table with
// the ratios taprouter/kernel.
//
// Usage (as root; "make bench" runs it after the Go benchmarks):
//
//	compare [--taprouterd PATH] [--duration 5s] [--reps 3] [--pings 50] [--profiles DIR]
//
// With --profiles, each taprouterd's CPU profile (GET /debug/pprof/profile
// on its socket) during the first cross-node iperf3 run of each backend
// lands in DIR: go tool pprof bin/taprouterd DIR/vxlan-node1.pprof.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// settings are the measurement parameters.
type settings struct {
	duration time.Duration // per iperf3 run
	reps     int           // iperf3 runs per path; the median counts
	pings    int           // pings per path
	profiles string        // where to write the daemons' CPU profiles ("": none)
}

func main() {
	taprouterd := flag.String("taprouterd", "bin/taprouterd", "taprouterd binary")
	var s settings
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "length of each iperf3 run")
	flag.IntVar(&s.reps, "reps", 3, "iperf3 runs per path (the median is reported)")
	flag.IntVar(&s.pings, "pings", 50, "pings per path (the average RTT is reported)")
	flag.StringVar(&s.profiles, "profiles", "", "write each taprouterd's CPU profile during the first cross-node run to DIR/<backend>-<node>.pprof")
	flag.Parse()
	if err := preflight(*taprouterd); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	bin, _ := filepath.Abs(*taprouterd)
	os.Exit(compare(bin, s))
}

func preflight(taprouterd string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root: it creates network namespaces")
	}
	if _, err := os.Stat(taprouterd); err != nil {
		return fmt.Errorf("taprouterd binary: %w (make build, or pass --taprouterd)", err)
	}
	for _, tool := range []string{"ip", "bridge", "ping", "iperf3", "ss", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (make deps installs it)", tool)
		}
	}
	return nil
}

// line is one row of the table: a taprouter measurement and, when there is
// one, the kernel reference for the same path.
type line struct {
	path, backend, reference string
	taprouter, kernel        measurement
}

func compare(taprouterd string, s settings) int {
	fmt.Printf("taprouter vs kernel on the demo topology: %d CPUs, iperf3 %d × %v (median), %d pings\n\n",
		runtime.NumCPU(), s.reps, s.duration, s.pings)

	kernelPTP := measureSetup("kernel ptp routes (kindnet)", s, func(c *testbed.Cluster) error { return c.WireKernelPTP() }, "", "", nil)
	kernelFlannel := measureSetup("kernel vxlan (flannel)", s, func(c *testbed.Cluster) error { return c.WireKernelFlannel() }, "", "", nil)
	var lines []line
	for _, backend := range testbed.Backends {
		var daemons map[string]*testbed.Daemon
		var profile func() func()
		if s.profiles != "" {
			if err := os.MkdirAll(s.profiles, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "compare:", err)
				return 2
			}
			seconds := max(1, int(s.duration.Seconds())-1)
			profile = func() func() { return cpuProfiles(daemons, seconds, s.profiles, backend) }
		}
		tr := measureSetup("taprouter "+backend, s, func(c *testbed.Cluster) error {
			var err error
			daemons, err = c.StartTaprouter(backend)
			return err
		}, taprouterd, backend, profile)
		cross := line{path: "cross-node", backend: backend, taprouter: tr["cross-node"]}
		switch backend {
		case "vxlan":
			cross.reference, cross.kernel = "kernel vxlan (flannel)", kernelFlannel["cross-node"]
		case "direct":
			cross.reference, cross.kernel = "kernel routes (kindnet ptp)", kernelPTP["cross-node"]
		}
		same := line{path: "same-node", backend: backend, taprouter: tr["same-node"],
			reference: "kernel veth routes (kindnet ptp)", kernel: kernelPTP["same-node"]}
		lines = append(lines, cross, same)
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tBACKEND\tKERNEL REFERENCE\tTAPROUTER TCP\tKERNEL TCP\tRATIO\tTAPROUTER RTT\tKERNEL RTT\tRATIO")
	failed := false
	for _, l := range lines {
		failed = failed || l.taprouter.err != nil || l.kernel.err != nil
		ref := l.reference
		if ref == "" {
			ref = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.path, l.backend, ref,
			l.taprouter.throughput(), l.kernel.throughput(), ratio(l.taprouter.bitsPerSecond, l.kernel.bitsPerSecond),
			l.taprouter.latency(), l.kernel.latency(), ratio(l.taprouter.rtt.Seconds(), l.kernel.rtt.Seconds()))
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tBACKEND\tKERNEL REFERENCE\tTAPROUTER TCP -P 4\tKERNEL TCP -P 4\tRATIO")
	for _, l := range lines {
		if l.path != "cross-node" {
			continue
		}
		ref := l.reference
		if ref == "" {
			ref = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.path, l.backend, ref,
			l.taprouter.throughput4(), l.kernel.throughput4(), ratio(l.taprouter.streams4, l.kernel.streams4))
	}
	tw.Flush()
	fmt.Println("\nRATIO is taprouter/kernel: above 1 means more throughput, or a longer RTT, than the kernel.")
	if failed {
		for _, l := range lines {
			for _, m := range []measurement{l.taprouter, l.kernel} {
				if m.err != nil {
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", l.path, l.backend, m.err)
				}
			}
		}
		return 1
	}
	return 0
}

func ratio(taprouter, kernel float64) string {
	if taprouter == 0 || kernel == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", taprouter/kernel)
}

// indent prefixes every line of s.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
