package udp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/udp"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

func checkReadStats(t *testing.T, c *udp.Conn, want udp.ReadStats) {
	t.Helper()
	if got := c.ReadStats(); got != want {
		t.Errorf("ReadStats() = %+v, want %+v", got, want)
	}
}

// sent is a datagram a test sent: its payload and its sender.
type sent struct {
	p    []byte
	from netip.AddrPort
}

// send sends datagrams ids (each of size bytes, numbered from first) from a
// to dst in one WriteTo and returns them.
func send(t *testing.T, a *udp.Conn, dst netip.AddrPort, first, count, size int) []sent {
	t.Helper()
	out := make([][]byte, count)
	to := make([]netip.AddrPort, count)
	s := make([]sent, count)
	for i := range out {
		out[i], to[i] = gsoDatagram(0, first+i, size), dst
		s[i] = sent{out[i], a.LocalAddr()}
	}
	if n, err := a.WriteTo(out, to, 0); n != count || err != nil {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, count)
	}
	return s
}

// receive reads with ReadFrom into batches of nbuf buffers of bufSize
// bytes (headroom offset) until len(want) datagrams have arrived and
// checks them against want: bytes, order, source, and Large for those
// longer than their buffer. It returns how many datagrams each call gave.
func receive(t *testing.T, c *udp.Conn, nbuf, bufSize, offset int, want []sent) []int {
	t.Helper()
	bufs, sizes, from := makeBatch(nbuf, offset+bufSize)
	var calls []int
	got := 0
	for got < len(want) {
		n, err := c.ReadFrom(bufs, sizes, from, offset)
		if err != nil {
			t.Fatalf("ReadFrom after %d of %d datagrams: %v", got, len(want), err)
		}
		calls = append(calls, n)
		for i := range n {
			if got+i >= len(want) {
				t.Fatalf("ReadFrom gave %d datagrams more than the %d sent", got+n-len(want), len(want))
			}
			w := want[got+i]
			d := bufs[i][offset:]
			if sizes[i] > bufSize {
				if !bytes.Equal(d, w.p[:bufSize]) {
					t.Errorf("datagram %d (%d bytes): the buffer does not hold its start", got+i, sizes[i])
				}
				d = c.Large(i)
			} else {
				d = d[:sizes[i]]
				if l := c.Large(i); l != nil {
					t.Errorf("datagram %d fits its buffer, but Large(%d) is %d bytes", got+i, i, len(l))
				}
			}
			if !bytes.Equal(d, w.p) {
				t.Fatalf("datagram %d: got %d bytes starting % x, want %d bytes starting % x",
					got+i, len(d), d[:min(len(d), 8)], len(w.p), w.p[:min(len(w.p), 8)])
			}
			if from[i] != w.from {
				t.Errorf("datagram %d from %v, want %v", got+i, from[i], w.from)
			}
			if !bytes.Equal(bufs[i][:offset], make([]byte, offset)) {
				t.Errorf("datagram %d: ReadFrom wrote into the headroom", got+i)
			}
		}
		got += n
		// The caller owns its buffers again: what is pending must not
		// be in them.
		for _, buf := range bufs {
			for k := range buf[offset:] {
				buf[offset+k] = 0xee
			}
		}
	}
	return calls
}

func groPair(t *testing.T, gro bool) (a, b *udp.Conn) {
	ns := netnstest.New(t, "udp")
	a = listenOpts(t, ns, "127.0.0.1:0")
	b = listenOpts(t, ns, "127.0.0.1:0", udp.WithGRO(gro))
	if !a.GSO() {
		t.Fatal("the sender has no GSO")
	}
	if b.GRO() != gro {
		t.Fatalf("GRO() = %v, want %v (the kernel has UDP_GRO)", b.GRO(), gro)
	}
	return a, b
}

