// Command taprouter-demo builds a two-node cluster in network namespaces,
// runs taprouterd on both nodes with each backend in turn, and shows that
// pods reach each other: one line per property it proved (ARP, TTL, no SNAT)
// and a table of ping RTT, TTL and TCP throughput per backend and path. It
// tears everything down and exits non-zero if any path failed.
//
// Usage (as root; "make demo" builds and runs it):
//
//	taprouter-demo [--taprouterd PATH] [--backends vxlan,udp,direct] [--duration 3s] [--show-config]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

func main() {
	os.Exit(run())
}

func run() int {
	self, _ := os.Executable()
	taprouterd := flag.String("taprouterd", filepath.Join(filepath.Dir(self), "taprouterd"), "taprouterd binary")
	backends := flag.String("backends", strings.Join(testbed.Backends, ","), "comma-separated backends to demonstrate")
	duration := flag.Duration("duration", 3*time.Second, "length of each iperf3 TCP test")
	showConfig := flag.Bool("show-config", false, "print each node's rendered taprouterd configuration")
	flag.Parse()

	if err := preflight(*taprouterd); err != nil {
		fmt.Fprintln(os.Stderr, "taprouter-demo:", err)
		return 2
	}

	fmt.Println("taprouter demo: a two-node cluster in network namespaces on a bridged underlay 192.168.49.0/24 (MTU 1500)")
	for _, n := range testbed.Seed() {
		var pods []string
		for _, p := range n.Pods {
			pods = append(pods, fmt.Sprintf("%s %s", p.Name, p.IP))
		}
		fmt.Printf("  %s %s, podCIDR %s, gateway %s, pods: %s\n", n.Name, n.Addr, n.PodCIDR, n.Gateway, strings.Join(pods, ", "))
	}
	fmt.Println()

	// Before the first bed: a signal from here on removes every bed.
	defer testbed.CloseOnSignal()()
	var rows []row
	proved := true
	for _, backend := range strings.Split(*backends, ",") {
		r, ok := demoBackend(*taprouterd, backend, *duration, *showConfig)
		rows = append(rows, r...)
		proved = proved && ok
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tPATH\tPING RTT AVG\tTTL SEEN\tTCP THROUGHPUT\tRESULT")
	failed := !proved
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.backend, r.path, r.rtt, r.ttl, r.throughput, r.result)
		failed = failed || r.result != "ok"
	}
	tw.Flush()
	if failed {
		fmt.Println("\nFAIL: at least one path or check failed")
		return 1
	}
	fmt.Println("\nPASS: every path and check passed")
	return 0
}

// preflight checks what the demo needs before it creates anything.
func preflight(taprouterd string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root: it creates network namespaces and TAP devices (try: sudo make demo)")
	}
	if _, err := os.Stat(taprouterd); err != nil {
		return fmt.Errorf("taprouterd binary: %w (build it with make build, or pass --taprouterd)", err)
	}
	for _, tool := range []string{"ip", "ping", "iperf3", "tcpdump", "ss", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s (make deps installs it)", tool)
		}
	}
	return nil
}
