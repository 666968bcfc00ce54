package allocs

import "testing"

var sink *[16]byte

// PerOp sees what testing.AllocsPerRun rounds away: a function that
// allocates in 99 runs of 100 is 0.99 per run, and 0.495 per operation at
// two operations a run.
func TestPerOpCountsAllocsAsAFraction(t *testing.T) {
	SkipUnderRace(t)
	i := 0
	f := func() {
		if i++; i%100 != 0 {
			sink = new([16]byte)
		}
	}
	if got := PerOp(100, 1, f); got != 0.99 {
		t.Errorf("PerOp(100, 1) = %g, want 0.99", got)
	}
	i = 0
	if got := PerOp(100, 2, f); got != 0.495 {
		t.Errorf("PerOp(100, 2) = %g, want 0.495", got)
	}
	if got := PerOp(100, 1, func() {}); got != 0 {
		t.Errorf("PerOp of a function that allocates nothing = %g, want 0", got)
	}
}

// One allocation in one measurement (the runtime's, say) is not the path's:
// PerOp returns the least of its measurements. One per run stays.
func TestPerOpAllocsLeastOfMeasurements(t *testing.T) {
	SkipUnderRace(t)
	calls := 0
	once := func() {
		if calls++; calls == 50 { // in the first measurement only
			sink = new([16]byte)
		}
	}
	if got := PerOp(100, 1, once); got != 0 {
		t.Errorf("PerOp of a function that allocated once = %g, want 0", got)
	}
	every := func() { sink = new([16]byte) }
	if got := PerOp(100, 4, every); got != 0.25 {
		t.Errorf("PerOp(100, 4) of a function that allocates every run = %g, want 0.25", got)
	}
}
