package fib

import (
	"runtime"
	"testing"
)

// allocsPerOp runs f once to warm up, then runs times, and returns the
// allocations per run as a fraction: testing.AllocsPerRun truncates to an
// integer, so a call that allocates in 99 runs of 100 would pass as 0.
func allocsPerOp(tb testing.TB, runs int, f func()) float64 {
	tb.Helper()
	if raceEnabled {
		tb.Skip("allocation counts are not meaningful under the race detector")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.Mallocs
	for range runs {
		f()
	}
	runtime.ReadMemStats(&m)
	return float64(m.Mallocs-before) / float64(runs)
}

var allocSink *[16]byte

// allocsPerOp sees what testing.AllocsPerRun rounds away: a function that
// allocates in 99 runs of 100 is 0.99, not 0.
func TestAllocsPerOpIsAFraction(t *testing.T) {
	i := 0
	f := func() {
		if i++; i%100 != 0 {
			allocSink = new([16]byte)
		}
	}
	if got := allocsPerOp(t, 100, f); got != 0.99 {
		t.Fatalf("allocsPerOp = %g, want 0.99", got)
	}
}
