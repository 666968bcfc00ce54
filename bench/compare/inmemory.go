package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// inMemoryBenchmark is the bench package's benchmark of two routers in one
// process, 64-byte packets from pod A on node1 over vxlan to pod C on
// node2 across an in-memory underlay (bench/forward_test.go).
const inMemoryBenchmark = "BenchmarkCrossNodeVXLAN64"

// The project's limits for it (issue 11): packets per second through the
// two routers on one core, and allocations per packet.
const (
	inMemoryMinMpps   = 5
	inMemoryMaxAllocs = 0
)

// inMemoryStats are the runs of inMemoryBenchmark: each run's Mpps,
// cpu-ns/pkt and allocs/pkt (the process's allocations per packet as a
// fraction: allocs/op rounds down to whole ones).
type inMemoryStats struct {
	runs []benchRun
	err  error
}

type benchRun struct{ mpps, cpuNs, allocs float64 }

// measureInMemory runs the compiled bench package (go test -c) with
// GOMAXPROCS 1: count runs of packets packets each.
func measureInMemory(benchTest string, count, packets int) inMemoryStats {
	fmt.Printf("== in memory: %s, one core, %d × %d packets\n", inMemoryBenchmark, count, packets)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, benchTest, "-test.run", "^$", "-test.bench", "^"+inMemoryBenchmark+"$",
		"-test.cpu", "1", "-test.count", strconv.Itoa(count), "-test.benchtime", fmt.Sprintf("%dx", packets))
	// Killed with compare, which a signal may end before any bed exists.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: not done after 5 minutes (--bench-runs %d, --bench-packets %d)", err, count, packets)
		}
		return inMemoryStats{err: fmt.Errorf("in memory: %s: %v\n%s", benchTest, err, indent(out.String()))}
	}
	fmt.Print(indent(out.String()), "\n")
	runs, err := parseBenchRuns(out.String(), inMemoryBenchmark)
	if err == nil && len(runs) != count {
		err = fmt.Errorf("%d runs of %s in the output, want %d", len(runs), inMemoryBenchmark, count)
	}
	if err != nil {
		return inMemoryStats{err: fmt.Errorf("in memory: %w\n%s", err, indent(out.String()))}
	}
	return inMemoryStats{runs: runs}
}

// parseBenchRuns reads the result lines of benchmark name (without a
// -GOMAXPROCS suffix, as -test.cpu 1 prints it) from go test output: each
// needs Mpps, cpu-ns/pkt and allocs/pkt.
func parseBenchRuns(out, name string) ([]benchRun, error) {
	var runs []benchRun
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != name {
			continue
		}
		metrics := map[string]float64{}
		// name, iterations, then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %q is not a number", line, f[i])
			}
			metrics[f[i+1]] = v
		}
		var r benchRun
		for _, m := range []struct {
			unit string
			dst  *float64
		}{{"Mpps", &r.mpps}, {"cpu-ns/pkt", &r.cpuNs}, {"allocs/pkt", &r.allocs}} {
			v, ok := metrics[m.unit]
			if !ok {
				return nil, fmt.Errorf("%q: no %s", line, m.unit)
			}
			*m.dst = v
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no result line of %s", name)
	}
	return runs, nil
}

// medianOf returns the median of what value gives for each run.
func medianOf(runs []benchRun, value func(benchRun) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = value(r)
	}
	return median(v)
}

// median returns the middle value of v (not empty), the lower middle one
// of an even count, as every median in the table is taken; it sorts v.
func median(v []float64) float64 {
	slices.Sort(v)
	return v[(len(v)-1)/2]
}

// inMemoryRows are the packet rate (median run) and the allocations per
// packet (the largest of any run).
func inMemoryRows(st inMemoryStats, runs, packets int) []Row {
	ok := st.err == nil && len(st.runs) > 0
	var mpps, cpuNs, allocs float64
	if ok {
		mpps = medianOf(st.runs, func(r benchRun) float64 { return r.mpps })
		cpuNs = medianOf(st.runs, func(r benchRun) float64 { return r.cpuNs })
		for _, r := range st.runs {
			allocs = max(allocs, r.allocs)
		}
	}
	note := fmt.Sprintf("%s at GOMAXPROCS 1, median of %d runs of %d packets", inMemoryBenchmark, runs, packets)
	if ok {
		note += fmt.Sprintf("; %.0f CPU ns per packet", cpuNs)
	} else {
		note = "failed (stderr says why); " + note
	}
	rate := newRow("in memory, one core: pod → vxlan → pod through two routers, 64 B", "Mpps", "higher", 2, mpps, ok, 0, false, 0)
	rateLimit := float64(inMemoryMinMpps)
	rate.Limit, rate.Note = &rateLimit, note
	alloc := newRow("in memory: allocations per packet (the same runs)", "allocs/packet", "lower", 6, allocs, ok, 0, false, 0)
	allocLimit := float64(inMemoryMaxAllocs)
	alloc.Limit, alloc.Note = &allocLimit, "the largest allocs/pkt of any run: every allocation of the process during the run, per packet"
	if !ok {
		alloc.Note = "failed (stderr says why); " + alloc.Note
	}
	return []Row{rate, alloc}
}
