package arp

import "runtime"

// allocsPerCall runs f once to warm up and then runs times, and returns the
// heap allocations per call as a fraction: testing.AllocsPerRun returns the
// integer part, and so reports 0 for a call that allocates in 99 runs of
// 100. Like AllocsPerRun it sets GOMAXPROCS to 1 while it measures.
func allocsPerCall(runs int, f func()) float64 {
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
