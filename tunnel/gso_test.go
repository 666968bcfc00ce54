package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// largeConn is a fake UDP socket that keeps datagrams longer than the
// buffer whole, as link/udp.Conn does (link.LargeReader). ReadFrom returns
// the queued datagrams without blocking.
type largeConn struct {
	in    []linktest.Datagram
	large [][]byte
}

func (c *largeConn) ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error) {
	n := min(len(bufs), len(c.in))
	c.large = c.large[:0]
	for i, d := range c.in[:n] {
		copy(bufs[i][offset:], d.Data)
		sizes[i], from[i] = len(d.Data), d.Addr
		var whole []byte
		if len(d.Data) > len(bufs[i])-offset {
			whole = d.Data
		}
		c.large = append(c.large, whole)
	}
	c.in = c.in[n:]
	return n, nil
}

func (c *largeConn) Large(i int) []byte { return c.large[i] }
func (c *largeConn) WriteTo(bufs [][]byte, to []netip.AddrPort, offset int) (int, error) {
	return len(bufs), nil
}
func (c *largeConn) LocalAddr() netip.AddrPort { return addrPort(nodeB, DefaultVXLANPort) }
func (c *largeConn) BatchSize() int            { return 64 }
func (c *largeConn) Close() error              { return nil }

// largeDevice is a fake AF_PACKET socket that keeps frames longer than the
// buffer whole and ends the batch at one, as link/afpacket.Socket does.
type largeDevice struct {
	*linktest.Device
	frames  [][]byte
	meta    []link.RxMeta
	large   []byte
	largeAt int
}

func (d *largeDevice) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	n := 0
	d.largeAt = -1
	for n < len(bufs) && len(d.frames) > 0 {
		f := d.frames[0]
		copy(bufs[n][offset:], f)
		sizes[n], meta[n] = len(f), d.meta[0]
		d.frames, d.meta = d.frames[1:], d.meta[1:]
		n++
		if len(f) > len(bufs[n-1])-offset {
			d.large, d.largeAt = f, n-1
			break
		}
	}
	return n, nil
}

func (d *largeDevice) Large(i int) []byte {
	if i != d.largeAt {
		return nil
	}
	return d.large
}

// recvAll calls Recv until it has delivered want packets and returns them
// and the number of calls; a call that delivers nothing fails the test.
func recvAll(t *testing.T, tun Tunnel, batch, want int) ([][]byte, []int) {
	t.Helper()
	bufs, sizes, starts, peers := recvBuffers(batch)
	var got [][]byte
	var perCall []int
	for len(got) < want {
		n, err := tun.Recv(bufs, sizes, starts, peers, testOffset)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for i := range n {
			if sizes[i] == 0 {
				continue
			}
			if peers[i] != 0 {
				t.Errorf("packet from peer %d, want 0", peers[i])
			}
			got = append(got, bytes.Clone(bufs[i][starts[i]:starts[i]+sizes[i]]))
			k++
		}
		if k == 0 {
			t.Fatalf("Recv delivered nothing after %d of %d packets", len(got), want)
		}
		perCall = append(perCall, k)
	}
	return got, perCall
}

// superPacket is a partial-checksum TCP packet (20-byte header) with n
// bytes of payload, as a kernel sender with TSO hands it over.
func superPacket(src, dst string, n int) []byte {
	p := partial(transportPacket(src, dst, protoTCP, n))
	binary.BigEndian.PutUint32(p[24:28], 0xfffff000) // sequence number, wraps
	binary.BigEndian.PutUint16(p[4:6], 0x1234)       // IP ID
	binary.BigEndian.PutUint16(p[10:12], 0)
	binary.BigEndian.PutUint16(p[10:12], ^checksum.Checksum(p[:ipv4HeaderLen], 0))
	return p
}

