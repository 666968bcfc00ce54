package udp_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/udp"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// listen opens a Conn on addr inside ns, closed at cleanup; a watchdog
// closes it after 20s so that a lost datagram fails the test instead of
// hanging it.
func listen(t testing.TB, ns *netnstest.NS, addr string) *udp.Conn {
	t.Helper()
	var c *udp.Conn
	var err error
	ns.Do(func() { c, err = udp.Listen(netip.MustParseAddrPort(addr)) })
	if err != nil {
		t.Fatal(err)
	}
	devtest.CloseAtCleanup(t, c)
	return c
}

// dualStackNS is a namespace of the test's own with IPv6 on its loopback.
func dualStackNS(t *testing.T) *netnstest.NS {
	ns := netnstest.New(t, "udp")
	ns.MustExec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.lo.disable_ipv6=0")
	return ns
}

// batchRound returns a round that sends a batch of BatchSize datagrams of
// 1400 bytes from a to b and reads them with nbuf buffers, and the count
// of rounds run, for the allocation tests.
func batchRound(t *testing.T, a, b *udp.Conn, nbuf int) (round func(), rounds *int, datagrams int) {
	out, _, to := makeBatch(udp.BatchSize, 1400)
	for i := range to {
		to[i] = b.LocalAddr()
	}
	bufs, sizes, from := makeBatch(nbuf, 2048)
	rounds = new(int)
	round = func() {
		if n, err := a.WriteTo(out, to, 0); n != len(out) || err != nil {
			t.Fatalf("WriteTo = %d, %v", n, err)
		}
		readAll(t, b, bufs, sizes, from, len(out))
		*rounds++
	}
	return round, rounds, len(out)
}

func makeBatch(n, size int) ([][]byte, []int, []netip.AddrPort) {
	bufs, sizes := devtest.MakeBatch(n, size)
	return bufs, sizes, make([]netip.AddrPort, n)
}

// readAll reads until want datagrams have arrived; it returns the number of
// ReadFrom calls.
func readAll(tb testing.TB, c *udp.Conn, bufs [][]byte, sizes []int, from []netip.AddrPort, want int) int {
	reads := 0
	for got := 0; got < want; {
		n, err := c.ReadFrom(bufs, sizes, from, 0)
		if err != nil {
			tb.Fatalf("ReadFrom after %d of %d datagrams: %v", got, want, err)
		}
		got += n
		reads++
	}
	return reads
}

func TestListenRejectsInvalidAddress(t *testing.T) {
	if _, err := udp.Listen(netip.AddrPort{}); err == nil {
		t.Error("Listen of the zero AddrPort succeeded, want an error")
	}
}

func TestExchangeBatch(t *testing.T) {
	for _, tc := range []struct{ name, send, recv string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1:0"},
		{"ipv6", "[::1]:0", "[::1]:0"},
		{"ipv4-to-dual-stack", "127.0.0.1:0", "[::]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := dualStackNS(t)
			a, b := listen(t, ns, tc.send), listen(t, ns, tc.recv)
			dst := b.LocalAddr()
			if dst.Addr().IsUnspecified() {
				dst = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), dst.Port())
			}
			if dst.Port() == 0 {
				t.Fatalf("LocalAddr() = %v, want the picked port", b.LocalAddr())
			}

			const count, sendOffset, recvOffset = 10, 16, 8
			out := make([][]byte, count)
			to := make([]netip.AddrPort, count)
			for i := range out {
				out[i] = append(make([]byte, sendOffset), bytes.Repeat([]byte{byte(i)}, 100+i)...)
				to[i] = dst
			}
			if n, err := a.WriteTo(out, to, sendOffset); n != count || err != nil {
				t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, count)
			}
			bufs, sizes, from := makeBatch(udp.BatchSize, 2048)
			n, err := b.ReadFrom(bufs, sizes, from, recvOffset)
			if err != nil {
				t.Fatal(err)
			}
			if n != count {
				t.Fatalf("ReadFrom returned %d datagrams in one call, want all %d", n, count)
			}
			for i := range n {
				got := bufs[i][recvOffset : recvOffset+sizes[i]]
				if !bytes.Equal(got, out[i][sendOffset:]) {
					t.Errorf("datagram %d: got %d bytes % x..., want %d bytes of %#x", i, len(got), got[:4], 100+i, i)
				}
				if from[i] != a.LocalAddr() {
					t.Errorf("datagram %d from %v, want %v", i, from[i], a.LocalAddr())
				}
				if !bytes.Equal(bufs[i][:recvOffset], make([]byte, recvOffset)) {
					t.Errorf("datagram %d: ReadFrom wrote into the headroom", i)
				}
			}
		})
	}
}

