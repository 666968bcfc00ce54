package tunnel

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
)

// vlanTagged returns f with 802.1Q-style tags (tpid, vid) inserted after
// the MACs, outermost first.
func vlanTagged(f []byte, tags ...[2]uint16) []byte {
	t := slices.Clone(f[:12])
	for _, tag := range tags {
		t = binary.BigEndian.AppendUint16(t, tag[0])
		t = binary.BigEndian.AppendUint16(t, tag[1])
	}
	return append(t, f[12:]...)
}

// TestDirectFilterKernelVLAN runs DirectFilter in the kernel, on a socket
// opened by afpacket.OpenFiltered, against frames from b's raw socket: the
// kernel strips an 802.1Q tag before the filter runs, so a tagged frame for
// a local pod passes and is reported tagged (Recv drops it as drop_vlan), a
// tagged frame for the node does not pass, and a double-tagged (QinQ)
// frame, whose inner tag stays in the frame, does not pass either. Each
// frame's fill byte names it; the untagged frame sent last ends the read.
func TestDirectFilterKernelVLAN(t *testing.T) {
	a, b := underlayPair(t)
	macA := ifaceMAC(t, a.IP("-j", "link", "show", "veth-a"))
	var sa, sb *afpacket.Socket
	var err error
	a.Do(func() {
		sa, err = afpacket.OpenFiltered("veth-a", DirectFilter(macA, netip.MustParsePrefix("10.244.0.0/24")))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sa.Close() })
	b.Do(func() { sb, err = afpacket.Open("veth-b") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	timer := time.AfterFunc(20*time.Second, func() { sa.Close() }) // a missing frame fails, not hangs
	t.Cleanup(func() { timer.Stop() })

	toPod := func(fill byte) []byte {
		return ipv4Frame(macA, sb.HWAddr(), ipv4Packet("10.244.1.5", "10.244.0.4", 8, fill))
	}
	dot1q := [2]uint16{0x8100, 10}
	out := [][]byte{
		vlanTagged(toPod(1), dot1q),
		vlanTagged(ipv4Frame(macA, sb.HWAddr(), ipv4Packet("10.244.1.5", underlayA.String(), 8, 2)), dot1q),
		vlanTagged(toPod(3), [2]uint16{0x88a8, 20}, dot1q),
		vlanTagged(toPod(4), [2]uint16{0x8100, 0}), // a priority tag: untagged traffic
		toPod(5),
	}
	if n, err := sb.Write(out, 0); n != len(out) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	type got struct {
		fill byte
		meta link.RxMeta
	}
	var seen []got
	bufs := make([][]byte, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes, meta := make([]int, len(bufs)), make([]link.RxMeta, len(bufs))
	for len(seen) == 0 || seen[len(seen)-1].fill != 5 {
		n, err := sa.ReadMeta(bufs, sizes, meta, 0)
		if err != nil {
			t.Fatalf("ReadMeta: %v (seen %+v)", err, seen)
		}
		for i := range n {
			f := bufs[i][:sizes[i]]
			if binary.BigEndian.Uint16(f[12:14]) != ethTypeIPv4 || len(f) != 14+20+8 {
				t.Fatalf("the filter let through % x", f)
			}
			seen = append(seen, got{f[len(f)-1], meta[i]})
		}
	}
	if want := []got{{1, link.RxVLAN}, {4, 0}, {5, 0}}; !slices.Equal(seen, want) {
		t.Errorf("frames through the filter (fill, meta) %+v, want %+v", seen, want)
	}
}
