// Command compare measures taprouter against the Linux kernel on the demo
// topology (two nodes on a bridged veth underlay, pods pa and pb on node1, pc
// on node2), each taprouter backend beside the kernel setup it replaces:
// kindnet-style ptp routes (veth pairs, /32 routes, ip_forward) for direct
// and same-node, flannel-style kernel vxlan for vxlan; the udp backend has
// no kernel counterpart. It prints one table — TCP throughput with 1 and 4
// streams, ping RTT p50 and p99, UDP packets/s, taprouterd CPU per GB
// against the kernel's softirq time, taprouterd's memory with 110 ports and
// 5,000 peers — with the ratio taprouter/kernel and the machine it ran on,
// and writes the same rows as JSON and as an SVG bar chart of the ratios.
//
// Usage (as root; "make bench" runs it after the Go benchmarks): see
// compare --help.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

const usage = `NAME
    compare - taprouter beside the Linux kernel on the demo topology

SYNOPSIS
    compare [--taprouterd PATH] [--duration D] [--reps N] [--pings N]
            [--ping-interval D] [--udp-clients N] [--scale-ports N]
            [--scale-peers N] [--bench-test PATH] [--bench-runs N]
            [--bench-packets N] [--json PATH] [--svg PATH] [--profiles DIR]
    compare --summarize LABEL=FILE...

DESCRIPTION
    Builds the demo topology in network namespaces of its own (two nodes on
    a bridged veth underlay; pods pa and pb on node1, pc on node2) once per
    setup: the kernel's ptp routes (kindnet), the kernel's vxlan (flannel),
    and taprouterd with each backend (vxlan, udp, direct). In each it runs
    iperf3 and ping from pa to pb (same-node) and to pc (cross-node), then
    prints one table of every row, taprouter beside the kernel in the same
    run, with the ratio taprouter/kernel and the target the project set:

    cross-node TCP, 1 stream   iperf3 receiver Gbit/s, median of --reps runs
                               of --duration: vxlan vs kernel vxlan, direct
                               vs kernel routes, udp alone.
    same-node TCP, 1 stream    the same, pa → pb, under taprouterd vxlan vs
                               kernel veth routes.
    cross-node TCP -P 4        one run with 4 parallel streams.
    ping p50, p99              --pings echoes --ping-interval apart, the
                               per-reply times' percentiles (nearest rank).
    UDP 64 B packets/s         --udp-clients iperf3 clients at once, each
                               with its own server, -u -l 64 -b 0; datagrams
                               per second the servers received. The note
                               says when the receiver got all the senders
                               sent, i.e. the sender was the limit.
    CPU per GB                 CPU seconds per 1e9 bytes received during
                               the 1-stream cross-node runs: utime + stime
                               of both taprouterd processes, against the
                               softirq time of the whole machine (every
                               CPU, /proc/stat) during the kernel's run.
    taprouterd RSS             VmRSS of one taprouterd (vxlan) with
                               --scale-peers peers in its config and
                               --scale-ports pods attached through its API.
    in memory, one core        the bench package's BenchmarkCrossNodeVXLAN64
                               (two routers in one process, 64-byte packets
                               from pod A over vxlan to pod C across an
                               in-memory underlay) at GOMAXPROCS 1: the
                               median Mpps of --bench-runs runs, and the
                               most allocations per packet of any run (the
                               process's, as a fraction: allocs/pkt). It
                               runs first, before any namespace exists.

    With --summarize it measures nothing (and needs no root): it reads the
    --json files of earlier runs, each named with the label of the binary
    it measured (bench/ab.sh runs two binaries interleaved and calls it),
    and prints for every row and label the median of taprouter's value over
    that label's runs, its range, and each later label's change of median
    against the first label's. One run says little on a shared machine:
    the kernel's own rows move by tens of percent between runs.

    Nothing leaves the namespaces it creates; they are deleted at the end,
    also on SIGINT or SIGTERM. Needs root, ip, bridge, ping, iperf3, ss and
    ethtool (make deps installs them).

OPTIONS
    --taprouterd PATH    the daemon binary (default bin/taprouterd).
    --duration D         length of each iperf3 run (default 5s).
    --reps N             1-stream TCP runs per path; the median is reported
                         (default 3).
    --pings N            pings per path (default 200).
    --ping-interval D    time between pings (default 10ms).
    --udp-clients N      iperf3 UDP clients at once, each with its own server
                         and one stream (default 2; iperf3 3.12 runs a
                         client in one thread).
    --scale-ports N      pods attached for the memory row (default 110, at
                         most 240; 0 skips the row).
    --scale-peers N      peers in the config for the memory row (default
                         5000).
    --bench-test PATH    the bench package's test binary (default
                         bin/bench.test, which make bench builds; by hand:
                         go test -c -o bin/bench.test ./bench). Without
                         it compare exits 2; "" skips the in-memory rows.
    --bench-runs N       runs of the in-memory benchmark (default 5).
    --bench-packets N    packets per run (default 2000000).
    --json PATH          write the rows as JSON to PATH (default
                         bench/results.json; "" writes none).
    --svg PATH           write a bar chart of the ratios to PATH (default
                         bench/results.svg; "" writes none).
    --profiles DIR       write each taprouterd's CPU profile during its first
                         cross-node run to DIR/<backend>-<node>.pprof (read
                         with go tool pprof bin/taprouterd FILE); profiling
                         adds a little to the CPU-per-GB rows.
    --summarize          summarize the runs given as LABEL=FILE arguments
                         (FILE a --json output) instead of measuring.

EXIT STATUS
    0 every row measured; 1 a measurement failed (the table says which and
    stderr why); 2 usage, or not root, or a tool missing.
`

