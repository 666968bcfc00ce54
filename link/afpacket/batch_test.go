package afpacket_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// calls is what afpacket.Calls reports.
type calls struct{ recv, recvFrames, send, sendFrames uint64 }

func callsOf(s *afpacket.Socket) calls {
	var c calls
	c.recv, c.recvFrames, c.send, c.sendFrames = afpacket.Calls(s)
	return c
}

// since is c minus an earlier snapshot.
func (c calls) since(old calls) calls {
	return calls{c.recv - old.recv, c.recvFrames - old.recvFrames, c.send - old.send, c.sendFrames - old.sendFrames}
}

// TestBatchReadOneRecvmmsg: 40 frames of 60 to 1230 bytes, every fifth
// 802.1Q-tagged (VLAN 10), written with one Write (one sendmmsg of 40
// messages) and all queued on B's socket, come out of one ReadMeta of 64
// buffers, received with one recvmmsg: in order, byte for byte (the tag
// stripped), the tagged ones and only they marked link.RxVLAN.
func TestBatchReadOneRecvmmsg(t *testing.T) {
	w := newWire(t)
	const n = 40
	out := make([][]byte, n)
	want := make([]string, n)
	isTagged := func(i int) bool { return i%5 == 2 }
	for i := range out {
		f := marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("frame %02d", i), 60+i*30)
		for k := 14 + 8; k < len(f); k++ {
			f[k] = byte(i + k)
		}
		want[i] = string(f)
		if isTagged(i) {
			f = tagged(f, 10)
		}
		out[i] = f
	}
	a0 := callsOf(w.sa)
	if k, err := w.sa.Write(out, 0); k != n || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
	}
	if got := callsOf(w.sa).since(a0); got != (calls{send: 1, sendFrames: n}) {
		t.Errorf("A's Write made %+v, want one sendmmsg of %d frames", got, n)
	}
	afpacket.WaitQueued(t, w.sb, n)

	bufs, sizes := devtest.MakeBatch(64, 2048)
	meta := make([]link.RxMeta, 64)
	b0 := callsOf(w.sb)
	k, err := w.sb.ReadMeta(bufs, sizes, meta, 0)
	if k != n || err != nil {
		t.Fatalf("ReadMeta = %d, %v; want all %d queued frames", k, err, n)
	}
	if got := callsOf(w.sb).since(b0); got != (calls{recv: 1, recvFrames: n}) {
		t.Errorf("B's ReadMeta made %+v, want one recvmmsg of %d frames", got, n)
	}
	for i := range n {
		if got := string(bufs[i][:sizes[i]]); got != want[i] {
			t.Errorf("frame %d: %d bytes % x..., want %d bytes % x...", i, len(got), got[:min(24, len(got))], len(want[i]), want[i][:24])
		}
		if wantMeta := link.RxMeta(0); meta[i] != wantMeta && !isTagged(i) || isTagged(i) && meta[i] != link.RxVLAN {
			t.Errorf("frame %d (tagged %v): meta %v", i, isTagged(i), meta[i])
		}
	}
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{}) {
		t.Errorf("B's OffloadStats = %+v, want none", st)
	}
}

// superBatch is what A writes in one Write for the super-frame tests: 3
// markers, a run of 10 TCP segments of 1360 payload bytes (coalesced into
// one super-frame), 3 more markers, the middle one VLAN-tagged.
type superBatch struct {
	pre, run, post [][]byte
	postWant       []string // post as B sees it, the tag stripped
}

func writeSuperBatch(t *testing.T, w *wire) *superBatch {
	t.Helper()
	sb := &superBatch{}
	for i := range 3 {
		sb.pre = append(sb.pre, marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("pre %d", i), 60+i))
		f := marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("post %d", i), 70+i)
		sb.postWant = append(sb.postWant, string(f))
		if i == 1 {
			f = tagged(f, 10)
		}
		sb.post = append(sb.post, f)
	}
	for i := range 10 {
		sb.run = append(sb.run, tcpSegment(w.sb.HWAddr(), w.sa.HWAddr(), i, 1360, i == 9))
	}
	out := slices.Concat(sb.pre, sb.run, sb.post)
	a0 := callsOf(w.sa)
	if k, err := w.sa.Write(out, 0); k != len(out) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", k, err, len(out))
	}
	if got := callsOf(w.sa).since(a0); got != (calls{send: 2, sendFrames: 6}) {
		t.Errorf("A's Write made %+v, want two sendmmsg of 3 frames each (and a writev for the run)", got)
	}
	if st := w.sa.OffloadStats(); st != (link.OffloadStats{Coalesced: 1, CoalescedFrames: 10}) {
		t.Errorf("A's OffloadStats = %+v, want the run coalesced", st)
	}
	afpacket.WaitQueued(t, w.sb, 7)
	return sb
}