// TestGROTrain: one GSO message of 40 datagrams of 1400 bytes reaches a
// GRO socket over loopback as one message, which ReadFrom with 64
// buffers returns as the 40 datagrams in one call.
func TestGROTrain(t *testing.T) {
	for _, tc := range []struct{ name, send, recv, to string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0", ""},
		{"ipv6", "[::1]:0", "[::1]:0", ""},
		{"ipv4-to-dual-stack", "127.0.0.1:0", "[::]:0", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := dualStackNS(t)
			a, b := listenOpts(t, ns, tc.send), listenOpts(t, ns, tc.recv)
			if !b.GRO() {
				t.Fatal("GRO() = false on a fresh Conn, want true (the kernel has UDP_GRO)")
			}
			dst := b.LocalAddr()
			if tc.to != "" {
				dst = netip.AddrPortFrom(netip.MustParseAddr(tc.to), dst.Port())
			}
			want := send(t, a, dst, 0, 40, 1400)
			checkStats(t, a, udp.WriteStats{Messages: 1, GSOMessages: 1, GSODatagrams: 40})
			if calls := receive(t, b, udp.BatchSize, 2048, 16, want); fmt.Sprint(calls) != "[40]" {
				t.Errorf("ReadFrom calls gave %v datagrams, want [40]", calls)
			}
			checkReadStats(t, b, udp.ReadStats{Messages: 1, GROMessages: 1, GRODatagrams: 40})
		})
	}
}

// TestGROPending: with 8 buffers, the 40 datagrams of one GRO message come
// out in 5 calls of 8, the last 4 of them from what the first kept, and the
// next datagram after them from the socket again.
// With buffers of 64 KB, the whole message lands in the first buffer, and
// what is pending must be moved out of it before the caller gets it back.
func TestGROPending(t *testing.T) {
	for _, bufSize := range []int{1500, 65536} {
		t.Run(fmt.Sprint(bufSize), func(t *testing.T) {
			a, b := groPair(t, true)
			want := send(t, a, b.LocalAddr(), 0, 40, 1400)
			if calls := receive(t, b, 8, bufSize, 0, want); fmt.Sprint(calls) != "[8 8 8 8 8]" {
				t.Errorf("ReadFrom calls gave %v datagrams, want [8 8 8 8 8]", calls)
			}
			checkReadStats(t, b, udp.ReadStats{Messages: 1, GROMessages: 1, GRODatagrams: 40})
			want = send(t, a, b.LocalAddr(), 40, 1, 100)
			if calls := receive(t, b, 8, bufSize, 0, want); fmt.Sprint(calls) != "[1]" {
				t.Errorf("then ReadFrom calls gave %v datagrams, want [1]", calls)
			}
			checkReadStats(t, b, udp.ReadStats{Messages: 2, GROMessages: 1, GRODatagrams: 40})
		})
	}
}

// TestGROPendingAfterClose: datagrams still pending at Close are not
// handed out; ReadFrom says link.ErrClosed.
func TestGROPendingAfterClose(t *testing.T) {
	a, b := groPair(t, true)
	send(t, a, b.LocalAddr(), 0, 40, 1400)
	bufs, sizes, from := makeBatch(8, 1500)
	if n, err := b.ReadFrom(bufs, sizes, from, 0); n != 8 || err != nil {
		t.Fatalf("ReadFrom = %d, %v; want 8, nil", n, err)
	}
	b.Close()
	if n, err := b.ReadFrom(bufs, sizes, from, 0); n != 0 || err != link.ErrClosed {
		t.Errorf("ReadFrom after Close = %d, %v; want 0, link.ErrClosed", n, err)
	}
}

// TestGROMixed: plain datagrams, GRO trains (one with a shorter last
// datagram, one whose datagrams are longer than the buffers) and a large
// datagram, queued before the read, come out in order, byte for byte,
// whatever the number of buffers per call: a train's datagrams are
// written over the buffers later messages arrived in, which must be kept
// first, and what does not fit is handed out by the next calls.
func TestGROMixed(t *testing.T) {
	for _, nbuf := range []int{1, 3, 8, 20, udp.BatchSize} {
		t.Run(fmt.Sprint(nbuf), func(t *testing.T) {
			a, b := groPair(t, true)
			dst := b.LocalAddr()
			var want []sent
			want = append(want, send(t, a, dst, 0, 1, 100)...)
			want = append(want, send(t, a, dst, 1, 10, 1000)...)  // a train of 10
			want = append(want, send(t, a, dst, 11, 1, 20000)...) // large, alone
			want = append(want, send(t, a, dst, 12, 1, 50)...)    // plain
			// 5 x 1000 and 300: a train whose last datagram is shorter.
			w := send(t, a, dst, 13, 5, 1000)
			want = append(want, w...)
			want = append(want, send(t, a, dst, 18, 1, 300)...)  // alone: another WriteTo
			want = append(want, send(t, a, dst, 19, 3, 3000)...) // a train of datagrams longer than the buffers
			want = append(want, send(t, a, dst, 22, 1, 7)...)
			receive(t, b, nbuf, 1500, 8, want)
			checkReadStats(t, b, udp.ReadStats{Messages: 8, GROMessages: 3, GRODatagrams: 18})
			if d := b.Dropped(); d != 0 {
				t.Errorf("Dropped() = %d", d)
			}
		})
	}
}

