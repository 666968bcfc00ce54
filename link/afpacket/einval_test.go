package afpacket_test

import (
	"testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// TestTunnelSuperFramesDropped: a host on the underlay sends super-frames
// the socket cannot cut, TCP segments inside VXLAN (A's socket on a vxlan
// device writes merged runs, which the vxlan device encapsulates and the
// veth passes on whole, SKB_GSO_UDP_TUNNEL). B's socket drops and counts
// every one of them (the kernel describes them as GSO_TCPV4, or, on a
// kernel that cannot, refuses them with EINVAL) and its Read neither fails
// nor hands one out: no IPv4 frame comes before the marker frame sent
// after them. More than a batch of them arrives before the marker, so a
// Read that turned a batch of EINVALs into an error would fail here.
func TestTunnelSuperFramesDropped(t *testing.T) {
	w := newWire(t)
	w.a.IP("addr", "add", "192.168.77.1/24", "dev", "va")
	w.a.IP("link", "add", "vx0", "type", "vxlan", "id", "42", "remote", "10.99.0.5", "dstport", "4789", "dev", "va")
	w.a.IP("link", "set", "vx0", "up")
	w.a.IP("route", "add", "10.99.0.5/32", "dev", "va")
	w.a.IP("neigh", "add", "10.99.0.5", "lladdr", w.sb.HWAddr().String(), "dev", "va", "nud", "permanent")
	w.a.WaitActive("vx0")
	vx := open(t, w.a, "vx0")
	inner := link.HardwareAddr{2, 0, 0, 0, 0, 9}
	const superFrames = 70 // more than B's batch of 64
	for r := range superFrames {
		run := [][]byte{tcpSegment(inner, vx.HWAddr(), 2*r, 1000, false), tcpSegment(inner, vx.HWAddr(), 2*r+1, 1000, true)}
		if n, err := vx.Write(run, 0); n != 2 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if st := vx.OffloadStats(); st.Coalesced != superFrames {
		t.Fatalf("vx0 wrote %d super-frames, want %d (stats %+v)", st.Coalesced, superFrames, st)
	}
	if n, err := w.sa.Write([][]byte{marker(w.sb.HWAddr(), w.sa.HWAddr(), "after", 60)}, 0); n != 1 || err != nil {
		t.Fatalf("marker Write = %d, %v", n, err)
	}
	bufs, sizes := devtest.MakeBatch(64, 2048)
	for done := false; !done; {
		n, err := w.sb.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatalf("Read after %d refused super-frames: %v (stats %+v)", superFrames, err, w.sb.OffloadStats())
		}
		for i := range n {
			switch f := bufs[i][:sizes[i]]; etherType(f) {
			case 0x0800:
				t.Fatalf("Read handed out an IPv4 frame of %d bytes (a super-frame's piece?) before the marker", len(f))
			case markerType:
				done = true
			}
		}
	}
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{Dropped: superFrames}) {
		t.Errorf("B's OffloadStats = %+v, want %d dropped", st, superFrames)
	}
}
