package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

var (
	underlayMACA = link.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	underlayMACB = link.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	strangerMAC  = link.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
	podCIDRA     = netip.MustParsePrefix("10.244.0.0/24")
	podCIDRB     = netip.MustParsePrefix("10.244.1.0/24")
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newDirectA returns node A's direct backend on dev with node B as peer 0.
// It takes the ARP request for B that SetPeers writes off dev (Stats still
// count it).
func newDirectA(t *testing.T, dev *linktest.Device, clk arp.Clock) *Direct {
	t.Helper()
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d.SetPeers(indexed(Peer{Node: "b", Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}}))
	expectFrame(t, dev, arpRequestFromA(nodeB))
	return d
}

// arpRequestFromA is the broadcast ARP request node A's backend writes for
// target.
func arpRequestFromA(target netip.Addr) []byte {
	return arpFrame(arp.OpRequest, link.Broadcast, underlayMACA, nodeA, target)
}

// arpFrame returns an ARP frame as a kernel would send it.
func arpFrame(op uint16, dst link.HardwareAddr, senderMAC link.HardwareAddr, sender, target netip.Addr) []byte {
	f := make([]byte, arp.FrameLen)
	p := arp.Packet{Op: op, SenderMAC: senderMAC, SenderIP: sender, TargetIP: target}
	if op == arp.OpReply {
		p.TargetMAC = dst
	}
	arp.EncodeFrame(f, dst, senderMAC, &p)
	return f
}

// ipv4Frame returns inner packet pkt in an Ethernet frame from src to dst.
func ipv4Frame(dst, src link.HardwareAddr, pkt []byte) []byte {
	f := append(append(append([]byte(nil), dst[:]...), src[:]...), 0x08, 0x00)
	return append(f, pkt...)
}

// recvFrame feeds frame f to d and returns the inner packet (nil if none).
func recvFrame(t *testing.T, d *Direct, dev *linktest.Device, f []byte) ([]byte, uint32) {
	t.Helper()
	dev.In <- f
	bufs, sizes, starts, peers := recvBuffers(1)
	if n, err := d.Recv(bufs, sizes, starts, peers, testOffset); n != 1 || err != nil {
		t.Fatalf("Recv = %d, %v; want 1, nil", n, err)
	}
	if sizes[0] == 0 {
		return nil, 0
	}
	return bufs[0][starts[0] : starts[0]+sizes[0]], peers[0]
}

func expectFrame(t *testing.T, dev *linktest.Device, want []byte) {
	t.Helper()
	select {
	case got := <-dev.Out:
		if !bytes.Equal(got, want) {
			t.Fatalf("frame written\n got %x\nwant %x", got, want)
		}
	case <-time.After(time.Second):
		t.Fatalf("no frame written, want %x", want)
	}
}

func expectNoFrame(t *testing.T, dev *linktest.Device) {
	t.Helper()
	select {
	case got := <-dev.Out:
		t.Fatalf("unexpected frame written: %x", got)
	default:
	}
}

// TestDirectARPResolution: a packet for an unresolved peer waits for the
// peer's ARP reply, then leaves addressed to the learned MAC; later packets
// go out at once. (SetPeers already asked for the peer, through the table:
// Send adds no request.)
func TestDirectARPResolution(t *testing.T) {
	wantRequest := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x06, // broadcast, from A's MAC, ARP
		0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
		0x02, 0, 0, 0, 0, 0xa, 192, 0, 2, 1, // sender: A's MAC and address
		0, 0, 0, 0, 0, 0, 192, 0, 2, 2, // target: B's address
	}
	if got := arpRequestFromA(nodeB); !bytes.Equal(got, append(wantRequest, make([]byte, arp.FrameLen-len(wantRequest))...)) {
		t.Fatalf("arpRequestFromA(B) = %x, want %x", got, wantRequest)
	}
	dev := linktest.NewDevice("underlay", 1500, 16)
	d := newDirectA(t, dev, &fakeClock{now: time.Unix(1e9, 0)}) // takes the request
	defer d.Close()
	inner := ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee)

	if n, err := d.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 0 || err != nil {
		t.Fatalf("Send before resolution = %d, %v; want 0 (queued), nil", n, err)
	}
	expectNoFrame(t, dev)

	if got, _ := recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA)); got != nil {
		t.Fatalf("an ARP reply was delivered as a packet: %x", got)
	}
	expectFrame(t, dev, ipv4Frame(underlayMACB, underlayMACA, inner))

	if n, err := d.Send([][]byte{withHeadroom(inner)}, []uint32{0}, testOffset); n != 1 || err != nil {
		t.Fatalf("Send after resolution = %d, %v; want 1, nil", n, err)
	}
	expectFrame(t, dev, ipv4Frame(underlayMACB, underlayMACA, inner))
	// The queued packet is in tx_resolved (Send returned 0 for it), the
	// second one is not.
	wantStats(t, d.Stats(), Stats{TxPackets: 2, TxResolved: 1, TxBytes: 2 * uint64(len(inner)), ARPRequests: 1, ARPLearned: 1})

	n := d.Neighbours()
	if len(n) != 1 || n[0].IP != nodeB || n[0].MAC != underlayMACB || n[0].State != arp.Reachable {
		t.Fatalf("Neighbours() = %+v, want B at %v, REACHABLE", n, underlayMACB)
	}
}

