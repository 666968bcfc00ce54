package router

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// readerAccepts is what the vnet Reader's checkWhole hands on whole from
// a device of MTU mtu: the super-frame pkt with the virtio segment size
// size, and the GSO it describes it with; ok false for what it drops.
func readerAccepts(pkt []byte, udp bool, size uint16, mtu int) (link.GSO, bool) {
	if len(pkt) < 40 {
		return link.GSO{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+20 {
		return link.GSO{}, false
	}
	var s gso.Segmenter
	if udp {
		if ihl+8+int(size) > mtu || s.ResetUDP(pkt, int(size)) != nil {
			return link.GSO{}, false
		}
		return link.GSO{Type: link.GSOUDPv4, Size: size}, true
	}
	thl := int(pkt[ihl+12]>>4) * 4
	if size < 48 || s.Reset(pkt, min(mtu, ihl+thl+int(size))) != nil {
		return link.GSO{}, false
	}
	return link.GSO{Type: link.GSOTCPv4, Size: uint16(min(int(size), mtu-ihl-thl))}, true
}

// FuzzSuperFrame feeds a pod's super-frames, whatever their bytes, as the
// Reader would hand them on whole (same checks), to a router with a GSO
// pod, a plain pod, the host and a tunnel, all of MTU 1450 (no cut to the
// MTU, no fragments). Nothing panics; every segment the port counted
// received moves exactly one counter (forwarded, besides the at most one
// ICMP error, or a drop); a super-frame written whole is one a writer can
// trust (checkSuper); every packet cut from one is valid IPv4 within the
// MTU, forwarded with its TTL decremented.
func FuzzSuperFrame(f *testing.F) {
	n, devs := newGSONode(f, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	plain := &capDevice{name: "plain", mtu: 1450}
	pcIP := pb.ip.Next()
	pc, err := n.r.AddPodPort("plain", plain, pcIP, link.HardwareAddr{2, 0, 0, 0, 0, 9}, 1450)
	if err != nil {
		f.Fatal(err)
	}
	n.r.SetStaticNeighbour("plain", pcIP, link.HardwareAddr{2, 0, 0, 0, 0, 9})
	_ = pc
	tcp := func(dst [4]byte, df bool, payload int) []byte {
		b := tcpSuper(pa.ip, pb.ip, 64, df, nil, payload)
		copy(b[16:20], dst[:])
		h := header.IPv4(b)
		h.SetChecksum(0)
		h.SetChecksum(^h.CalculateChecksum())
		binary.BigEndian.PutUint16(b[36:], gso.PseudoHeaderSum(b, len(b)-20))
		return b
	}
	for _, dst := range [][4]byte{pb.ip.As4(), pcIP.As4(), {10, 244, 1, 9}, {8, 8, 8, 8}, {10, 244, 0, 99}, gateway.As4()} {
		f.Add(tcp(dst, true, 5000), false, uint16(1400))
		f.Add(tcp(dst, false, 3000), false, uint16(1400))
		f.Add(tcp(dst, false, 0), false, uint16(48))
		f.Add(udpSuper(pa.ip, netip4(dst), false, 128), true, uint16(1))
		f.Add(udpSuper(pa.ip, netip4(dst), true, 0), true, uint16(100))
	}
	f.Add(tcpSuper(pa.ip, pb.ip, 1, true, nil, 3000), false, uint16(1000))
	f.Add(tcpSuper(pa.ip, pb.ip, 64, true, []byte{0x83, 7, 4, 10, 244, 0, 5, 0}, 3000), false, uint16(1000))
	f.Fuzz(func(t *testing.T, pkt []byte, udp bool, size uint16) {
		g, ok := readerAccepts(pkt, udp, size, 1450)
		if !ok || len(pkt) > 8192 { // beyond: as many more segments, no new paths, and slow to minimize
			return
		}
		segs := uint64(link.Segments(pkt, g))
		before := n.r.Stats()
		rx := pa.port.RxPackets.Load()
		n.superFromPod(devs[0], 0, g, ethernet(gwMAC, pa.mac, etherTypeIP, pkt))
		o := outcomeOf(before, n.r.Stats())
		if got := pa.port.RxPackets.Load() - rx; got != segs {
			t.Fatalf("rx packets moved by %d, want %d", got, segs)
		}
		if o.icmpErrors > 1 || o.drops+o.forwarded-o.icmpErrors != segs || o.fragments != 0 {
			t.Fatalf("%d segments: %+v", segs, o)
		}
		in := header.IPv4(pkt)
		for _, d := range devs {
			d.gmu.Lock()
			bad := d.invalid
			d.invalid, d.outGSO = nil, nil
			d.gmu.Unlock()
			if len(bad) > 0 {
				t.Fatalf("written whole: %v", bad)
			}
		}
		for _, fr := range devs[1].take() {
			if len(fr) > ethHeaderLen+1450 {
				continue // whole, checked above
			}
			if err := checkOut(fr[ethHeaderLen:], 1450, in, gateway); err != nil {
				t.Fatal(err)
			}
		}
		if err := checkPodFrames(n.pods[0], devs[0].take(), in, gateway); err != nil {
			t.Fatal(err)
		}
		for _, fr := range plain.take() {
			if err := checkOut(fr[ethHeaderLen:], 1450, in, gateway); err != nil {
				t.Fatalf("to the plain pod: %v", err)
			}
		}
		for _, p := range n.host.take() {
			if err := checkOut(p, 1450, in); err != nil {
				t.Fatalf("to the host: %v", err)
			}
		}
		for _, d := range n.conn.take() {
			if err := checkOut(d.Data, 1450, in); err != nil {
				t.Fatalf("to the tunnel: %v", err)
			}
		}
	})
}

func netip4(a [4]byte) netip.Addr { return netip.AddrFrom4(a) }
