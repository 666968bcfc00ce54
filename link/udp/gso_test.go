package udp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link/udp"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// gsoDatagram is datagram i of a test: size bytes (with headroom bytes in
// front for WriteTo's offset) that no other datagram of the test has.
func gsoDatagram(headroom, i, size int) []byte {
	p := make([]byte, headroom+size)
	d := p[headroom:]
	for k := range d {
		d[k] = byte(i*31 + k + k>>8)
	}
	if size >= 4 {
		binary.BigEndian.PutUint32(d, uint32(i))
	}
	return p
}

// plainListen opens a standard library UDP socket (no UDP_GRO, so the kernel
// hands it every segment as a datagram of its own) on addr inside ns.
func plainListen(t *testing.T, ns *netnstest.NS, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	var err error
	ns.Do(func() { c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr))) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// expectDatagrams reads len(want) datagrams from c and checks that they are
// want, byte for byte and in order, and that no further datagram follows.
func expectDatagrams(t *testing.T, c *net.UDPConn, want [][]byte) {
	t.Helper()
	buf := make([]byte, 1<<17)
	for i, w := range want {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%v: datagram %d of %d: %v", addrOf(c), i, len(want), err)
		}
		if !bytes.Equal(buf[:n], w) {
			t.Fatalf("%v: datagram %d of %d is %d bytes starting % x, want %d bytes starting % x",
				addrOf(c), i, len(want), n, buf[:min(n, 8)], len(w), w[:min(len(w), 8)])
		}
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%v: a datagram more than the %d sent: %d bytes starting % x (err %v)", addrOf(c), len(want), n, buf[:min(n, 8)], err)
	}
}

func payloads(out [][]byte, headroom int, idx ...int) [][]byte {
	p := make([][]byte, len(idx))
	for k, i := range idx {
		p[k] = out[i][headroom:]
	}
	return p
}

