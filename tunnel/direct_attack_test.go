package tunnel

import (
	"testing"
	"time"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// TestAttackDirectUnsolicitedReplyAfterGC: peer B was resolved, then the
// node sent it nothing for a while (30s Reachable + 60s Stale): the underlay
// ARP entry is collected. An impostor on the underlay then sends one
// unsolicited ARP reply claiming B's address. Nothing asked for it (no
// entry, no request outstanding), yet Learn creates a Reachable entry at
// the impostor's MAC, and the next packet for B goes to the impostor. The
// impostor keeps it: B's later ARP is a "conflict" that re-probes the
// impostor's MAC, which the impostor answers.
//
// Linux (arp_accept=0, the default) creates no neighbour from an
// unsolicited reply: the next packet for B starts a broadcast resolution.
func TestAttackDirectUnsolicitedReplyAfterGC(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	dev := linktest.NewDevice("underlay", 1500, 16)
	d := newDirectA(t, dev, clk)
	defer d.Close()
	learnPeer(t, d, dev)
	for range 1000 { // 100 s idle
		clk.advance(100 * time.Millisecond)
		d.Tick()
	}
	if n := d.Neighbours(); len(n) != 0 {
		t.Fatalf("after 100 s idle the underlay table still has %+v (test premise)", n)
	}
	expectNoFrame(t, dev)

	// The impostor's unsolicited reply: nobody asked.
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, strangerMAC, nodeB, nodeA))

	toB := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	d.Send([][]byte{withHeadroom(toB)}, []uint32{0}, testOffset)
	select {
	case got := <-dev.Out:
		if link.HardwareAddr(got[0:6]) == strangerMAC {
			t.Fatalf("packet for peer B sent to the impostor %v after one unsolicited ARP reply; neighbours %+v", strangerMAC, d.Neighbours())
		}
	case <-time.After(time.Second):
		t.Fatal("Send wrote nothing (neither the packet nor an ARP request)")
	}
}