// TestGROShortLast: one GSO message whose last datagram is shorter is one
// GRO message; it is cut at the segment size.
func TestGROShortLast(t *testing.T) {
	a, b := groPair(t, true)
	dst := b.LocalAddr()
	out := [][]byte{gsoDatagram(0, 0, 1200), gsoDatagram(0, 1, 1200), gsoDatagram(0, 2, 1200), gsoDatagram(0, 3, 17)}
	to := []netip.AddrPort{dst, dst, dst, dst}
	if n, err := a.WriteTo(out, to, 0); n != 4 || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	want := []sent{{out[0], a.LocalAddr()}, {out[1], a.LocalAddr()}, {out[2], a.LocalAddr()}, {out[3], a.LocalAddr()}}
	if calls := receive(t, b, 3, 1500, 0, want); fmt.Sprint(calls) != "[3 1]" {
		t.Errorf("ReadFrom calls gave %v datagrams, want [3 1]", calls)
	}
	checkReadStats(t, b, udp.ReadStats{Messages: 1, GROMessages: 1, GRODatagrams: 4})
}

// TestGROLargeDatagram: a datagram of 20000 bytes, sent alone, has no
// UDP_GRO cmsg and still comes whole through Large, as without GRO.
func TestGROLargeDatagram(t *testing.T) {
	a, b := groPair(t, true)
	want := send(t, a, b.LocalAddr(), 0, 1, 20000)
	want = append(want, send(t, a, b.LocalAddr(), 1, 1, 100)...)
	if calls := receive(t, b, 4, 1500, 16, want); fmt.Sprint(calls) != "[2]" {
		t.Errorf("ReadFrom calls gave %v datagrams, want [2]", calls)
	}
	checkReadStats(t, b, udp.ReadStats{Messages: 2})
}

// TestGROTwoSenders: trains from two senders, interleaved, each datagram
// with its own source, in order.
func TestGROTwoSenders(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a1, a2 := listenOpts(t, ns, "127.0.0.1:0"), listenOpts(t, ns, "127.0.0.1:0")
	b := listenOpts(t, ns, "127.0.0.1:0")
	dst := b.LocalAddr()
	var want []sent
	for round := range 3 {
		want = append(want, send(t, a1, dst, 100*round, 7, 1300)...)
		want = append(want, send(t, a2, dst, 100*round+50, 5, 900)...)
		want = append(want, send(t, a1, dst, 100*round+70, 1, 64)...)
	}
	receive(t, b, 6, 1500, 0, want)
	checkReadStats(t, b, udp.ReadStats{Messages: 9, GROMessages: 6, GRODatagrams: 36})
}

// TestGROOff: with WithGRO(false), the kernel segments a GSO message
// before the socket: 40 messages of one datagram, as before GRO.
func TestGROOff(t *testing.T) {
	a, b := groPair(t, false)
	want := send(t, a, b.LocalAddr(), 0, 40, 1400)
	if calls := receive(t, b, udp.BatchSize, 2048, 0, want); fmt.Sprint(calls) != "[40]" {
		t.Errorf("ReadFrom calls gave %v datagrams, want [40]", calls)
	}
	checkReadStats(t, b, udp.ReadStats{Messages: 40})
	want = send(t, a, b.LocalAddr(), 40, 1, 20000)
	receive(t, b, 8, 1500, 0, want)
	checkReadStats(t, b, udp.ReadStats{Messages: 41})
}