// TestDirectARPFailure: nobody answers; after the retransmissions of the
// request SetPeers sent the queued packet is dropped and counted.
func TestDirectARPFailure(t *testing.T) {
	dev := linktest.NewDevice("underlay", 1500, 16)
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	d := newDirectA(t, dev, clk)
	defer d.Close()
	d.Send([][]byte{withHeadroom(ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0xee))}, []uint32{0}, testOffset)
	for range 4 {
		clk.advance(time.Second)
		d.Tick()
	}
	requests := 0
	for len(dev.Out) > 0 {
		if f := <-dev.Out; binary.BigEndian.Uint16(f[12:14]) != ethTypeARP {
			t.Fatalf("non-ARP frame written while unresolved: %x", f)
		}
		requests++
	}
	if requests != 2 {
		t.Errorf("%d ARP requests written after Send, want 2 (arp.DefaultConfig MaxMulticastProbes, 3, less SetPeers')", requests)
	}
	wantStats(t, d.Stats(), Stats{ARPRequests: 3, DropNoNeighbour: 1, ARPFailures: 1})
}

// learnPeer makes d learn node B at underlayMACB from a reply, as its kernel
// would send one.
func learnPeer(t *testing.T, d *Direct, dev *linktest.Device) {
	t.Helper()
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA))
}

func TestDirectRecvChecks(t *testing.T) {
	inner := ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee)
	valid := ipv4Frame(underlayMACA, underlayMACB, inner)
	edit := func(f func(fr []byte)) []byte { fr := append([]byte(nil), valid...); f(fr); return fr }
	ok := Stats{RxPackets: 1, RxBytes: uint64(len(inner))}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Stats
	}{
		{"valid", valid, ok},
		{"padding trimmed", append(append([]byte(nil), valid...), 0, 0, 0, 0), ok},
		{"to another host", ipv4Frame(strangerMAC, underlayMACB, inner), Stats{Ignored: 1}},
		{"broadcast", ipv4Frame(link.Broadcast, underlayMACB, inner), Stats{Ignored: 1}},
		{"to the node itself", ipv4Frame(underlayMACA, underlayMACB, ipv4Packet("192.0.2.2", "192.0.2.1", 8, 0)), Stats{Ignored: 1}},
		{"IPv6", edit(func(fr []byte) { fr[12], fr[13] = 0x86, 0xdd }), Stats{Ignored: 1}},
		{"ARP from a non-peer", arpFrame(arp.OpRequest, link.Broadcast, strangerMAC, netip.MustParseAddr("192.0.2.99"), nodeA), Stats{Ignored: 1}},
		{"ARP from a peer", arpFrame(arp.OpRequest, link.Broadcast, underlayMACB, nodeB, nodeA), Stats{ARPLearned: 1}},
		// The kernel's host-gw route would take it too: the peer is
		// known by its pod range, not by the MAC (see Direct).
		{"from another MAC, from a peer's pod", ipv4Frame(underlayMACA, strangerMAC, inner), ok},
		{"from a non-peer MAC and source", ipv4Frame(underlayMACA, strangerMAC, ipv4Packet("10.9.9.9", "10.244.0.4", 8, 0xee)), Stats{DropUnknownPeer: 1}},
		{"IP version 6", edit(func(fr []byte) { fr[14] = 0x65 }), Stats{DropNotIPv4: 1}},
		{"IHL below 5", edit(func(fr []byte) { fr[14] = 0x44 }), Stats{DropMalformed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := linktest.NewDevice("underlay", 1500, 4)
			d := newDirectA(t, dev, &fakeClock{})
			defer d.Close()
			learnPeer(t, d, dev)
			before := d.Stats()
			got, peer := recvFrame(t, d, dev, tc.frame)
			after := d.Stats()
			after.ARPLearned -= before.ARPLearned
			after.ARPRequests -= before.ARPRequests
			wantStats(t, after, tc.want)
			if tc.want.RxPackets == 1 {
				wantPacket(t, got, inner)
				if peer != 0 {
					t.Errorf("peer = %d, want 0", peer)
				}
			} else if got != nil {
				t.Errorf("delivered %x, want nothing", got)
			}
		})
	}
}

