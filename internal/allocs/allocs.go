// Package allocs measures heap allocations per operation as a fraction, for
// the tests that hold the hot paths at zero allocations.
//
// testing.AllocsPerRun returns the integer part of the allocations per run,
// so it reports 0 for a path that allocates in 99 runs of 100; PerOp does
// not round. The count is the whole process's (runtime.MemStats.Mallocs),
// as AllocsPerRun's is.
package allocs

import (
	"runtime"
	"testing"
)

// PerOp runs f once to warm up and then runs times, f doing ops operations
// (packets, calls) per run, and returns the heap allocations per operation.
// Like testing.AllocsPerRun it sets GOMAXPROCS to 1 while it measures.
func PerOp(runs, ops int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.Mallocs
	for range runs {
		f()
	}
	runtime.ReadMemStats(&m)
	return float64(m.Mallocs-before) / float64(runs*ops)
}

// SkipUnderRace skips tb when the race detector is on: it makes sync.Pool
// drop items at random and the runtime allocate on its own, so counts are
// not meaningful there (make test runs the allocation tests again without
// -race).
func SkipUnderRace(tb testing.TB) {
	tb.Helper()
	if RaceEnabled {
		tb.Skip("allocation counts are not meaningful under the race detector")
	}
}