func TestWriteToSkipsUnsendableDestination(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a, b := listen(t, ns, "127.0.0.1:0"), listen(t, ns, "127.0.0.1:0")
	out := [][]byte{[]byte("one"), []byte("lost"), []byte("three")}
	to := []netip.AddrPort{b.LocalAddr(), netip.MustParseAddrPort("[2001:db8::1]:4789"), b.LocalAddr()}
	n, err := a.WriteTo(out, to, 0)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "2001:db8::1") {
		t.Fatalf("WriteTo = %d, %v; want 2 and an error naming the IPv6 destination", n, err)
	}
	bufs, sizes, from := makeBatch(4, 64)
	readAll(t, b, bufs, sizes, from, 2)
	if string(bufs[0][:sizes[0]]) != "one" || string(bufs[1][:sizes[1]]) != "three" {
		t.Errorf("received %q, %q; want one, three", bufs[0][:sizes[0]], bufs[1][:sizes[1]])
	}
}

// TestLargeDatagramKept: datagrams longer than the caller's buffer (up to
// the 65507 bytes of the largest IPv4 UDP datagram) are kept whole in the
// overflow slots, in order with the others, not dropped.
func TestLargeDatagramKept(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a, b := listen(t, ns, "127.0.0.1:0"), listen(t, ns, "127.0.0.1:0")
	pattern := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i + i>>8)
		}
		return p
	}
	out := [][]byte{[]byte("small-1"), pattern(2000), pattern(65507), []byte("small-2")}
	to := []netip.AddrPort{b.LocalAddr(), b.LocalAddr(), b.LocalAddr(), b.LocalAddr()}
	if n, err := a.WriteTo(out, to, 0); n != 4 || err != nil {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	const offset = 16
	bufs, sizes, from := makeBatch(8, offset+1500)
	if n, err := b.ReadFrom(bufs, sizes, from, offset); n != 4 || err != nil {
		t.Fatalf("ReadFrom = %d, %v; want the 4 queued datagrams", n, err)
	}
	for i, want := range out {
		if sizes[i] != len(want) {
			t.Fatalf("datagram %d: size %d, want %d", i, sizes[i], len(want))
		}
		got := b.Large(i)
		if len(want) <= 1500 {
			if got != nil {
				t.Errorf("datagram %d fits its buffer but Large(%d) = %d bytes", i, i, len(got))
			}
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("datagram %d: Large(%d) (%d bytes) is not the datagram", i, i, len(got))
		}
		if !bytes.Equal(bufs[i][offset:], want[:1500]) {
			t.Errorf("datagram %d: its buffer does not hold its start", i)
		}
	}
	if got := b.Dropped(); got != 0 {
		t.Errorf("Dropped() = %d, want 0", got)
	}
}

