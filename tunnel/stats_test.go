package tunnel

import (
	"testing"

	"github.com/taprouter/taprouter/link/linktest"
)

// droppingConn and droppingDevice are fakes whose transport dropped some
// oversize datagrams or frames.
type droppingConn struct {
	*linktest.Conn
	dropped uint64
}

func (c *droppingConn) Dropped() uint64 { return c.dropped }

type droppingDevice struct {
	*linktest.Device
	dropped uint64
}

func (d *droppingDevice) Dropped() uint64 { return d.dropped }

// TestStatsDropOversize: every backend reports its transport's oversize
// drops as drop_oversize, next to its own counters.
func TestStatsDropOversize(t *testing.T) {
	conn := &droppingConn{Conn: linktest.NewConn(addrPort(nodeA, DefaultVXLANPort), 4)}
	vx, err := NewVXLAN(conn, VXLANConfig{LocalMAC: macA})
	if err != nil {
		t.Fatal(err)
	}
	defer vx.Close()
	vx.SetPeers(indexed(Peer{Addr: nodeB}))
	conn.dropped = 3
	// A datagram from a stranger: the backend's own counters still count.
	recvOne(t, vx, conn.Conn, addrPort(nodeC, DefaultVXLANPort), []byte{1, 2, 3})
	wantStats(t, vx.Stats(), Stats{DropOversize: 3, DropUnknownPeer: 1})
	if got := vx.Stats().Map()["drop_oversize"]; got != 3 {
		t.Errorf(`vxlan Stats().Map()["drop_oversize"] = %d, want 3`, got)
	}

	uconn := &droppingConn{Conn: linktest.NewConn(addrPort(nodeA, DefaultUDPPort), 4), dropped: 5}
	u, err := NewUDP(uconn, UDPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	wantStats(t, u.Stats(), Stats{DropOversize: 5})

	dev := &droppingDevice{Device: linktest.NewDevice("underlay", 1500, 4), dropped: 7}
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: &fakeClock{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	wantStats(t, d.Stats(), Stats{DropOversize: 7})
	dev.dropped = 9
	if got := d.Stats().DropOversize; got != 9 {
		t.Errorf("direct DropOversize = %d after the device counted 9, want 9 (read live)", got)
	}
}

// TestStatsDropOversizeWithoutCounter: a transport that does not count
// oversize drops reports zero.
func TestStatsDropOversizeWithoutCounter(t *testing.T) {
	if got := transportDrops(linktest.NewConn(addrPort(nodeA, 1), 1)); got != 0 {
		t.Errorf("transportDrops of a conn without Dropped = %d, want 0", got)
	}
}
