package afpacket_test

import (
	"encoding/binary"
	"net"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// tagged returns marker frame f with an 802.1Q tag carrying tci inserted
// after the MACs.
func tagged(f []byte, tci uint16) []byte {
	t := append([]byte(nil), f[:12]...)
	t = binary.BigEndian.AppendUint16(t, 0x8100)
	t = binary.BigEndian.AppendUint16(t, tci)
	return append(t, f[12:]...)
}

// readMeta reads frames from s until one with EtherType et arrives and
// returns it with its metadata.
func readMeta(t *testing.T, w *wire, et uint16) ([]byte, link.RxMeta) {
	t.Helper()
	bufs, sizes := devtest.MakeBatch(8, 2048)
	meta := make([]link.RxMeta, 8)
	for {
		n, err := w.sb.ReadMeta(bufs, sizes, meta, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if f := bufs[i][:sizes[i]]; etherType(f) == et {
				return f, meta[i]
			}
		}
	}
}

// TestReadMetaVLAN: the kernel strips a received 802.1Q tag out of the
// frame; ReadMeta still reports it, except for a priority tag (VLAN ID 0),
// which is untagged traffic.
func TestReadMetaVLAN(t *testing.T) {
	w := newWire(t)
	for _, tc := range []struct {
		name string
		tci  int // -1: untagged
		want link.RxMeta
	}{
		{"untagged", -1, 0},
		{"VLAN 10", 10, link.RxVLAN},
		{"VLAN 10, priority 5", 5<<13 | 10, link.RxVLAN},
		{"priority tag (VLAN 0)", 5 << 13, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := marker(w.sb.HWAddr(), w.sa.HWAddr(), tc.name, 60)
			if tc.tci >= 0 {
				f = tagged(f, uint16(tc.tci))
			}
			if n, err := w.sa.Write([][]byte{f}, 0); n != 1 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			got, meta := readMeta(t, w, markerType)
			if meta != tc.want || string(got[14:14+len(tc.name)]) != tc.name {
				t.Fatalf("read % x with meta %v, want the untagged marker with meta %v", got, meta, tc.want)
			}
		})
	}
}

// TestPartialChecksumCompleted: a UDP datagram that A's kernel sends out of
// a veth (TX checksum offload on, the default) arrives with its checksum
// partial, and Read completes it: B reads a datagram whose checksum
// verifies, meta 0, one checksum counted; a frame A's socket wrote is
// left as it is.
func TestPartialChecksumCompleted(t *testing.T) {
	w := newWire(t)
	w.a.IP("addr", "add", "10.98.0.1/24", "dev", "va")
	w.b.IP("addr", "add", "10.98.0.2/24", "dev", "vb")
	w.a.IP("neigh", "add", "10.98.0.2", "lladdr", w.sb.HWAddr().String(), "dev", "va")
	var err error
	w.a.Do(func() {
		var c net.Conn
		if c, err = net.Dial("udp4", "10.98.0.2:9"); err == nil {
			_, err = c.Write([]byte("hello"))
			c.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	f, meta := readMeta(t, w, 0x0800)
	if f[14+9] != 17 || meta != 0 {
		t.Fatalf("A's UDP datagram: protocol %d, meta %v; want 17 and 0", f[14+9], meta)
	}
	ip := header.IPv4(f[14:])
	udp := header.UDP(ip.Payload())
	if !udp.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(udp.Payload(), 0)) {
		t.Errorf("A's UDP datagram arrived with checksum %#04x, which does not verify", udp.Checksum())
	}
	if n, err := w.sa.Write([][]byte{marker(w.sb.HWAddr(), w.sa.HWAddr(), "raw", 60)}, 0); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, meta := readMeta(t, w, markerType); meta != 0 {
		t.Fatalf("a raw frame's meta = %v, want 0", meta)
	}
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{Checksums: 1}) {
		t.Errorf("B's OffloadStats = %+v, want 1 checksum completed", st)
	}
}

func TestReadMetaNoAllocs(t *testing.T) {
	w := newWire(t)
	out := [][]byte{tagged(marker(w.sb.HWAddr(), w.sa.HWAddr(), "x", 1000), 10)}
	bufs, sizes := devtest.MakeBatch(4, 2048)
	meta := make([]link.RxMeta, 4)
	round := func() {
		w.sa.Write(out, 0)
		if n, err := w.sb.ReadMeta(bufs, sizes, meta, 0); n != 1 || err != nil || meta[0] != link.RxVLAN {
			t.Fatalf("ReadMeta = %d, %v, meta %v", n, err, meta[0])
		}
	}
	round()
	if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
		t.Errorf("Write+ReadMeta allocates %.2f times, want 0", allocs)
	}
}
