//go:build !race

package allocs

// RaceEnabled reports whether the binary was built with -race.
const RaceEnabled = false