func TestDirectRecvTruncated(t *testing.T) {
	dev := linktest.NewDevice("underlay", 1500, 4)
	d := newDirectA(t, dev, &fakeClock{})
	defer d.Close()
	learnPeer(t, d, dev)
	f := ipv4Frame(underlayMACA, underlayMACB, ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee))
	for n := range len(f) {
		if got, _ := recvFrame(t, d, dev, f[:n]); got != nil {
			t.Fatalf("%d-byte prefix delivered %x", n, got)
		}
	}
	wantStats(t, d.Stats(), Stats{DropTruncated: uint64(len(f)), ARPLearned: 1, ARPRequests: 1})
}

// TestDirectSetPeersForgets: a removed peer's frames are refused and its ARP
// entry is gone.
func TestDirectSetPeersForgets(t *testing.T) {
	dev := linktest.NewDevice("underlay", 1500, 4)
	d := newDirectA(t, dev, &fakeClock{})
	defer d.Close()
	learnPeer(t, d, dev)
	inner := ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee)
	d.SetPeers([]Peer{{ID: 1, Addr: nodeC}, {ID: 0, Addr: nodeB}}) // B keeps its ID
	expectFrame(t, dev, arpRequestFromA(nodeC))
	if got, peer := recvFrame(t, d, dev, ipv4Frame(underlayMACA, underlayMACB, inner)); got == nil || peer != 0 {
		t.Fatalf("after reorder: delivered %v from peer %d, want peer 0", got != nil, peer)
	}
	d.SetPeers([]Peer{{ID: 1, Addr: nodeC}})
	expectNoFrame(t, dev) // C is still being resolved
	if got, _ := recvFrame(t, d, dev, ipv4Frame(underlayMACA, underlayMACB, inner)); got != nil {
		t.Fatal("frame from a removed peer delivered")
	}
	if n := d.Neighbours(); len(n) != 1 || n[0].IP != nodeC {
		t.Fatalf("Neighbours() after removing the peer = %+v, want only C's", n)
	}
}

// TestDirectSetPeersResolves: SetPeers sends a broadcast ARP request for
// every peer the table has no entry for (once per address), none for one
// that is resolved or being resolved. A peer that only sends to this node, as after a restart while its
// kernel still knows this node's MAC, is then accepted as soon as its kernel
// answers instead of when it next ARPs by itself.
func TestDirectSetPeersResolves(t *testing.T) {
	dev := linktest.NewDevice("underlay", 1500, 8)
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: &fakeClock{}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.SetPeers(indexed(Peer{Addr: nodeB}, Peer{Addr: nodeC}, Peer{Addr: nodeB}, Peer{Node: "no address"}))
	expectFrame(t, dev, arpRequestFromA(nodeB))
	expectFrame(t, dev, arpRequestFromA(nodeC))
	expectNoFrame(t, dev)

	// B's kernel answers; B's frames are accepted though B never ARPed.
	recvFrame(t, d, dev, arpFrame(arp.OpReply, underlayMACA, underlayMACB, nodeB, nodeA))
	inner := ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0xee)
	if got, peer := recvFrame(t, d, dev, ipv4Frame(underlayMACA, underlayMACB, inner)); got == nil || peer != 0 {
		t.Fatalf("frame from B after its reply: delivered %v from peer %d, want delivered from peer 0", got != nil, peer)
	}

	nodeD := netip.MustParseAddr("192.0.2.4")
	// In another order, each address with the ID it had: known peers.
	d.SetPeers([]Peer{{ID: 1, Addr: nodeC}, {ID: 0, Addr: nodeB}, {ID: 3, Addr: nodeD}})
	expectFrame(t, dev, arpRequestFromA(nodeD)) // new
	expectNoFrame(t, dev)                       // none for B, none more for C (its request is outstanding)
	wantStats(t, d.Stats(), Stats{ARPRequests: 3, ARPLearned: 1, RxPackets: 1, RxBytes: uint64(len(inner))})
}

