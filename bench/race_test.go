//go:build race

package bench

// raceEnabled: the race detector changes what allocates, so the allocation
// test skips under it (make test runs it again without -race).
const raceEnabled = true