// checkSegments checks that segs are super split for mtu: each at most mtu,
// a valid IPv4 header and TCP checksum, IDs counting up, sequence numbers
// contiguous, PSH only on the last, and payloads that join up to super's.
func checkSegments(t *testing.T, super []byte, segs [][]byte, mtu int) {
	t.Helper()
	var joined []byte
	for i, s := range segs {
		if len(s) > mtu || int(binary.BigEndian.Uint16(s[2:4])) != len(s) || checksum.Checksum(s[:ipv4HeaderLen], 0) != 0xffff || !verifies(s) {
			t.Fatalf("segment %d: %d bytes, not a valid segment of at most %d", i, len(s), mtu)
		}
		if id := binary.BigEndian.Uint16(s[4:6]); id != 0x1234+uint16(i) {
			t.Errorf("segment %d: ID %#x", i, id)
		}
		if seq := binary.BigEndian.Uint32(s[24:28]); seq != 0xfffff000+uint32(len(joined)) {
			t.Errorf("segment %d: seq %#x, want %#x", i, seq, 0xfffff000+uint32(len(joined)))
		}
		if want := byte(0x10); i == len(segs)-1 {
			want = 0x18
			if s[33] != want {
				t.Errorf("last segment: flags %#x, want PSH|ACK", s[33])
			}
		} else if s[33] != want {
			t.Errorf("segment %d: flags %#x, want ACK", i, s[33])
		}
		joined = append(joined, s[40:]...)
	}
	if !bytes.Equal(joined, super[40:]) {
		t.Errorf("segments' payloads (%d bytes) differ from the super-packet's (%d)", len(joined), len(super)-40)
	}
}

// TestVXLANRecvSplitsSuperPacket: a 10000-byte TCP super-segment between two
// packets, read in one batch of 8, is split for MTU 1450 into 8 segments
// (1410 payload bytes each but the last), handed out in order with the
// packet behind it over two Recv calls.
func TestVXLANRecvSplitsSuperPacket(t *testing.T) {
	conn := &largeConn{}
	v, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(nodeB), MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	v.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
	small1 := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 100)
	small2 := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 200)
	super := superPacket("10.244.0.4", "10.244.1.5", 10000)
	src := addrPort(nodeA, 40000)
	conn.in = []linktest.Datagram{{Addr: src, Data: validDatagram(small1)}, {Addr: src, Data: validDatagram(super)}, {Addr: src, Data: validDatagram(small2)}}

	got, perCall := recvAll(t, v, 8, 10)
	if len(got) != 10 || len(perCall) != 2 || perCall[0] != 8 || perCall[1] != 2 {
		t.Fatalf("delivered %d packets in calls of %v, want 10 in [8 2]", len(got), perCall)
	}
	wantPacket(t, got[0], small1)
	checkSegments(t, super, got[1:9], 1450)
	for i, s := range got[1:9] {
		if want := min(1450, 10040-i*1410); len(s) != want {
			t.Errorf("segment %d: %d bytes, want %d", i, len(s), want)
		}
	}
	wantPacket(t, got[9], small2)
	wantStats(t, v.Stats(), Stats{RxPackets: 10, RxBytes: uint64(len(small1) + len(small2) + 10000 + 8*40), GSOSplit: 1, GSOSegments: 8})
}

