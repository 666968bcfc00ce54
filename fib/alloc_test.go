package fib

import (
	"testing"

	"github.com/taprouter/taprouter/internal/allocs"
)

// allocsPerOp runs f once to warm up, then runs times, and returns the
// allocations per run as a fraction: testing.AllocsPerRun truncates to an
// integer, so a call that allocates in 99 runs of 100 would pass as 0.
func allocsPerOp(tb testing.TB, runs int, f func()) float64 {
	tb.Helper()
	allocs.SkipUnderRace(tb)
	return allocs.PerOp(runs, 1, f)
}
