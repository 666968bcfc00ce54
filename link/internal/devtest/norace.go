//go:build !race

package devtest

// RaceEnabled reports whether the race detector is on: it changes what
// allocates (sync.Pool drops items at random, for one), so allocation
// tests skip under it.
const RaceEnabled = false