// TestGRONoAllocs: ReadFrom does not allocate when it cuts GRO messages,
// also into fewer buffers than datagrams (pending ones handed out later).
func TestGRONoAllocs(t *testing.T) {
	for _, nbuf := range []int{8, udp.BatchSize} {
		t.Run(fmt.Sprint(nbuf), func(t *testing.T) {
			a, b := groPair(t, true)
			round, rounds, n := batchRound(t, a, b, nbuf)
			if allocs := devtest.AllocsPerPacket(t, 100, n, round); allocs != 0 {
				t.Errorf("%g allocations per datagram, want 0", allocs)
			}
			// Each round: two GSO messages (46 + 18), two GRO messages.
			checkReadStats(t, b, udp.ReadStats{Messages: uint64(2 * *rounds), GROMessages: uint64(2 * *rounds), GRODatagrams: uint64(64 * *rounds)})
		})
	}
}

// BenchmarkReadGRO measures ReadFrom of 64 datagrams of 1400 bytes that a
// GSO sender sent as two messages (46 + 18) over loopback, to a socket with
// GRO and one without (where the kernel segments them before the socket):
// ns/datagram is the whole round, read-ns/datagram ReadFrom alone.
func BenchmarkReadGRO(b *testing.B) {
	for _, gro := range []bool{true, false} {
		b.Run(fmt.Sprintf("gro=%v", gro), func(b *testing.B) {
			const count, size = udp.BatchSize, 1400
			ns := netnstest.New(b, "udp")
			src := listenOpts(b, ns, "127.0.0.1:0")
			dst := listenOpts(b, ns, "127.0.0.1:0", udp.WithGRO(gro))
			if dst.GRO() != gro {
				b.Fatalf("GRO() = %v", dst.GRO())
			}
			out, _, to := makeBatch(count, size)
			for i := range to {
				to[i] = dst.LocalAddr()
			}
			bufs, sizes, from := makeBatch(udp.BatchSize, 2048)
			b.ReportAllocs()
			b.SetBytes(count * size)
			var reading int64
			for b.Loop() {
				if n, err := src.WriteTo(out, to, 0); n != count || err != nil {
					b.Fatalf("WriteTo = %d, %v", n, err)
				}
				start := time.Now()
				readAll(b, dst, bufs, sizes, from, count)
				reading += time.Since(start).Nanoseconds()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*count), "ns/datagram")
			b.ReportMetric(float64(reading)/float64(b.N*count), "read-ns/datagram")
			st := dst.ReadStats()
			b.ReportMetric(float64(st.Messages)/float64(b.N), "messages/batch")
		})
	}
}

// TestGROVeth: between two namespaces over a veth (default features, no
// NAPI, so no device GRO), a GSO message reaches the GRO socket whole, one
// GRO message of 40 datagrams, while datagrams sent one by one stay 40
// messages; all arrive once, in order. (With GRO and
// rx-udp-gro-forwarding turned on at the receiving veth and TSO off at the
// sender, this kernel, 6.18, still delivered 40 messages: each datagram
// was polled alone.)
func TestGROVeth(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			src, dst := netnstest.New(t, "udp"), netnstest.New(t, "udp")
			src.IP("link", "add", "gro0", "type", "veth", "peer", "name", "gro1", "netns", dst.Name)
			src.IP("addr", "add", "10.78.0.1/24", "dev", "gro0")
			dst.IP("addr", "add", "10.78.0.2/24", "dev", "gro1")
			src.IP("link", "set", "gro0", "up")
			dst.IP("link", "set", "gro1", "up")
			src.WaitActive("gro0")
			dst.WaitActive("gro1")
			a := listenOpts(t, src, "10.78.0.1:0", udp.WithGSO(gso))
			b := listenOpts(t, dst, "10.78.0.2:0")
			want := send(t, a, b.LocalAddr(), 0, 40, 1400)
			receive(t, b, 16, 2048, 0, want)
			if gso {
				checkReadStats(t, b, udp.ReadStats{Messages: 1, GROMessages: 1, GRODatagrams: 40})
			} else {
				checkReadStats(t, b, udp.ReadStats{Messages: 40})
			}
		})
	}
}