// TestDatagramRecvRefusesUnsplittable: super-packets that are not plain
// TCP are dropped and counted, as oversize (UDP GSO, a fragment) or
// malformed (a bad IPv4 header checksum); the packets behind keep flowing.
func TestDatagramRecvRefusesUnsplittable(t *testing.T) {
	conn := &largeConn{}
	u, err := NewUDP(conn, UDPConfig{MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	u.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
	udpSuper := transportPacket("10.244.0.4", "10.244.1.5", protoUDP, 5000)
	frag := superPacket("10.244.0.4", "10.244.1.5", 5000)
	frag[6] = 0x20 // MF
	binary.BigEndian.PutUint16(frag[10:12], 0)
	binary.BigEndian.PutUint16(frag[10:12], ^checksum.Checksum(frag[:ipv4HeaderLen], 0))
	badSum := superPacket("10.244.0.4", "10.244.1.5", 5000)
	badSum[10] ^= 0xff
	small := transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 100)
	src := addrPort(nodeA, DefaultUDPPort)
	for _, d := range [][]byte{udpSuper, frag, badSum, small} {
		conn.in = append(conn.in, linktest.Datagram{Addr: src, Data: d})
	}
	got, perCall := recvAll(t, u, 8, 1)
	if len(perCall) != 1 {
		t.Fatalf("delivered in calls of %v, want one", perCall)
	}
	wantPacket(t, got[0], small)
	wantStats(t, u.Stats(), Stats{RxPackets: 1, RxBytes: uint64(len(small)), DropOversize: 2, DropMalformed: 1})
}

// TestDirectRecvSplitsSuperFrame: a TSO frame of 10000 payload bytes, marked
// partial, is split for MTU 1500 into 7 segments (1460 payload bytes each
// but the last); the socket ends its batch at the large frame, and the frame
// behind it comes with the next read.
func TestDirectRecvSplitsSuperFrame(t *testing.T) {
	dev := &largeDevice{Device: linktest.NewDevice("underlay", 1500, 8)}
	d, err := NewDirect(dev, DirectConfig{LocalAddr: nodeA, LocalMAC: underlayMACA, LocalPodCIDR: podCIDRA, Clock: &fakeClock{}, MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	d.SetPeers(indexed(Peer{Node: "b", Addr: nodeB, PodCIDRs: []netip.Prefix{podCIDRB}}))
	expectFrame(t, dev.Device, arpRequestFromA(nodeB))
	small1 := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 100)
	small2 := transportPacket("10.244.1.5", "10.244.0.4", protoTCP, 200)
	super := superPacket("10.244.1.5", "10.244.0.4", 10000)
	for _, p := range [][]byte{small1, super, small2} {
		dev.frames = append(dev.frames, ipv4Frame(underlayMACA, underlayMACB, p))
	}
	dev.meta = []link.RxMeta{0, link.RxChecksumPartial, 0}

	got, perCall := recvAll(t, d, 8, 9)
	if len(got) != 9 || len(perCall) != 2 || perCall[0] != 8 || perCall[1] != 1 {
		t.Fatalf("delivered %d packets in calls of %v, want 9 in [8 1]", len(got), perCall)
	}
	wantPacket(t, got[0], small1)
	checkSegments(t, super, got[1:8], 1500)
	for i, s := range got[1:8] {
		if want := min(1500, 10040-i*1460); len(s) != want {
			t.Errorf("segment %d: %d bytes, want %d", i, len(s), want)
		}
	}
	wantPacket(t, got[8], small2)
	wantStats(t, d.Stats(), Stats{RxPackets: 9, RxBytes: uint64(len(small1) + len(small2) + 10000 + 7*40), GSOSplit: 1, GSOSegments: 7, ARPRequests: 1})
}

// TestRecvSplitNoAllocs: once the queue's storage exists, receiving and
// splitting super-packets allocates nothing.
func TestRecvSplitNoAllocs(t *testing.T) {
	conn := &largeConn{}
	v, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(nodeB), MTU: 1450})
	if err != nil {
		t.Fatal(err)
	}
	v.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
	src := addrPort(nodeA, 40000)
	in := []linktest.Datagram{
		{Addr: src, Data: validDatagram(superPacket("10.244.0.4", "10.244.1.5", 60000))},
		{Addr: src, Data: validDatagram(transportPacket("10.244.0.4", "10.244.1.5", protoTCP, 100))},
	}
	bufs, sizes, starts, peers := recvBuffers(64)
	backing := make([]linktest.Datagram, len(in))
	run := func() {
		conn.in = backing[:copy(backing, in)]
		for len(conn.in) > 0 || v.queue.active() {
			v.Recv(bufs, sizes, starts, peers, testOffset)
		}
	}
	run()
	if a := testing.AllocsPerRun(50, run); a != 0 {
		t.Errorf("%.2f allocations per 60 KB super-packet, want 0", a)
	}
}