// settings are the measurement parameters.
type settings struct {
	duration     time.Duration // per iperf3 run
	reps         int           // 1-stream iperf3 runs per path; the median counts
	pings        int           // pings per path
	pingInterval time.Duration
	udpClients   int
	scalePorts   int
	scalePeers   int
	profiles     string // where to write the daemons' CPU profiles ("": none)
	benchTest    string // the bench package's test binary ("": no in-memory rows)
	benchRuns    int    // runs of the in-memory benchmark
	benchPackets int    // packets per run
}

func (s settings) String() string {
	text := fmt.Sprintf("iperf3 TCP: median of %d × %v; UDP: %d clients × %v, 64-byte datagrams, -b 0; ping: %d at %v; memory: %d ports, %d peers",
		s.reps, s.duration, s.udpClients, s.duration, s.pings, s.pingInterval, s.scalePorts, s.scalePeers)
	if s.benchTest != "" {
		text += fmt.Sprintf("; in memory: %d × %d packets", s.benchRuns, s.benchPackets)
	}
	return text
}

func main() {
	flag.Usage = func() { fmt.Fprint(flag.CommandLine.Output(), usage) }
	taprouterd := flag.String("taprouterd", "bin/taprouterd", "")
	var s settings
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "")
	flag.IntVar(&s.reps, "reps", 3, "")
	flag.IntVar(&s.pings, "pings", 200, "")
	flag.DurationVar(&s.pingInterval, "ping-interval", 10*time.Millisecond, "")
	flag.IntVar(&s.udpClients, "udp-clients", 2, "")
	flag.IntVar(&s.scalePorts, "scale-ports", 110, "")
	flag.IntVar(&s.scalePeers, "scale-peers", 5000, "")
	jsonPath := flag.String("json", "bench/results.json", "")
	svgPath := flag.String("svg", "bench/results.svg", "")
	flag.StringVar(&s.profiles, "profiles", "", "")
	flag.StringVar(&s.benchTest, "bench-test", "bin/bench.test", "")
	flag.IntVar(&s.benchRuns, "bench-runs", 5, "")
	flag.IntVar(&s.benchPackets, "bench-packets", 2000000, "")
	summarizeRuns := flag.Bool("summarize", false, "")
	flag.Parse()
	if *summarizeRuns {
		runs, err := readRuns(flag.Args())
		if err == nil {
			err = summarize(os.Stdout, runs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "compare --summarize:", err)
			os.Exit(2)
		}
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "compare: unexpected argument %q (see --help)\n", flag.Arg(0))
		os.Exit(2)
	}
	if s.duration < time.Second || s.reps < 1 || s.pings < 1 || s.pingInterval <= 0 || s.udpClients < 1 || s.scalePorts < 0 || s.scalePorts > 240 || s.scalePeers < 0 || s.benchRuns < 1 || s.benchPackets < 1 {
		fmt.Fprintln(os.Stderr, "compare: --duration must be at least 1s, --reps, --pings, --udp-clients, --bench-runs and --bench-packets at least 1, --ping-interval positive, --scale-ports 0 to 240 (see --help)")
		os.Exit(2)
	}
	if err := preflight(*taprouterd, s.benchTest); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	bin, _ := filepath.Abs(*taprouterd)
	os.Exit(compare(bin, s, *jsonPath, *svgPath))
}

func preflight(taprouterd, benchTest string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root: it creates network namespaces")
	}
	if _, err := os.Stat(taprouterd); err != nil {
		return fmt.Errorf("taprouterd binary: %w (make build, or pass --taprouterd)", err)
	}
	if benchTest != "" {
		if _, err := os.Stat(benchTest); err != nil {
			return fmt.Errorf("the bench package's test binary: %w (go test -c -o bin/bench.test ./bench, or pass --bench-test \"\")", err)
		}
	}
	for _, tool := range []string{"ip", "bridge", "ping", "iperf3", "ss", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (make deps installs it)", tool)
		}
	}
	return nil
}

