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
//
// The count is the whole process's, and the runtime allocates on its own
// now and then (an M for a goroutine whose system call outlasted sysmon's
// patience: under load, one allocation in 6,400 packets in 1 of 12 runs of
// link/udp's TestNoAllocs, before and after its descriptors changed): so
// PerOp measures up to three times and returns the least. A path that
// allocates per operation, or once per run, allocates in every measurement.
func PerOp(runs, ops int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	least := -1.0
	for range 3 {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		before := m.Mallocs
		for range runs {
			f()
		}
		runtime.ReadMemStats(&m)
		per := float64(m.Mallocs-before) / float64(runs*ops)
		if least < 0 || per < least {
			least = per
		}
		if least == 0 {
			break
		}
	}
	return least
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