// BenchmarkRecvSplit64K measures Recv splitting one 64 KB vxlan
// super-datagram into 47 segments for MTU 1450.
func BenchmarkRecvSplit64K(b *testing.B) {
	conn := &largeConn{}
	v, _ := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(nodeB), MTU: 1450})
	v.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
	in := []linktest.Datagram{{Addr: addrPort(nodeA, 40000), Data: validDatagram(superPacket("10.244.0.4", "10.244.1.5", 65535-40))}}
	bufs, sizes, starts, peers := recvBuffers(64)
	backing := make([]linktest.Datagram, len(in))
	b.SetBytes(65535)
	b.ReportAllocs()
	for b.Loop() {
		conn.in = backing[:copy(backing, in)]
		for len(conn.in) > 0 || v.queue.active() {
			v.Recv(bufs, sizes, starts, peers, testOffset)
		}
	}
}

// FuzzVXLANRecvLarge feeds super-datagrams (a valid TCP super-packet whose
// first bytes the fuzzer overwrites, behind a vxlan header) through a
// socket that keeps them whole. Invariant: each moves exactly one of
// gso_split and the drop counters; a split one is delivered as segments
// (gso_segments of them, all in rx_packets) that are valid IPv4 of their
// total length, at most the MTU, with a TCP checksum that verifies, and
// whose payloads join up to the super-packet's.
func FuzzVXLANRecvLarge(f *testing.F) {
	f.Add([]byte{}, uint16(10000), uint16(1450))
	f.Add([]byte{0x46}, uint16(3000), uint16(1500))
	f.Add([]byte{0x45, 0, 0, 0, 0, 0, 0x20}, uint16(3000), uint16(1500))
	f.Add([]byte{0x45, 0, 0x10, 0}, uint16(60000), uint16(576))
	conn := &largeConn{}
	bufs, sizes, starts, peers := recvBuffers(64)
	f.Fuzz(func(t *testing.T, head []byte, plen, mtu uint16) {
		plen = max(plen%(65535-40-vxlanHeadroom), 2048)
		v, err := NewVXLAN(conn, VXLANConfig{LocalMAC: VTEPMAC(nodeB), MTU: int(mtu)})
		if err != nil {
			t.Fatal(err)
		}
		v.SetPeers(indexed(Peer{Node: "a", Addr: nodeA}))
		super := superPacket("10.244.0.4", "10.244.1.5", int(plen))
		copy(super, head)
		conn.in = []linktest.Datagram{{Addr: addrPort(nodeA, 40000), Data: validDatagram(super)}}
		var got [][]byte
		for len(conn.in) > 0 || v.queue.active() {
			n, _ := v.Recv(bufs, sizes, starts, peers, testOffset)
			for i := range n {
				if sizes[i] > 0 {
					got = append(got, bytes.Clone(bufs[i][starts[i]:starts[i]+sizes[i]]))
				}
			}
		}
		s := v.Stats()
		if d := s.GSOSplit + s.DropOversize + s.DropMalformed + s.DropTruncated + s.DropNotIPv4; d != 1 {
			t.Fatalf("one super-datagram moved %d disposition counters: %+v", d, s)
		}
		if s.RxPackets != uint64(len(got)) || s.GSOSegments != uint64(len(got)) || (s.GSOSplit == 0) != (len(got) == 0) {
			t.Fatalf("delivered %d, stats %+v", len(got), s)
		}
		if len(got) == 0 {
			return
		}
		limit := len(bufs[0]) - testOffset - vxlanHeadroom
		if mtu > 0 {
			limit = min(limit, int(mtu))
		}
		ihl := int(super[0]&0x0f) * 4
		hdr := ihl + int(super[ihl+12]>>4)*4
		total := int(binary.BigEndian.Uint16(super[2:4]))
		var joined []byte
		for i, p := range got {
			if len(p) > limit || len(p) < hdr || int(binary.BigEndian.Uint16(p[2:4])) != len(p) ||
				checksum.Checksum(p[:ihl], 0) != 0xffff || !verifies(p) {
				t.Fatalf("segment %d (%d bytes, limit %d) is not valid: % x", i, len(p), limit, p[:hdr])
			}
			joined = append(joined, p[hdr:]...)
		}
		if !bytes.Equal(joined, super[hdr:total]) {
			t.Fatalf("joined payloads (%d bytes) differ from the super-packet's (%d)", len(joined), total-hdr)
		}
	})
}