// measurements are every setup's numbers.
type measurements struct {
	ptp, flannel       map[string]stats // the kernel references
	vxlan, udp, direct map[string]stats // taprouterd's backends
	scale              scaleStats
	inMemory           inMemoryStats // without --bench-test, not measured
}

func compare(taprouterd string, s settings, jsonPath, svgPath string) int {
	// Before the first bed: a signal from here on removes every bed (and
	// kills the in-memory benchmark, see measureInMemory).
	defer testbed.CloseOnSignal()()
	fmt.Printf("taprouter vs kernel on the demo topology: %s\n\n", s)
	if s.profiles != "" {
		if err := os.MkdirAll(s.profiles, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			return 2
		}
	}
	full := []plan{{path: "cross-node", ping: true, tcp4: true, udp: true}}
	kernel := func(wire func(*testbed.Cluster) error) wiring {
		return func(c *testbed.Cluster) (map[string]*testbed.Daemon, error) { return nil, wire(c) }
	}
	taprouter := func(backend string, plans []plan) map[string]stats {
		var profile func(map[string]*testbed.Daemon) func()
		if s.profiles != "" {
			seconds := max(1, int(s.duration.Seconds())-1)
			profile = func(d map[string]*testbed.Daemon) func() { return cpuProfiles(d, seconds, s.profiles, backend) }
		}
		return measureSetup("taprouter "+backend, s, func(c *testbed.Cluster) (map[string]*testbed.Daemon, error) {
			return c.StartTaprouter(backend)
		}, taprouterd, plans, profile)
	}
	var m measurements
	if s.benchTest != "" {
		// First, while nothing else of this run is on the machine.
		m.inMemory = measureInMemory(s.benchTest, s.benchRuns, s.benchPackets)
	}
	// Cross-node first in every setup, so that each cross-node ping runs
	// on a fresh setup, and each same-node one after the cross-node TCP
	// runs in both of its setups: taprouterd's ping tail is longer after
	// TCP (bench/profiles/README.md, "Latency experiments").
	withSame := append(slices.Clone(full), plan{path: "same-node", ping: true})
	m.ptp = measureSetup("kernel ptp routes (kindnet)", s, kernel(func(c *testbed.Cluster) error { return c.WireKernelPTP() }), "", withSame, nil)
	m.flannel = measureSetup("kernel vxlan (flannel)", s, kernel(func(c *testbed.Cluster) error { return c.WireKernelFlannel() }), "", full, nil)
	m.vxlan = taprouter("vxlan", withSame)
	m.udp = taprouter("udp", []plan{{path: "cross-node"}})
	m.direct = taprouter("direct", full)
	if s.scalePorts > 0 {
		m.scale = measureScale(taprouterd, s.scalePorts, s.scalePeers)
	}

	res := Results{Commit: gitCommit(), Machine: machine(), Settings: s.String(), Rows: buildRows(m, s)}
	fmt.Println()
	printTable(os.Stdout, res)
	status := 0
	for _, err := range m.errs() {
		fmt.Fprintln(os.Stderr, err)
		status = 1
	}
	if err := writeResults(res, jsonPath, svgPath); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		status = 1
	}
	return status
}

// errs returns every measurement's error.
func (m measurements) errs() []error {
	var errs []error
	for _, setup := range []map[string]stats{m.ptp, m.flannel, m.vxlan, m.udp, m.direct} {
		for _, path := range []string{"same-node", "cross-node"} {
			if st, ok := setup[path]; ok && st.err != nil {
				errs = append(errs, st.err)
			}
		}
	}
	for _, err := range []error{m.scale.err, m.inMemory.err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// writeResults writes the JSON and the SVG of res (each only if its path
// is not empty).
func writeResults(res Results, jsonPath, svgPath string) error {
	jsonDoc, svg, err := Render(res)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range []struct {
		path string
		data []byte
	}{{jsonPath, jsonDoc}, {svgPath, svg}} {
		if f.path == "" {
			continue
		}
		if err := os.WriteFile(f.path, f.data, 0o644); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Println("wrote", f.path)
	}
	return errors.Join(errs...)
}

// machine describes this machine.
func machine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Kernel: "unknown", Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// gitCommit is the working tree's commit, with "-dirty" when tracked files
// other than the results compare writes differ from it; "unknown" outside
// a git work tree. safe.directory lets
// root (sudo make bench) read a tree another user owns.
func gitCommit() string {
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-c", "safe.directory=*"}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	commit, err := git("rev-parse", "--short=12", "HEAD")
	if err != nil {
		return "unknown"
	}
	if st, err := git("status", "--porcelain", "--untracked-files=no", "--",
		":(top)", ":(top,exclude)bench/results.json", ":(top,exclude)bench/results.svg"); err == nil && st != "" {
		commit += "-dirty"
	}
	return commit
}

// indent prefixes every line of s.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