func listenOpts(t testing.TB, ns *netnstest.NS, addr string, opts ...udp.Option) *udp.Conn {
	t.Helper()
	var c *udp.Conn
	var err error
	ns.Do(func() { c, err = udp.Listen(netip.MustParseAddrPort(addr), opts...) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func checkStats(t *testing.T, c *udp.Conn, want udp.WriteStats) {
	t.Helper()
	if got := c.WriteStats(); got != want {
		t.Errorf("WriteStats() = %+v, want %+v", got, want)
	}
}

// TestGSOControlBufferSize: the control buffer of a message holds the cmsg
// space Controllen announces.
func TestGSOControlBufferSize(t *testing.T) {
	if udp.SizeofGSOCmsg < unix.CmsgSpace(2) {
		t.Fatalf("control buffer of %d bytes, cmsg space %d", udp.SizeofGSOCmsg, unix.CmsgSpace(2))
	}
}

// TestGSORunIsOneMessage: 10 datagrams of 1472 bytes and one of 300 to one
// peer leave as one message and arrive as the 11 datagrams, in order.
func TestGSORunIsOneMessage(t *testing.T) {
	for _, tc := range []struct{ name, send, recv, to string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"ipv6", "[::1]:0", "[::1]:0", ""},
		{"ipv4-mapped", "[::]:0", "127.0.0.1:0", "::ffff:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := dualStackNS(t)
			a := listenOpts(t, ns, tc.send)
			r := plainListen(t, ns, tc.recv)
			dst := addrOf(r)
			if tc.to != "" {
				dst = netip.AddrPortFrom(netip.MustParseAddr(tc.to), dst.Port())
			}
			if !a.GSO() {
				t.Fatal("GSO() = false on a fresh Conn, want true (the kernel has UDP_SEGMENT)")
			}
			const headroom = 16
			var out [][]byte
			var to []netip.AddrPort
			for i := range 11 {
				size := 1472
				if i == 10 {
					size = 300
				}
				out = append(out, gsoDatagram(headroom, i, size))
				to = append(to, dst)
			}
			if n, err := a.WriteTo(out, to, headroom); n != 11 || err != nil {
				t.Fatalf("WriteTo = %d, %v; want 11, nil", n, err)
			}
			checkStats(t, a, udp.WriteStats{Messages: 1, GSOMessages: 1, GSODatagrams: 11})
			expectDatagrams(t, r, payloads(out, headroom, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
			if !a.GSO() {
				t.Error("GSO() = false after a GSO message the kernel took")
			}
		})
	}
}

// TestGSORunsSplit: a run ends at another destination, at a longer
// datagram, after a shorter one, and at an empty one; a datagram left out
// for its family does not end it.
func TestGSORunsSplit(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a := listenOpts(t, ns, "127.0.0.1:0")
	ra, rb := plainListen(t, ns, "127.0.0.1:0"), plainListen(t, ns, "127.0.0.1:0")
	A, B := addrOf(ra), addrOf(rb)
	v6 := netip.MustParseAddrPort("[2001:db8::1]:4789")
	type dg struct {
		to   netip.AddrPort
		size int
	}
	plan := []dg{
		{A, 1000}, {A, 1000}, {A, 1000}, // message 0: GSO, 3
		{B, 1000},            // message 1: another destination
		{A, 1000}, {A, 1000}, // message 2: GSO, 2
		{A, 1200}, {A, 1200}, {A, 500}, // message 3: longer starts a run, shorter ends it: GSO, 3
		{A, 500}, {A, 500}, // message 4: GSO, 2
		{A, 0},    // message 5: empty, alone
		{A, 100},  // message 6: GSO, 2 with 14
		{v6, 100}, // left out
		{A, 100},
	}
	const headroom = 8
	out := make([][]byte, len(plan))
	to := make([]netip.AddrPort, len(plan))
	for i, d := range plan {
		out[i], to[i] = gsoDatagram(headroom, i, d.size), d.to
	}
	n, err := a.WriteTo(out, to, headroom)
	if n != 14 || err == nil || !strings.Contains(err.Error(), "2001:db8::1") {
		t.Fatalf("WriteTo = %d, %v; want 14 and an error naming the IPv6 destination", n, err)
	}
	checkStats(t, a, udp.WriteStats{Messages: 7, GSOMessages: 5, GSODatagrams: 12})
	expectDatagrams(t, ra, payloads(out, headroom, 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14))
	expectDatagrams(t, rb, payloads(out, headroom, 3))
}

// TestGSORunLimits: a run is cut at 64 datagrams (BatchSize, the kernel's
// UDP_MAX_SEGMENTS) and before 65507 bytes.
func TestGSORunLimits(t *testing.T) {
	for _, tc := range []struct {
		name        string
		count, size int
		want        udp.WriteStats
	}{
		// 64 + 64 + 22
		{"150x100", 150, 100, udp.WriteStats{Messages: 3, GSOMessages: 3, GSODatagrams: 150}},
		// 64 of 1023 bytes are 65472 bytes: one message.
		{"64x1023", 64, 1023, udp.WriteStats{Messages: 1, GSOMessages: 1, GSODatagrams: 64}},
		// 54 of 1200 bytes are 64800, 55 would be 66000: 54 + 10.
		{"64x1200", 64, 1200, udp.WriteStats{Messages: 2, GSOMessages: 2, GSODatagrams: 64}},
		// 65507 bytes each: no two fit one message.
		{"3x65507", 3, 65507, udp.WriteStats{Messages: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t, "udp")
			a := listenOpts(t, ns, "127.0.0.1:0")
			r := plainListen(t, ns, "127.0.0.1:0")
			if err := r.SetReadBuffer(4 << 20); err != nil {
				t.Fatal(err)
			}
			out := make([][]byte, tc.count)
			to := make([]netip.AddrPort, tc.count)
			idx := make([]int, tc.count)
			for i := range out {
				out[i], to[i], idx[i] = gsoDatagram(0, i, tc.size), addrOf(r), i
			}
			if n, err := a.WriteTo(out, to, 0); n != tc.count || err != nil {
				t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, tc.count)
			}
			checkStats(t, a, tc.want)
			expectDatagrams(t, r, payloads(out, 0, idx...))
		})
	}
}

// fallbackBatch is a batch of plain and GSO messages: to b, a run of 5 to
// a, to b, a run of 3 to a. It returns the datagrams and destinations.
func fallbackBatch(a, b netip.AddrPort) ([][]byte, []netip.AddrPort) {
	plan := []struct {
		to   netip.AddrPort
		size int
	}{{b, 300}, {a, 1000}, {a, 1000}, {a, 1000}, {a, 1000}, {a, 1000}, {b, 300}, {a, 800}, {a, 800}, {a, 800}}
	out := make([][]byte, len(plan))
	to := make([]netip.AddrPort, len(plan))
	for i, d := range plan {
		out[i], to[i] = gsoDatagram(0, i, d.size), d.to
	}
	return out, to
}

// checkFallback sends fallbackBatch from c, whose kernel refuses GSO, and
// checks that every datagram arrives once, that GSO is off afterwards, and
// that a second batch goes out one datagram a message.
func checkFallback(t *testing.T, c *udp.Conn, ra, rb *net.UDPConn) {
	t.Helper()
	if !c.GSO() {
		t.Fatal("GSO() = false before the kernel refused it")
	}
	out, to := fallbackBatch(addrOf(ra), addrOf(rb))
	if n, err := c.WriteTo(out, to, 0); n != len(out) || err != nil {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, len(out))
	}
	// The first run is refused and split; the second is split without
	// being tried.
	checkStats(t, c, udp.WriteStats{Messages: 10, GSORefused: 1})
	if c.GSO() {
		t.Error("GSO() = true after the kernel refused a GSO message")
	}
	expectDatagrams(t, ra, payloads(out, 0, 1, 2, 3, 4, 5, 7, 8, 9))
	expectDatagrams(t, rb, payloads(out, 0, 0, 6))

	if n, err := c.WriteTo(out, to, 0); n != len(out) || err != nil {
		t.Fatalf("second WriteTo = %d, %v; want %d, nil", n, err, len(out))
	}
	checkStats(t, c, udp.WriteStats{Messages: 20, GSORefused: 1})
	expectDatagrams(t, ra, payloads(out, 0, 1, 2, 3, 4, 5, 7, 8, 9))
	expectDatagrams(t, rb, payloads(out, 0, 0, 6))
}

