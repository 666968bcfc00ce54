package tunnel

import (
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link/linktest"
)

// TestSendStaleGeneration: once a peer's slot holds a newer generation
// (the peer removed, another one added in its slot), a packet still named
// by the old ID is dropped and counted, never sent to the slot's new peer;
// the new ID reaches the new peer, and an address change under one ID
// sends to the new address.
func TestSendStaleGeneration(t *testing.T) {
	conn := linktest.NewConn(addrPort(nodeA, DefaultUDPPort), 8)
	u, _ := NewUDP(conn, UDPConfig{})
	defer u.Close()
	oldID, newID := uint32(1)<<PeerSlotBits|3, uint32(2)<<PeerSlotBits|3
	u.SetPeers([]Peer{{ID: oldID, Node: "b", Addr: nodeB}})
	u.SetPeers([]Peer{{ID: newID, Node: "c", Addr: nodeC}})
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{oldID}, testOffset); n != 0 {
		t.Fatalf("Send with the removed peer's ID sent %d packets", n)
	}
	wantStats(t, u.Stats(), Stats{DropUnknownPeer: 1})
	if len(conn.Out) != 0 {
		t.Fatalf("%d datagrams on the underlay after a Send for a removed peer, want 0", len(conn.Out))
	}
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{newID}, testOffset); n != 1 {
		t.Fatalf("Send to the slot's new peer sent %d, want 1", n)
	}
	if d := <-conn.Out; d.Addr != addrPort(nodeC, DefaultUDPPort) {
		t.Errorf("sent to %v, want node C %v", d.Addr, addrPort(nodeC, DefaultUDPPort))
	}
	u.SetPeers([]Peer{{ID: newID, Node: "c", Addr: nodeB}})
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{newID}, testOffset); n != 1 {
		t.Fatalf("Send after the address change sent %d, want 1", n)
	}
	if d := <-conn.Out; d.Addr != addrPort(nodeB, DefaultUDPPort) {
		t.Errorf("after the address change sent to %v, want %v", d.Addr, addrPort(nodeB, DefaultUDPPort))
	}
}

// TestDirectSendStaleGeneration: the direct backend likewise drops a packet
// whose ID's generation is gone: no frame, nothing queued for ARP.
func TestDirectSendStaleGeneration(t *testing.T) {
	dev := linktest.NewDevice("eth0", 1500, 16)
	d := newDirectA(t, dev, &fakeClock{}) // B is ID 0
	d.SetPeers([]Peer{{ID: 1 << PeerSlotBits, Node: "c", Addr: nodeC, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}}})
	expectFrame(t, dev, arpRequestFromA(nodeC))
	before := d.Stats()
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, _ := d.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 0 {
		t.Fatalf("Send with the removed peer's ID sent %d", n)
	}
	after := d.Stats()
	if after.DropUnknownPeer-before.DropUnknownPeer != 1 || after.ARPRequests != before.ARPRequests {
		t.Errorf("drop_unknown_peer moved by %d (want 1), arp_requests by %d (want 0)", after.DropUnknownPeer-before.DropUnknownPeer, after.ARPRequests-before.ARPRequests)
	}
	if len(dev.Out) != 0 {
		t.Errorf("%d frames written, want 0", len(dev.Out))
	}
}
