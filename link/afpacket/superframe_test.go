package afpacket_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// tcpSegment is segment i of a TCP flow from 10.98.0.1:40000 to
// 10.98.0.2:5201 in an Ethernet frame from src to dst: n payload bytes at
// sequence number 1000+i*n, IPv4 ID 100+i, flags ACK (ACK|PSH if psh),
// valid checksums, as a router hands them to the socket.
func tcpSegment(dst, src link.HardwareAddr, i, n int, psh bool) []byte {
	f := make([]byte, 14+20+20+n)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - 14), ID: uint16(100 + i), TTL: 63, Protocol: 6,
		Flags: header.IPv4FlagDontFragment, SrcAddr: tcpip.AddrFrom4([4]byte{10, 98, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 98, 0, 2})})
	ip.SetChecksum(^ip.CalculateChecksum())
	flags := header.TCPFlagAck
	if psh {
		flags |= header.TCPFlagPsh
	}
	tcp := header.TCP(ip.Payload())
	tcp.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 5201, SeqNum: uint32(1000 + i*n), AckNum: 1, DataOffset: 20, Flags: flags, WindowSize: 500})
	for k := range n {
		tcp[20+k] = byte(i + k)
	}
	sum := header.PseudoHeaderChecksum(6, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	return f
}

// TestSuperFrameCrossesVeth: 20 segments of one flow written in one batch
// leave A's socket as one super-frame (one sendmsg), cross the veth whole
// and are cut by B's socket into exactly the 20 segments that went in, byte
// for byte (IDs, checksums, PSH on the last included).
func TestSuperFrameCrossesVeth(t *testing.T) {
	w := newWire(t) // MTU 1400
	const count = 20
	crossRun(t, w, count)
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{SuperFrames: 1, Segments: count, Checksums: count}) {
		t.Errorf("B's OffloadStats = %+v, want 1 super-frame cut into %d segments", st, count)
	}
}

// crossRun writes count segments of one flow (1360 payload bytes each, PSH
// on the last) in one batch on A's socket, checks that they left as one
// super-frame, and that B's socket handed out exactly those segments, byte
// for byte.
func crossRun(t *testing.T, w *wire, count int) {
	t.Helper()
	out := make([][]byte, count)
	for i := range out {
		out[i] = tcpSegment(w.sb.HWAddr(), w.sa.HWAddr(), i, 1360, i == count-1)
	}
	if n, err := w.sa.Write(out, 0); n != count || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, count)
	}
	if st := w.sa.OffloadStats(); st != (link.OffloadStats{Coalesced: 1, CoalescedFrames: uint64(count)}) {
		t.Errorf("A's OffloadStats = %+v, want 1 super-frame of %d frames", st, count)
	}
	bufs, sizes := devtest.MakeBatch(64, 2048)
	var got [][]byte
	for len(got) < count {
		n, err := w.sb.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if f := bufs[i][:sizes[i]]; etherType(f) == 0x0800 {
				got = append(got, slices.Clone(f))
			}
		}
	}
	if len(got) != count {
		t.Fatalf("B read %d segments, want %d", len(got), count)
	}
	for i := range got {
		if !bytes.Equal(got[i], out[i]) {
			t.Fatalf("segment %d differs:\n got % x\nwant % x", i, got[i][:60], out[i][:60])
		}
	}
}

// TestKernelTSOCut: A's kernel sends 4 MiB over TCP to B's kernel across
// the veth with TSO on (the default), so super-frames of up to 64 KB cross
// it. B's packet socket sees them too: each frame it hands out is at most
// the MTU with valid IPv4 and TCP checksums, and each data segment carries
// exactly the bytes sent at its place in the stream.
func TestKernelTSOCut(t *testing.T) { kernelStreamCut(t, newWire(t)) }

// TestKernelGROCut is TestKernelTSOCut with the super-frames made on B's
// side: A's veth segments (tso and gso off, as a NIC without TSO puts
// segments on a wire) and B's veth merges them again with GRO (on, as on
// most NICs), which the daemon leaves on: B's socket cuts what GRO merged
// by the segment size GRO reports.
func TestKernelGROCut(t *testing.T) {
	w := newWire(t)
	w.a.MustExec("ethtool", "-K", "va", "tso", "off", "gso", "off")
	w.b.MustExec("ethtool", "-K", "vb", "gro", "on")
	kernelStreamCut(t, w)
}

// kernelStreamCut sends 4 MiB over TCP from A's kernel to B's across w and
// checks what B's socket hands out (see TestKernelTSOCut).
func kernelStreamCut(t *testing.T, w *wire) {
	w.a.IP("addr", "add", "10.98.0.1/24", "dev", "va")
	w.b.IP("addr", "add", "10.98.0.2/24", "dev", "vb")
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	var ln net.Listener
	var err error
	w.b.Do(func() { ln, err = net.Listen("tcp4", "10.98.0.2:5201") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	received := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c)
			c.Close()
		}
		received <- err
	}()
	segs := make(map[uint32][]byte) // payload by sequence number
	var isn uint32
	readDone := make(chan struct{})
	var bad []string
	go func() {
		defer close(readDone)
		bufs, sizes := devtest.MakeBatch(64, 2048)
		for {
			n, err := w.sb.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			for i := range n {
				f := bufs[i][:sizes[i]]
				if etherType(f) != 0x0800 || len(f) < 14+40 {
					continue
				}
				ip := header.IPv4(f[14:])
				if ip.Protocol() != 6 || ip.SourceAddress() != tcpip.AddrFrom4([4]byte{10, 98, 0, 1}) {
					continue
				}
				tcp := header.TCP(ip.Payload())
				sum := header.PseudoHeaderChecksum(6, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
				if len(ip) > 1400 || !ip.IsChecksumValid() || checksum.Checksum(tcp, sum) != 0xffff {
					bad = append(bad, fmt.Sprintf("a frame of %d bytes with a bad checksum or over the MTU", len(f)))
					continue
				}
				if tcp.Flags()&header.TCPFlagSyn != 0 {
					isn = tcp.SequenceNumber() + 1
				}
				if p := tcp.Payload(); len(p) > 0 {
					segs[tcp.SequenceNumber()] = slices.Clone(p)
				}
			}
		}
	}()
	w.a.Do(func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp4", "10.98.0.2:5201", 5*time.Second); err == nil {
			_, err = c.Write(data)
			c.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the last frames into B's socket
	w.sb.Close()
	<-readDone
	if len(bad) > 0 {
		t.Fatalf("%d bad frames, first: %s", len(bad), bad[0])
	}
	// B's socket is a tap beside B's kernel, which gets every frame; the
	// socket can fall behind and lose some (its buffer overflows under
	// -race), so each segment it handed out is checked against the bytes
	// at its place in the stream, and most of the stream must be there.
	covered := 0
	for seq, p := range segs {
		off := int(seq - isn)
		if off < 0 || off+len(p) > len(data) || !bytes.Equal(p, data[off:off+len(p)]) {
			t.Fatalf("the segment at stream offset %d (%d bytes) does not carry the bytes A sent there", off, len(p))
		}
		covered += len(p)
	}
	if covered < len(data)/2 {
		t.Errorf("B's socket handed out segments for %d of %d bytes, want most", covered, len(data))
	}
	// Not an exact count: how many super-frames A's TCP built depends on
	// its congestion window; that it built some is what makes this test
	// one of cutting.
	if st := w.sb.OffloadStats(); st.SuperFrames == 0 || st.Dropped != 0 {
		t.Errorf("B's OffloadStats = %+v: want super-frames cut, none dropped", st)
	}
}