func TestWriteToMoreThanBatchSize(t *testing.T) {
	ns := netnstest.New(t, "udp")
	a, b := listen(t, ns, "127.0.0.1:0"), listen(t, ns, "127.0.0.1:0")
	const count = udp.BatchSize*2 + 3
	out := make([][]byte, count)
	to := make([]netip.AddrPort, count)
	for i := range out {
		out[i] = binary.BigEndian.AppendUint32(nil, uint32(i))
		to[i] = b.LocalAddr()
	}
	if n, err := a.WriteTo(out, to, 0); n != count || err != nil {
		t.Fatalf("WriteTo = %d, %v; want %d", n, err, count)
	}
	bufs, sizes, from := makeBatch(udp.BatchSize*2, 64)
	next := 0
	for next < count {
		n, err := b.ReadFrom(bufs, sizes, from, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n > udp.BatchSize {
			t.Fatalf("ReadFrom returned %d datagrams, more than BatchSize", n)
		}
		for i := range n {
			if got := binary.BigEndian.Uint32(bufs[i]); got != uint32(next) {
				t.Fatalf("datagram %d, want %d", got, next)
			}
			next++
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	ns := netnstest.New(t, "udp")
	b := listen(t, ns, "127.0.0.1:0")
	const writers, batches, perBatch = 4, 50, 16
	var wg sync.WaitGroup
	for w := range writers {
		a := listen(t, ns, "127.0.0.1:0")
		wg.Go(func() {
			out := make([][]byte, perBatch)
			to := make([]netip.AddrPort, perBatch)
			for i := range out {
				out[i] = make([]byte, 8)
				to[i] = b.LocalAddr()
			}
			for k := range batches {
				for i := range out {
					binary.BigEndian.PutUint32(out[i], uint32(w))
					binary.BigEndian.PutUint32(out[i][4:], uint32(k*perBatch+i))
				}
				if n, err := a.WriteTo(out, to, 0); n != perBatch || err != nil {
					t.Errorf("writer %d: WriteTo = %d, %v", w, n, err)
					return
				}
			}
		})
	}
	seen := make(map[[2]uint32]bool)
	bufs, sizes, from := makeBatch(udp.BatchSize, 64)
	for len(seen) < writers*batches*perBatch {
		n, err := b.ReadFrom(bufs, sizes, from, 0)
		if err != nil {
			t.Fatalf("ReadFrom after %d datagrams: %v", len(seen), err)
		}
		for i := range n {
			key := [2]uint32{binary.BigEndian.Uint32(bufs[i]), binary.BigEndian.Uint32(bufs[i][4:])}
			if seen[key] {
				t.Fatalf("datagram %v received twice", key)
			}
			seen[key] = true
		}
	}
	wg.Wait()
}

// TestNoAllocs checks that a steady-state WriteTo and ReadFrom of a full
// batch do not allocate, with GSO and without.
func TestNoAllocs(t *testing.T) {
	for _, gso := range []bool{true, false} {
		t.Run(fmt.Sprintf("gso=%v", gso), func(t *testing.T) {
			ns := netnstest.New(t, "udp")
			var a *udp.Conn
			var err error
			ns.Do(func() { a, err = udp.Listen(netip.MustParseAddrPort("127.0.0.1:0"), udp.WithGSO(gso)) })
			if err != nil {
				t.Fatal(err)
			}
			devtest.CloseAtCleanup(t, a)
			b := listen(t, ns, "127.0.0.1:0")
			round, rounds, n := batchRound(t, a, b, udp.BatchSize)
			if allocs := devtest.AllocsPerPacket(t, 100, n, round); allocs != 0 {
				t.Errorf("WriteTo+ReadFrom of batches of %d datagrams: %g allocations per datagram, want 0", n, allocs)
			}
			// 64 datagrams of 1400 bytes: 46 fit one GSO message (64400
			// bytes), the other 18 a second one.
			want := udp.WriteStats{Messages: uint64(*rounds * n)}
			if gso {
				want = udp.WriteStats{Messages: uint64(*rounds * 2), GSOMessages: uint64(*rounds * 2), GSODatagrams: uint64(*rounds * n)}
			}
			if got := a.WriteStats(); got != want {
				t.Errorf("after %d rounds: WriteStats() = %+v, want %+v", *rounds, got, want)
			}
		})
	}
}

func TestCloseUnblocksReadFrom(t *testing.T) {
	ns := netnstest.New(t, "udp")
	c := listen(t, ns, "127.0.0.1:0")
	done := make(chan error, 1)
	go func() {
		bufs, sizes, from := makeBatch(1, 64)
		_, err := c.ReadFrom(bufs, sizes, from, 0)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if err != link.ErrClosed {
			t.Errorf("blocked ReadFrom returned %v, want link.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadFrom")
	}
}

// BenchmarkExchange measures WriteTo+ReadFrom of 64 datagrams of 1450 bytes
// (a vxlan-encapsulated full-size pod packet) over loopback.
func BenchmarkExchange(b *testing.B) {
	for _, size := range []int{64, 1450} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			ns := netnstest.New(b, "udp")
			src, dst := listen(b, ns, "127.0.0.1:0"), listen(b, ns, "127.0.0.1:0")
			out, _, to := makeBatch(udp.BatchSize, size)
			for i := range to {
				to[i] = dst.LocalAddr()
			}
			bufs, sizes, from := makeBatch(udp.BatchSize, 2048)
			b.ReportAllocs()
			b.SetBytes(int64(udp.BatchSize * size))
			reads := 0
			for b.Loop() {
				if n, err := src.WriteTo(out, to, 0); n != len(out) || err != nil {
					b.Fatalf("WriteTo = %d, %v", n, err)
				}
				reads += readAll(b, dst, bufs, sizes, from, len(out))
			}
			b.ReportMetric(float64(b.N*udp.BatchSize)/b.Elapsed().Seconds(), "datagrams/s")
			b.ReportMetric(float64(b.N*udp.BatchSize)/float64(reads), "datagrams/read")
		})
	}
}
