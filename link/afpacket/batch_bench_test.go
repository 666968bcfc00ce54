package afpacket_test

import (
	"testing"
	"time"

	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// BenchmarkReadWrite64 moves batches of 64 frames of 64 payload bytes
// (78-byte frames) from one packet socket of a veth pair to the other:
// one Write on A, Reads on B until all 64 arrived. per-frame is the
// socket as it was, one recvmsg(2) and one writev(2) per frame; batched
// receives with recvmmsg(2) and sends with sendmmsg(2).
func BenchmarkReadWrite64(b *testing.B) {
	for _, mode := range []struct {
		name    string
		batched bool
	}{{"per-frame", false}, {"batched", true}} {
		b.Run(mode.name, func(b *testing.B) {
			w := newWireMode(b, mode.batched)
			const batch = 64
			out := make([][]byte, batch)
			for i := range out {
				out[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), "x", 14+64)
			}
			bufs, sizes := devtest.MakeBatch(batch, 2048)
			b.ReportAllocs()
			reads := 0
			var writing, reading time.Duration
			for b.Loop() {
				t0 := time.Now()
				if n, err := w.sa.Write(out, 0); n != batch || err != nil {
					b.Fatalf("Write = %d, %v", n, err)
				}
				t1 := time.Now()
				for got := 0; got < batch; reads++ {
					n, err := w.sb.Read(bufs, sizes, 0)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
				writing, reading = writing+t1.Sub(t0), reading+time.Since(t1)
			}
			frames := float64(b.N * batch)
			b.ReportMetric(frames/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(frames/float64(reads), "frames/read")
			// Write's time includes the kernel's receive path up to B's
			// queue (the veth delivers in the sender's system call).
			b.ReportMetric(float64(writing.Nanoseconds())/frames, "write-ns/frame")
			b.ReportMetric(float64(reading.Nanoseconds())/frames, "read-ns/frame")
		})
	}
}

// newWireMode is newWire, the sockets batched or per frame.
func newWireMode(t testing.TB, batched bool) *wire {
	if batched {
		return newWire(t)
	}
	return newWireOpen(t, openPerFrame)
}

func openPerFrame(t testing.TB, ns *netnstest.NS, ifname string) *afpacket.Socket {
	t.Helper()
	var s *afpacket.Socket
	var err error
	ns.Do(func() { s, err = afpacket.OpenPerFrame(ifname) })
	if err != nil {
		t.Fatal(err)
	}
	devtest.CloseAtCleanup(t, s)
	return s
}