// TestGSOFallbackEINVAL: a socket that sends without UDP checksums
// (SO_NO_CHECK) cannot use GSO, the kernel says EINVAL.
func TestGSOFallbackEINVAL(t *testing.T) {
	ns := netnstest.New(t, "udp")
	c := listenOpts(t, ns, "127.0.0.1:0")
	if err := udp.SetSockoptInt(c, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
		t.Fatal(err)
	}
	checkFallback(t, c, plainListen(t, ns, "127.0.0.1:0"), plainListen(t, ns, "127.0.0.1:0"))
}

// TestGSOFallbackInjected: the other errors that refuse GSO, from a
// stand-in for the kernel (this one no longer says EIO for a device without
// checksum offload, see TestGSODeviceWithoutChecksumOffload): the refused
// run and the later one are split, and only the refused one was tried.
func TestGSOFallbackInjected(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EIO, unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP} {
		t.Run(unix.ErrnoName(errno), func(t *testing.T) {
			refused, restore := udp.RefuseGSO(errno)
			defer restore()
			ns := netnstest.New(t, "udp")
			c := listenOpts(t, ns, "127.0.0.1:0")
			checkFallback(t, c, plainListen(t, ns, "127.0.0.1:0"), plainListen(t, ns, "127.0.0.1:0"))
			if got := refused(); got != 1 {
				t.Errorf("the kernel was asked to take %d GSO messages, want 1 (the first refusal ends GSO)", got)
			}
		})
	}
}