// wantSuper is the super-frame A's socket wrote for run: the first
// segment's headers, with the total length and IPv4 checksum of the whole,
// PSH of the last, the TCP checksum left partial (the pseudo-header sum),
// then every segment's payload.
func wantSuper(run [][]byte) []byte {
	f := slices.Clone(run[0][:54])
	for _, s := range run {
		f = append(f, s[54:]...)
	}
	ip := header.IPv4(f[14:])
	ip.SetTotalLength(uint16(len(f) - 14))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip.Payload())
	tcp.SetFlags(uint8(tcp.Flags() | header.TCPFlagPsh))
	binary.BigEndian.PutUint16(tcp[16:], checksum.Combine(
		header.PseudoHeaderChecksum(6, ip.SourceAddress(), ip.DestinationAddress(), 0), uint16(len(tcp))))
	return f
}

// TestBatchSuperFrameWhole: a super-frame received with one recvmmsg
// between frames is the last frame of ReadGSO's batch, whole in
// SuperFrame(), exactly as A wrote it; the frames behind it come with the
// next ReadGSO, byte for byte, the tagged one marked, with no further
// recvmmsg.
func TestBatchSuperFrameWhole(t *testing.T) {
	w := newWire(t)
	sb := writeSuperBatch(t, w)
	bufs, sizes := devtest.MakeBatch(64, 2048)
	meta := make([]link.RxMeta, 64)
	gso := make([]link.GSO, 64)
	b0 := callsOf(w.sb)
	k, err := w.sb.ReadGSO(bufs, sizes, meta, gso, 0)
	if k != 4 || err != nil {
		t.Fatalf("first ReadGSO = %d, %v; want 3 frames and the super-frame", k, err)
	}
	for i, f := range sb.pre {
		if got := bufs[i][:sizes[i]]; string(got) != string(f) || gso[i] != (link.GSO{}) || meta[i] != 0 {
			t.Errorf("frame %d: % x (gso %+v, meta %v), want % x", i, got, gso[i], meta[i], f)
		}
	}
	if want := (link.GSO{Type: link.GSOTCPv4, Size: 1360}); gso[3] != want {
		t.Errorf("gso[3] = %+v, want %+v", gso[3], want)
	}
	if got, want := w.sb.SuperFrame()[:sizes[3]], wantSuper(sb.run); string(got) != string(want) {
		t.Errorf("super-frame of %d bytes, headers % x; want %d bytes, % x", len(got), got[:54], len(want), want[:54])
	}
	k, err = w.sb.ReadGSO(bufs, sizes, meta, gso, 0)
	if k != 3 || err != nil {
		t.Fatalf("second ReadGSO = %d, %v; want the 3 frames behind the super-frame", k, err)
	}
	for i, want := range sb.postWant {
		wantMeta := link.RxMeta(0)
		if i == 1 {
			wantMeta = link.RxVLAN
		}
		if got := bufs[i][:sizes[i]]; string(got) != want || gso[i] != (link.GSO{}) || meta[i] != wantMeta {
			t.Errorf("frame %d behind: % x (gso %+v, meta %v), want % x, meta %v", i, got, gso[i], meta[i], want, wantMeta)
		}
	}
	if got := callsOf(w.sb).since(b0); got != (calls{recv: 1, recvFrames: 7}) {
		t.Errorf("B's ReadGSOs made %+v, want one recvmmsg of 7 frames", got)
	}
	if st := w.sb.OffloadStats(); st != (link.OffloadStats{ReadWhole: 1}) {
		t.Errorf("B's OffloadStats = %+v, want 1 read whole", st)
	}
}

