//go:build race

package router

// raceEnabled: the race detector makes sync.Pool (the tunnel's batches)
// drop items at random, so allocation counts through the tunnel are
// meaningless under it.
const raceEnabled = true