// TestGSOOtherErrorSkipsMessage: an error that does not refuse GSO (here
// EPERM, as from a firewall) skips the GSO message with all its datagrams,
// as it skips a plain one, and leaves GSO on.
func TestGSOOtherErrorSkipsMessage(t *testing.T) {
	ns := netnstest.New(t, "udp")
	c := listenOpts(t, ns, "127.0.0.1:0")
	ra, rb := plainListen(t, ns, "127.0.0.1:0"), plainListen(t, ns, "127.0.0.1:0")
	out, to := fallbackBatch(addrOf(ra), addrOf(rb))
	_, restore := udp.RefuseGSO(unix.EPERM)
	n, err := c.WriteTo(out, to, 0)
	restore()
	if n != 2 || !errors.Is(err, unix.EPERM) {
		t.Fatalf("WriteTo = %d, %v; want 2 (the runs of 5 and 3 fail) and EPERM", n, err)
	}
	if !c.GSO() {
		t.Error("GSO() = false after EPERM, want true")
	}
	checkStats(t, c, udp.WriteStats{Messages: 2})
	expectDatagrams(t, rb, payloads(out, 0, 0, 6))
	expectDatagrams(t, ra, nil)

	if n, err := c.WriteTo(out, to, 0); n != len(out) || err != nil {
		t.Fatalf("WriteTo without the fault = %d, %v; want %d, nil", n, err, len(out))
	}
	checkStats(t, c, udp.WriteStats{Messages: 6, GSOMessages: 2, GSODatagrams: 8})
	expectDatagrams(t, ra, payloads(out, 0, 1, 2, 3, 4, 5, 7, 8, 9))
	expectDatagrams(t, rb, payloads(out, 0, 0, 6))
}

// TestGSODeviceWithoutChecksumOffload: through a veth with tx checksumming
// off, between two namespaces, every datagram arrives once. Older kernels
// refuse GSO there with EIO (and WriteTo falls back); recent ones (6.18
// here) checksum in software and take it.
func TestGSODeviceWithoutChecksumOffload(t *testing.T) {
	if _, err := exec.LookPath("ethtool"); err != nil {
		t.Skip("needs ethtool to turn off a veth's tx checksum offload")
	}
	src, dst := netnstest.New(t, "udp"), netnstest.New(t, "udp")
	src.IP("link", "add", "gso0", "type", "veth", "peer", "name", "gso1", "netns", dst.Name)
	src.IP("addr", "add", "10.77.0.1/24", "dev", "gso0")
	dst.IP("addr", "add", "10.77.0.2/24", "dev", "gso1")
	src.IP("link", "set", "gso0", "up")
	dst.IP("link", "set", "gso1", "up")
	src.MustExec("ethtool", "-K", "gso0", "tx", "off")
	src.WaitActive("gso0")
	dst.WaitActive("gso1")
	c := listenOpts(t, src, "10.77.0.1:0")
	ra, rb := plainListen(t, dst, "10.77.0.2:0"), plainListen(t, dst, "10.77.0.2:0")
	out, to := fallbackBatch(addrOf(ra), addrOf(rb))
	if n, err := c.WriteTo(out, to, 0); n != len(out) || err != nil {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, len(out))
	}
	took := udp.WriteStats{Messages: 4, GSOMessages: 2, GSODatagrams: 8}
	refused := udp.WriteStats{Messages: 10, GSORefused: 1}
	switch st := c.WriteStats(); st {
	case took:
		if !c.GSO() {
			t.Error("GSO() = false, though the kernel took the GSO messages")
		}
	case refused:
		t.Logf("the kernel refused GSO: %+v", st)
		if c.GSO() {
			t.Error("GSO() = true after the kernel refused a GSO message")
		}
	default:
		t.Errorf("WriteStats() = %+v, want %+v (GSO taken) or %+v (refused)", st, took, refused)
	}
	expectDatagrams(t, ra, payloads(out, 0, 1, 2, 3, 4, 5, 7, 8, 9))
	expectDatagrams(t, rb, payloads(out, 0, 0, 6))
}

