package afpacket_test

import (
	"testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// TestSuperFrameSoftwareGSO: with segmentation offload off on A's veth
// (tso and gso off: a NIC without TSO), the super-frame A's socket writes
// for a run of 20 segments is cut by A's kernel (software GSO) and B
// receives 20 plain frames, none a super-frame, byte for byte the
// segments that went in (IDs, checksums, PSH only on the last).
// The segments' IDs count up, as the kernel numbers them.
func TestSuperFrameSoftwareGSO(t *testing.T) {
	w := newWire(t) // MTU 1400
	w.a.MustExec("ethtool", "-K", "va", "tso", "off", "gso", "off")
	const count = 20
	crossRun(t, w, count)
	// The veth still offers checksum offload, so the kernel leaves each
	// segment's TCP checksum partial, and B completes it.
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{Checksums: count}) {
		t.Errorf("B's OffloadStats = %+v, want no super-frame, %d partial checksums completed", st, count)
	}
}

// TestSuperFrameNoAllocs: writing a run of 32 segments as one super-frame
// and cutting it on the other side allocates nothing per frame.
func TestSuperFrameNoAllocs(t *testing.T) {
	w := newWire(t) // MTU 1400
	out := make([][]byte, 32)
	for i := range out {
		out[i] = tcpSegment(w.sb.HWAddr(), w.sa.HWAddr(), i, 1360, i == len(out)-1)
	}
	bufs, sizes := devtest.MakeBatch(64, 2048)
	round := func() { devtest.Exchange(t, w.sa, w.sb, out, bufs, sizes, 0) }
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+Read of runs of %d segments: %g allocations per frame, want 0", len(out), allocs)
	}
	if st := w.sa.OffloadStats(); st.Coalesced == 0 || st.CoalescedFrames != st.Coalesced*uint64(len(out)) {
		t.Errorf("A's OffloadStats = %+v: want every batch written as one super-frame of %d", st, len(out))
	}
	if st := w.sb.OffloadStats(); st.SuperFrames != w.sa.OffloadStats().Coalesced || st.Dropped != 0 {
		t.Errorf("B's OffloadStats = %+v: want every super-frame A wrote cut, none dropped", st)
	}
}
