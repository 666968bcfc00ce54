package afpacket_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// markerType is the EtherType of the test's own frames (IEEE 802 local
// experimental).
const markerType = 0x88b5

// wire is a veth pair va (in namespace a) <-> vb (in namespace b) with a
// packet socket on each end.
type wire struct {
	a, b   *netnstest.NS
	sa, sb *afpacket.Socket
}

func newWire(t testing.TB) *wire { return newWireOpen(t, open) }

// newWireOpen is newWire with the sockets opened by openSocket.
func newWireOpen(t testing.TB, openSocket func(testing.TB, *netnstest.NS, string) *afpacket.Socket) *wire {
	w := &wire{a: netnstest.New(t, "afp-a"), b: netnstest.New(t, "afp-b")}
	w.a.IP("link", "add", "va", "mtu", "1400", "type", "veth", "peer", "name", "vb", "netns", w.b.Name)
	w.a.IP("link", "set", "va", "up")
	w.b.IP("link", "set", "vb", "up")
	w.a.WaitActive("va")
	w.b.WaitActive("vb")
	w.sa = openSocket(t, w.a, "va")
	w.sb = openSocket(t, w.b, "vb")
	return w
}

// open opens a socket inside ns, closed at cleanup; a watchdog closes it
// after 20s so that a missing frame fails the test instead of hanging it.
func open(t testing.TB, ns *netnstest.NS, ifname string) *afpacket.Socket {
	t.Helper()
	var s *afpacket.Socket
	var err error
	ns.Do(func() { s, err = afpacket.Open(ifname) })
	if err != nil {
		t.Fatal(err)
	}
	devtest.CloseAtCleanup(t, s)
	return s
}

// readFrames reads from s, in batches of 4 buffers of size bytes, until at
// least n frames have come, and returns them.
func readFrames(t *testing.T, s *afpacket.Socket, n, size int) []string {
	t.Helper()
	bufs, sizes := devtest.MakeBatch(4, size)
	var got []string
	for len(got) < n {
		k, err := s.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range k {
			got = append(got, string(bufs[i][:sizes[i]]))
		}
	}
	return got
}

func marker(dst, src link.HardwareAddr, text string, size int) []byte {
	f := make([]byte, max(size, 14+len(text)))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], markerType)
	copy(f[14:], text)
	return f
}

func etherType(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:14]) }

func TestOpenReportsInterface(t *testing.T) {
	w := newWire(t)
	var links []struct {
		Address string `json:"address"`
		MTU     int    `json:"mtu"`
	}
	if err := json.Unmarshal([]byte(w.a.IP("-j", "link", "show", "va")), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j link show va: %v", err)
	}
	if got := w.sa.HWAddr().String(); got != links[0].Address {
		t.Errorf("HWAddr() = %s, want %s", got, links[0].Address)
	}
	if got := w.sa.MTU(); got != 1400 {
		t.Errorf("MTU() = %d, want 1400", got)
	}
	if got := w.sa.Name(); got != "va" {
		t.Errorf("Name() = %q, want va", got)
	}
	var err error
	w.a.Do(func() { _, err = afpacket.Open("nope0") })
	if err == nil || !strings.Contains(err.Error(), "nope0") {
		t.Errorf("Open(nope0) = %v, want an error naming nope0", err)
	}
}

// TestReceivesIncomingOnly sends frames both ways: each socket reads the
// frames its peer sent, and neither sees the frames transmitted on its own
// interface, whether by itself or by its kernel (ARP requests).
func TestReceivesIncomingOnly(t *testing.T) {
	w := newWire(t)
	// A writes three frames; B reads them.
	out := make([][]byte, 3)
	for i := range out {
		out[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("a-to-b %d", i), 60)
	}
	if n, err := w.sa.Write(out, 0); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	bufs, sizes := devtest.MakeBatch(8, 2048)
	for got := 0; got < 3; {
		n, err := w.sb.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			f := bufs[i][:sizes[i]]
			want := fmt.Sprintf("a-to-b %d", got)
			if etherType(f) != markerType || !strings.HasPrefix(string(f[14:]), want) {
				t.Fatalf("B read % x, want marker %q", f, want)
			}
			got++
		}
	}

	// A's kernel sends ARP requests out of va; B sees them.
	w.a.IP("addr", "add", "10.98.0.1/24", "dev", "va")
	w.a.Start(w.a.Command("ping", "-n", "-c", "1", "-W", "1", "10.98.0.2"))
	for sawARP := false; !sawARP; {
		n, err := w.sb.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatalf("B did not see A's ARP request: %v", err)
		}
		for i := range n {
			sawARP = sawARP || etherType(bufs[i][:sizes[i]]) == 0x0806
		}
	}

	// B writes a frame to A. Everything A transmitted went out before it,
	// so if A's socket saw outgoing frames they would come first.
	if n, err := w.sb.Write([][]byte{marker(w.sa.HWAddr(), w.sb.HWAddr(), "b-to-a", 60)}, 0); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	n, err := w.sa.Read(bufs, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f := bufs[0][:sizes[0]]; n != 1 || etherType(f) != markerType || !strings.HasPrefix(string(f[14:]), "b-to-a") {
		t.Errorf("A's first Read returned %d frames starting with % x; want only B's marker", n, f)
	}
}