// TestDirectRoundTrip runs two nodes on one Ethernet segment whose kernels
// answer ARP for their node addresses, as real ones do.
func TestDirectRoundTrip(t *testing.T) {
	devA := linktest.NewDevice("underlay-a", 1500, 16)
	devB := linktest.NewDevice("underlay-b", 1500, 16)
	a := newDirectA(t, devA, arp.SystemClock{})
	b, err := NewDirect(devB, DirectConfig{LocalAddr: nodeB, LocalMAC: underlayMACB, LocalPodCIDR: podCIDRB})
	if err != nil {
		t.Fatal(err)
	}
	b.SetPeers(indexed(Peer{Addr: nodeC}, Peer{Addr: nodeA}))
	segment(t, devA, devB, nodeA, nodeB, underlayMACA, underlayMACB)
	defer a.Close()
	defer b.Close()
	receiveAll(a) // A's receive loop learns B's ARP reply
	// B knows A, a peer without a pod range, by the MAC its ARP learns.
	// Wait for that before A sends: the fake switch's two directions race,
	// and A's packets could overtake the reply to B's request and be
	// dropped as from an unknown peer (the test hung about once in 100).
	bufs, sizes, starts, peers := recvBuffers(8)
	for !knows(b, nodeA, underlayMACA) {
		if _, err := b.Recv(bufs, sizes, starts, peers, testOffset); err != nil {
			t.Fatal(err)
		}
	}

	pkts := [][]byte{ipv4Packet("10.244.0.4", "10.244.1.5", 8, 1), ipv4Packet("10.244.0.4", "10.244.1.6", 1400, 2)}
	if _, err := a.Send([][]byte{withHeadroom(pkts[0]), withHeadroom(pkts[1])}, []uint32{0, 0}, testOffset); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < len(pkts); {
		n, err := b.Recv(bufs, sizes, starts, peers, testOffset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] == 0 {
				continue // A's ARP request, learned from
			}
			if peers[i] != 1 {
				t.Errorf("packet from peer %d, want 1 (node A)", peers[i])
			}
			wantPacket(t, bufs[i][starts[i]:starts[i]+sizes[i]], pkts[got])
			got++
		}
	}
	if s := b.Stats(); s.RxPackets != 2 || s.ARPLearned == 0 || s.DropUnknownPeer != 0 {
		t.Errorf("B's stats %+v: want 2 received, A learned by ARP, no drops", s)
	}
}

// knows reports whether d's underlay ARP table has a valid entry for addr
// at mac.
func knows(d *Direct, addr netip.Addr, mac link.HardwareAddr) bool {
	for _, e := range d.Neighbours() {
		if e.IP == addr && e.MAC == mac && e.State.Valid() {
			return true
		}
	}
	return false
}

// segment connects two fake underlay devices like an Ethernet switch and
// plays both kernels' ARP: a request for a node's address is answered from
// that node's MAC.
func segment(t *testing.T, devA, devB *linktest.Device, addrA, addrB netip.Addr, macA, macB link.HardwareAddr) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	forward := func(from, to *linktest.Device, fromMAC link.HardwareAddr, toAddr netip.Addr, toMAC link.HardwareAddr) {
		for {
			select {
			case f := <-from.Out:
				to.In <- f
				if binary.BigEndian.Uint16(f[12:14]) != ethTypeARP {
					continue
				}
				if p, err := arp.Parse(f[ethHeaderLen:]); err == nil && p.Op == arp.OpRequest && p.TargetIP == toAddr {
					from.In <- arpFrame(arp.OpReply, p.SenderMAC, toMAC, toAddr, p.SenderIP)
				}
			case <-done:
				return
			}
		}
	}
	go forward(devA, devB, macA, addrB, macB)
	go forward(devB, devA, macB, addrA, macA)
}

func TestNewDirectErrors(t *testing.T) {
	dev := linktest.NewDevice("underlay", 1500, 1)
	good := DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA}
	for name, edit := range map[string]func(*DirectConfig){
		"no LocalAddr":    func(c *DirectConfig) { c.LocalAddr = netip.Addr{} },
		"IPv6 LocalAddr":  func(c *DirectConfig) { c.LocalAddr = netip.MustParseAddr("2001:db8::1") },
		"no LocalMAC":     func(c *DirectConfig) { c.LocalMAC = link.HardwareAddr{} },
		"no LocalPodCIDR": func(c *DirectConfig) { c.LocalPodCIDR = netip.Prefix{} },
		"bad ARP config":  func(c *DirectConfig) { c.ARP = arp.Config{ReachableTime: -1} },
	} {
		cfg := good
		edit(&cfg)
		if _, err := NewDirect(dev, cfg); err == nil {
			t.Errorf("%s: NewDirect succeeded", name)
		}
	}
	if _, err := NewDirect(dev, good); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
