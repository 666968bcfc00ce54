package tunnel

import (
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/arp"
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

// A pod range that moves from one live peer to another: the router
// publishes the tunnel's new peer set before the FIB's new route, and a
// packet routed by the old route (it carries the old owner's ID, which is
// still live) must not be sent to the old owner, which no longer owns its
// destination. The tunnel drops it (drop_unknown_peer); the new owner's
// ID sends it. (found by attack review)
func TestSendDestinationNotOwned(t *testing.T) {
	moved := netip.MustParsePrefix("10.244.3.0/24")
	a1 := Peer{ID: 1<<PeerSlotBits | 0, Node: "b", Addr: nodeB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), moved}}
	c1 := Peer{ID: 1<<PeerSlotBits | 1, Node: "c", Addr: nodeC, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}}
	a2, c2 := a1, c1
	a2.PodCIDRs = a1.PodCIDRs[:1]
	c2.PodCIDRs = append([]netip.Prefix{}, c1.PodCIDRs[0], moved)
	inner := ipv4Packet("10.244.0.4", "10.244.3.5", 8, 0xee)

	conn := linktest.NewConn(addrPort(nodeA, DefaultUDPPort), 8)
	u, _ := NewUDP(conn, UDPConfig{})
	defer u.Close()
	u.SetPeers([]Peer{a1, c1})
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{a1.ID}, testOffset); n != 1 {
		t.Fatalf("udp: Send to the owner sent %d, want 1", n)
	}
	<-conn.Out
	u.SetPeers([]Peer{a2, c2})
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{a1.ID}, testOffset); n != 0 || len(conn.Out) != 0 {
		t.Fatalf("udp: Send by the old owner's ID after the move sent %d", n)
	}
	wantStats(t, u.Stats(), Stats{TxPackets: 1, TxBytes: u.Stats().TxBytes, DropUnknownPeer: 1})
	if n, _ := u.Send([][]byte{withHeadroom(inner)}, []uint32{c2.ID}, testOffset); n != 1 {
		t.Fatalf("udp: Send to the new owner sent %d, want 1", n)
	}
	if d := <-conn.Out; d.Addr != addrPort(nodeC, DefaultUDPPort) {
		t.Errorf("udp: sent to %v, want node C", d.Addr)
	}

	dev := linktest.NewDevice("eth0", 1500, 16)
	d := newDirectA(t, dev, &fakeClock{})
	d.SetPeers([]Peer{a2, c2})
	before := d.Stats()
	if n, _ := d.Send([][]byte{withHeadroom(inner)}, []uint32{a1.ID}, testOffset); n != 0 {
		t.Fatalf("direct: Send by the old owner's ID after the move sent %d", n)
	}
	if got := d.Stats().DropUnknownPeer - before.DropUnknownPeer; got != 1 {
		t.Errorf("direct: drop_unknown_peer moved by %d, want 1", got)
	}
}

// A packet queued for ARP resolution of a peer's address must not go out
// when another node has taken that address by the time it resolves (peer
// b removed, node c added at b's address in one SetPeers): the queued
// packet is for b's pods, which c does not own. (found by attack review)
func TestDirectPendingNotSentToAddressNewOwner(t *testing.T) {
	dev := linktest.NewDevice("eth0", 1500, 16)
	d := newDirectA(t, dev, &fakeClock{}) // b is ID 0, at nodeB, not resolved yet
	defer d.Close()
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)
	if n, _ := d.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 0 {
		t.Fatalf("Send before resolution sent %d, want 0 (queued)", n)
	}
	d.SetPeers([]Peer{{ID: 1 << PeerSlotBits, Node: "c", Addr: nodeB, PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.9.0/24")}}})
	for len(dev.Out) > 0 { // a new request for c, maybe
		<-dev.Out
	}
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA))
	expectNoFrame(t, dev)
}