// TestLongFrameTruncated: a frame longer than its buffer that is not a
// super-frame is handed on truncated to the buffer, as read(2) truncates,
// and the frame behind it comes with the same Read.
func TestLongFrameTruncated(t *testing.T) {
	w := newWire(t)
	big := marker(w.sb.HWAddr(), w.sa.HWAddr(), "big", 1000)
	for i := 20; i < len(big); i++ {
		big[i] = byte(i)
	}
	out := [][]byte{big, marker(w.sb.HWAddr(), w.sa.HWAddr(), "small", 60)}
	if n, err := w.sa.Write(out, 0); n != 2 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got := readFrames(t, w.sb, 2, 100)
	if len(got) != 2 || got[0] != string(big[:100]) || got[1] != string(out[1]) {
		t.Errorf("read %d frames of %d and %d bytes; want the first 100 bytes of the long frame, then the 60-byte one", len(got), len(got[0]), len(got[1]))
	}
	if got := w.sb.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d, want 0", got)
	}
}

// TestWriteSkipsRejectedFrame checks that a frame larger than the MTU fails
// without holding up the frames after it.
func TestWriteSkipsRejectedFrame(t *testing.T) {
	w := newWire(t)
	out := [][]byte{
		marker(w.sb.HWAddr(), w.sa.HWAddr(), "one", 60),
		marker(w.sb.HWAddr(), w.sa.HWAddr(), "too-big", 14+1400+100),
		marker(w.sb.HWAddr(), w.sa.HWAddr(), "two", 60),
	}
	n, err := w.sa.Write(out, 0)
	if n != 2 || err == nil {
		t.Fatalf("Write = %d, %v; want 2 and an error", n, err)
	}
	var got []string
	for _, f := range readFrames(t, w.sb, 2, 2048) {
		got = append(got, strings.TrimRight(f[14:], "\x00"))
	}
	if got[0] != "one" || got[1] != "two" {
		t.Errorf("B read %q, want [one two]", got)
	}
}

func TestNoAllocs(t *testing.T) {
	w := newWire(t)
	out := make([][]byte, 32)
	for i := range out {
		out[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), "x", 1414)
	}
	bufs, sizes := devtest.MakeBatch(32, 2048)
	round := func() { devtest.Exchange(t, w.sa, w.sb, out, bufs, sizes, 0) }
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+Read of batches of %d frames: %g allocations per frame, want 0", len(out), allocs)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	w := newWire(t)
	if _, err := devtest.BlockedRead(t, w.sa, "Close", func() { w.sa.Close() }); err != link.ErrClosed {
		t.Errorf("blocked Read returned %v, want link.ErrClosed", err)
	}
}

// BenchmarkVeth measures 32 frames of 1414 bytes written on one end of a
// veth pair and read on the other.
func BenchmarkVeth(b *testing.B) {
	w := newWire(b)
	const batch = 32
	out := make([][]byte, batch)
	for i := range out {
		out[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), "x", 1414)
	}
	bufs, sizes := devtest.MakeBatch(batch, 2048)
	b.ReportAllocs()
	b.SetBytes(batch * 1414)
	reads := 0
	for b.Loop() {
		reads += devtest.Exchange(b, w.sa, w.sb, out, bufs, sizes, 0)
	}
	b.ReportMetric(float64(b.N*batch)/float64(reads), "frames/read")
}

// TestQueueDrops: frames the kernel could not queue because the socket's
// receive buffer was full are counted: with nobody reading, 20,000
// 1000-byte frames (more than the 16 MiB buffer holds) are each either
// read afterwards or in QueueDrops, exactly, and reading the count again
// does not count them twice.
func TestQueueDrops(t *testing.T) {
	w := newWire(t)
	var s *afpacket.Socket
	var err error
	onlyMarkers := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: markerType, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	w.b.Do(func() { s, err = afpacket.OpenFiltered("vb", onlyMarkers) })
	if err != nil {
		t.Fatal(err)
	}
	devtest.CloseAtCleanup(t, s)
	const n = 20000
	batch := make([][]byte, 64)
	for sent := 0; sent < n; sent += len(batch) {
		for i := range batch {
			batch[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("f%d", sent+i), 1000)
		}
		if k, err := w.sa.Write(batch[:min(len(batch), n-sent)], 0); k != min(len(batch), n-sent) || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
	}
	drops := s.QueueDrops()
	if drops == 0 || drops >= n {
		t.Fatalf("QueueDrops = %d of %d frames sent, want some, not all", drops, n)
	}
	got := readFrames(t, s, n-int(drops), 2048)
	if len(got) != n-int(drops) {
		t.Errorf("read %d frames and %d were dropped; want %d in all", len(got), drops, n)
	}
	if again := s.QueueDrops(); again != drops {
		t.Errorf("QueueDrops read again = %d, want %d", again, drops)
	}
	t.Logf("%d of %d frames dropped at the full receive queue", drops, n)
}
