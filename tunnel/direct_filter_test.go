package tunnel

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/taprouter/taprouter/link"
)

var (
	filterMAC  = link.HardwareAddr{0x02, 0x42, 0xc0, 0xa8, 0x31, 0x02}
	filterCIDR = netip.MustParsePrefix("10.244.0.0/24")
)

// wantFiltered is what DirectFilter must accept, written in Go: any ARP
// frame, and an IPv4 frame to mac with a destination in cidr.
func wantFiltered(f []byte, mac link.HardwareAddr, cidr netip.Prefix) bool {
	if len(f) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case ethTypeARP:
		return true
	case ethTypeIPv4:
		return len(f) >= 34 && link.HardwareAddr(f[0:6]) == mac && cidr.Contains(netip.AddrFrom4([4]byte(f[30:34])))
	}
	return false
}

func filterVM(t testing.TB, mac link.HardwareAddr, cidr netip.Prefix) *bpf.VM {
	vm, err := bpf.NewVM(DirectFilter(mac, cidr))
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestDirectFilter: the socket's filter keeps exactly what Recv would not
// ignore: ARP, and IPv4 to the underlay MAC for this node's pods; the
// node's own traffic, other hosts' frames, broadcast IPv4, IPv6 and
// truncated frames never reach the daemon.
func TestDirectFilter(t *testing.T) {
	vm := filterVM(t, filterMAC, filterCIDR)
	inner := ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0)
	stranger := link.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  int // bytes kept: 0 refused
	}{
		{"IPv4 to a local pod", ipv4Frame(filterMAC, stranger, inner), 14 + len(inner)},
		{"IPv4 to the node itself", ipv4Frame(filterMAC, stranger, ipv4Packet("192.0.2.2", "192.168.49.2", 8, 0)), 0},
		{"IPv4 to another node's pods", ipv4Frame(filterMAC, stranger, ipv4Packet("10.244.0.4", "10.244.1.5", 8, 0)), 0},
		{"IPv4 to another host's MAC", ipv4Frame(stranger, filterMAC, inner), 0},
		{"IPv4 broadcast", ipv4Frame(link.Broadcast, stranger, inner), 0},
		{"MAC differing in its last byte", ipv4Frame(link.HardwareAddr{0x02, 0x42, 0xc0, 0xa8, 0x31, 0x03}, stranger, inner), 0},
		{"ARP request", arpFrame(1, link.Broadcast, stranger, netip.MustParseAddr("192.168.49.3"), netip.MustParseAddr("192.168.49.2")), -1},
		{"IPv6", func() []byte { f := ipv4Frame(filterMAC, stranger, inner); f[12], f[13] = 0x86, 0xdd; return f }(), 0},
		{"truncated IPv4 header", ipv4Frame(filterMAC, stranger, inner)[:30], 0},
		{"runt", []byte{1, 2, 3}, 0},
	} {
		got, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got = min(got, len(tc.frame)) // the kernel keeps at most the frame
		want := tc.want
		if want < 0 {
			want = len(tc.frame)
		}
		if got != want {
			t.Errorf("%s: filter keeps %d bytes, want %d", tc.name, got, want)
		}
	}
	// A /0 range takes every IPv4 destination to our MAC.
	if got, _ := filterVM(t, filterMAC, netip.MustParsePrefix("0.0.0.0/0")).Run(ipv4Frame(filterMAC, stranger, ipv4Packet("10.0.0.1", "8.8.8.8", 8, 0))); got == 0 {
		t.Error("a /0 pod range refuses an IPv4 frame to our MAC")
	}
}

// FuzzDirectFilter: on any frame and pod range, the BPF program accepts
// exactly what wantFiltered says, and keeps the whole frame when it does.
func FuzzDirectFilter(f *testing.F) {
	stranger := link.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	f.Add(ipv4Frame(filterMAC, stranger, ipv4Packet("10.244.1.5", "10.244.0.4", 8, 0)), uint8(24))
	f.Add(arpFrame(1, link.Broadcast, stranger, netip.MustParseAddr("192.168.49.3"), netip.MustParseAddr("192.168.49.2")), uint8(16))
	f.Add([]byte{0x02, 0x42, 0xc0, 0xa8, 0x31, 0x02, 0, 0, 0, 0, 0, 0, 0x08, 0x00}, uint8(0))
	f.Fuzz(func(t *testing.T, frame []byte, bits uint8) {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 0, 0}), int(bits%33)).Masked()
		got, err := filterVM(t, filterMAC, cidr).Run(frame)
		if err != nil {
			t.Fatal(err)
		}
		got = min(got, len(frame)) // the kernel keeps at most the frame
		want := 0
		if wantFiltered(frame, filterMAC, cidr) {
			want = len(frame)
		}
		if got != want {
			t.Fatalf("filter keeps %d of %d bytes, want %d (prefix %v)", got, len(frame), want, cidr)
		}
	})
}