// TestBatchSuperFrameCut: the same batch read with ReadMeta, which cuts
// the super-frame: with 64 buffers one ReadMeta hands out the 3 frames,
// the 10 segments exactly as A's caller wrote them and the 3 frames
// behind; with 12, the super-frame's 10 segments do not fit behind the 3
// frames and are held for the next ReadMeta, which hands out them and the
// next 2 frames, and a third the last. One recvmmsg either way.
func TestBatchSuperFrameCut(t *testing.T) {
	for _, tc := range []struct {
		batch int
		reads []int // frames per ReadMeta
	}{{64, []int{16}}, {12, []int{3, 12, 1}}} {
		t.Run(fmt.Sprintf("batch %d", tc.batch), func(t *testing.T) {
			w := newWire(t)
			sb := writeSuperBatch(t, w)
			var want []string
			var wantMeta []link.RxMeta
			for _, f := range slices.Concat(sb.pre, sb.run) {
				want, wantMeta = append(want, string(f)), append(wantMeta, 0)
			}
			want = append(want, sb.postWant...)
			wantMeta = append(wantMeta, 0, link.RxVLAN, 0)

			bufs, sizes := devtest.MakeBatch(tc.batch, 2048)
			meta := make([]link.RxMeta, tc.batch)
			b0 := callsOf(w.sb)
			var got []string
			var gotMeta []link.RxMeta
			for r, wantN := range tc.reads {
				k, err := w.sb.ReadMeta(bufs, sizes, meta, 0)
				if k != wantN || err != nil {
					t.Fatalf("ReadMeta %d = %d, %v; want %d, nil", r, k, err, wantN)
				}
				for i := range k {
					got, gotMeta = append(got, string(bufs[i][:sizes[i]])), append(gotMeta, meta[i])
				}
			}
			for i := range want {
				if got[i] != want[i] || gotMeta[i] != wantMeta[i] {
					t.Errorf("frame %d: %d bytes % x... meta %v; want %d bytes % x... meta %v",
						i, len(got[i]), got[i][:20], gotMeta[i], len(want[i]), want[i][:20], wantMeta[i])
				}
			}
			if got := callsOf(w.sb).since(b0); got != (calls{recv: 1, recvFrames: 7}) {
				t.Errorf("B's ReadMetas made %+v, want one recvmmsg of 7 frames", got)
			}
			if st := w.sb.OffloadStats(); st != (link.OffloadStats{SuperFrames: 1, Segments: 10, Checksums: 10}) {
				t.Errorf("B's OffloadStats = %+v, want 1 super-frame cut into 10", st)
			}
		})
	}
}

// TestBatchSuperFrameNoAllocs: the batch of TestBatchSuperFrameWhole,
// written and read with ReadGSO (the frames behind the super-frame
// spilled and handed out by the next call), allocates nothing.
func TestBatchSuperFrameNoAllocs(t *testing.T) {
	w := newWire(t)
	sb := writeSuperBatch(t, w)
	out := slices.Concat(sb.pre, sb.run, sb.post)
	bufs, sizes := devtest.MakeBatch(64, 2048)
	meta := make([]link.RxMeta, 64)
	gso := make([]link.GSO, 64)
	read := func() {
		for got := 0; got < 7; {
			k, err := w.sb.ReadGSO(bufs, sizes, meta, gso, 0)
			if err != nil {
				t.Fatal(err)
			}
			got += k
		}
	}
	read()
	round := func() {
		if k, err := w.sa.Write(out, 0); k != len(out) || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
		read()
	}
	if allocs := devtest.AllocsPerPacket(t, 100, len(out), round); allocs != 0 {
		t.Errorf("Write+ReadGSO: %g allocations per frame, want 0", allocs)
	}
	if st := w.sb.OffloadStats(); st.ReadWhole != 102 || st.Dropped != 0 {
		t.Errorf("B's OffloadStats = %+v, want 102 super-frames read whole, none dropped", st)
	}
}

// TestBatchWriteOneSendmmsg: 40 frames of 60 to 1230 bytes written with
// one Write go with one sendmmsg and reach B in order, byte for byte. A
// frame the kernel rejects (longer than the MTU) in a batch of 10 costs a
// call of its own: the one before it sends the 4 frames in front, it
// fails alone (EMSGSIZE), the next sends the 5 behind, and Write returns
// 9 and the error.
func TestBatchWriteOneSendmmsg(t *testing.T) {
	w := newWire(t)
	const n = 40
	out := make([][]byte, n)
	var want []string
	for i := range out {
		out[i] = marker(w.sb.HWAddr(), w.sa.HWAddr(), fmt.Sprintf("frame %02d", i), 60+i*30)
		for k := 14 + 8; k < len(out[i]); k++ {
			out[i][k] = byte(3*i + k)
		}
		want = append(want, string(out[i]))
	}
	a0 := callsOf(w.sa)
	if k, err := w.sa.Write(out, 0); k != n || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
	}
	if got := callsOf(w.sa).since(a0); got != (calls{send: 1, sendFrames: n}) {
		t.Errorf("Write made %+v, want one sendmmsg of %d frames", got, n)
	}
	if got := readFrames(t, w.sb, n, 2048); !slices.Equal(got, want) {
		t.Errorf("B read %d frames, not the %d written, in order", len(got), n)
	}

	out = out[:10]
	out[4] = marker(w.sb.HWAddr(), w.sa.HWAddr(), "too big", 14+1400+100)
	want = slices.Delete(want[:10], 4, 5)
	a0 = callsOf(w.sa)
	k, err := w.sa.Write(out, 0)
	if k != 9 || !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("Write = %d, %v; want 9, EMSGSIZE", k, err)
	}
	if got := callsOf(w.sa).since(a0); got != (calls{send: 3, sendFrames: 9}) {
		t.Errorf("Write made %+v, want 3 sendmmsg calls sending 9 frames", got)
	}
	if got := readFrames(t, w.sb, 9, 2048); !slices.Equal(got, want) {
		t.Errorf("B read %d frames, not the 9 sent, in order", len(got))
	}
}