// TestGSOOff: WithGSO(false) sends every datagram as a message of its own.
func TestGSOOff(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a := listenOpts(t, ns, "127.0.0.1:0", udp.WithGSO(false))
	r := plainListen(t, ns, "127.0.0.1:0")
	if a.GSO() {
		t.Fatal("GSO() = true with WithGSO(false)")
	}
	var out [][]byte
	var to []netip.AddrPort
	for i := range 11 {
		size := 1472
		if i == 10 {
			size = 300
		}
		out = append(out, gsoDatagram(0, i, size))
		to = append(to, addrOf(r))
	}
	if n, err := a.WriteTo(out, to, 0); n != 11 || err != nil {
		t.Fatalf("WriteTo = %d, %v; want 11, nil", n, err)
	}
	checkStats(t, a, udp.WriteStats{Messages: 11})
	expectDatagrams(t, r, payloads(out, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
}

// BenchmarkWriteToGSO measures WriteTo of batches of 32 datagrams of 1450
// bytes to one peer over loopback, with GSO and without, each batch read
// back by the peer: ns/datagram is the whole round, write-ns/datagram the
// WriteTo alone (on loopback it includes the delivery to the receiving
// socket, segmentation included).
func BenchmarkWriteToGSO(b *testing.B) {
	for _, gso := range []bool{true, false} {
		name := "gso=off"
		if gso {
			name = "gso=on"
		}
		b.Run(name, func(b *testing.B) {
			const count, size = 32, 1450
			ns := netnstest.New(b, "udp")
			src := listenOpts(b, ns, "127.0.0.1:0", udp.WithGSO(gso))
			dst := listen(b, ns, "127.0.0.1:0")
			if src.GSO() != gso {
				b.Fatalf("GSO() = %v, want %v", src.GSO(), gso)
			}
			out, _, to := makeBatch(count, size)
			for i := range to {
				to[i] = dst.LocalAddr()
			}
			bufs, sizes, from := makeBatch(udp.BatchSize, 2048)
			b.ReportAllocs()
			b.SetBytes(count * size)
			var writing time.Duration
			for b.Loop() {
				start := time.Now()
				if n, err := src.WriteTo(out, to, 0); n != count || err != nil {
					b.Fatalf("WriteTo = %d, %v", n, err)
				}
				writing += time.Since(start)
				readAll(b, dst, bufs, sizes, from, count)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/datagram")
			b.ReportMetric(float64(writing.Nanoseconds())/float64(b.N*count), "write-ns/datagram")
			st := src.WriteStats()
			b.ReportMetric(float64(st.Messages)/float64(b.N), "messages/batch")
		})
	}
}

// TestGSORunOverMTU: the kernel does not segment into fragments, so a run
// of datagrams longer than the route's MTU fails as a GSO message
// (EMSGSIZE; EINVAL on older kernels, which turns GSO off), where it
// would fragment them one by one. WriteTo sends them one by one and builds
// no such runs again, while runs of datagrams that fit the MTU still go
// with GSO; every datagram arrives, fragmented and reassembled or whole.
func TestGSORunOverMTU(t *testing.T) {
	ns := netnstest.New(t, "udp")
	ns.IP("link", "set", "lo", "mtu", "1500")
	a := listenOpts(t, ns, "127.0.0.1:0")
	r := plainListen(t, ns, "127.0.0.1:0")
	// A run of 5 datagrams too long for the MTU, then one of 3 that fit.
	out := make([][]byte, 8)
	to := make([]netip.AddrPort, len(out))
	idx := make([]int, len(out))
	for i := range out {
		size := 2000
		if i >= 5 {
			size = 1000
		}
		out[i], to[i], idx[i] = gsoDatagram(0, i, size), addrOf(r), i
	}
	for round := 1; round <= 2; round++ {
		if n, err := a.WriteTo(out, to, 0); n != len(out) || err != nil {
			t.Fatalf("WriteTo %d = %d, %v; want %d, nil", round, n, err, len(out))
		}
		expectDatagrams(t, r, payloads(out, 0, idx...))
	}
	if !a.GSO() {
		// The first round sent 5 + 3 datagrams one by one, the second 8.
		t.Logf("the kernel said EINVAL, not EMSGSIZE: GSO is off")
		checkStats(t, a, udp.WriteStats{Messages: 16, GSORefused: 1})
		return
	}
	// The first round: the 5 long datagrams and the first short one (a
	// shorter last datagram may end a run) as one message, refused and
	// sent one by one, then the other 2 short ones as one message. The
	// second: the 5 long ones one by one untried, the 3 short ones as one
	// message.
	checkStats(t, a, udp.WriteStats{Messages: 6 + 1 + 5 + 1, GSOMessages: 2, GSODatagrams: 2 + 3, GSOOversize: 1})
}
