package afpacket_test

import (
	"testing"

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
			for b.Loop() {
				reads += devtest.Exchange(b, w.sa, w.sb, out, bufs, sizes, 0)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(b.N*batch)/float64(reads), "frames/read")
		})
	}
}

// newWireMode is newWire, the sockets batched or per frame.
func newWireMode(t testing.TB, batched bool) *wire {
	if batched {
		return newWire(t)
	}
	w := &wire{a: netnstest.New(t, "afp-a"), b: netnstest.New(t, "afp-b")}
	w.a.IP("link", "add", "va", "mtu", "1400", "type", "veth", "peer", "name", "vb", "netns", w.b.Name)
	w.a.IP("link", "set", "va", "up")
	w.b.IP("link", "set", "vb", "up")
	w.a.WaitActive("va")
	w.b.WaitActive("vb")
	w.sa = openPerFrame(t, w.a, "va")
	w.sb = openPerFrame(t, w.b, "vb")
	return w
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
