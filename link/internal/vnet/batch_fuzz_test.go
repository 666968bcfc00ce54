package vnet

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
)

// frameQueue is a RecvFunc over the entries of a batchQueue, one per call,
// as recvmsg(2) on a packet socket: the per-frame reference for the batch
// Reader.
type frameQueue struct{ q []batchEntry }

func (s *frameQueue) recv(_ uintptr, iov []unix.Iovec) (int, link.RxMeta, syscall.Errno) {
	if len(s.q) == 0 {
		return 0, 0, unix.EAGAIN
	}
	e := s.q[0]
	s.q = s.q[1:]
	if e.errno != 0 {
		return 0, 0, e.errno
	}
	raw, k := e.raw, 0
	for _, v := range iov {
		c := copy(unsafe.Slice(v.Base, v.Len), raw)
		raw, k = raw[c:], k+c
	}
	return k, e.meta, 0
}

// fuzzEntries decodes ops, 3 bytes an entry, into at most 48 entries:
// plain frames (some with a partial checksum), TCP and UDP super-frames,
// super-frames that are not IPv4, messages shorter than a header, EINVAL.
func fuzzEntries(ops []byte) []batchEntry {
	var q []batchEntry
	for len(ops) >= 3 && len(q) < 48 {
		kind, a, b := ops[0], int(ops[1]), ops[2]
		ops = ops[3:]
		meta := link.RxMeta(0)
		if b&1 != 0 {
			meta = link.RxVLAN
		}
		var e batchEntry
		switch kind % 7 {
		case 0:
			e = plainEntry(markerFrame(b, 14+a*9), meta) // up to 2309 bytes
		case 1:
			f := superFrame(a*5, header.TCPFlagAck)
			h := vnetHeader(1, 0, 0)
			binary.NativeEndian.PutUint16(h[6:], 34)
			binary.NativeEndian.PutUint16(h[8:], 16)
			e = batchEntry{raw: append(h, f...), meta: meta}
		case 2:
			e = superEntry(superFrame(1+a*250, header.TCPFlagAck|header.TCPFlagPsh), uint16(b)*8)
			e.meta = meta
		case 3:
			e = batchEntry{raw: append(vnetHeader(1, 5, uint16(b)*6), superUDPFrame(1+a*200)...), meta: meta}
		case 4:
			f := superFrame(a*100, header.TCPFlagAck)
			f[12] = 0x86
			e = superEntry(f, 1000)
		case 5:
			e = batchEntry{raw: make([]byte, a%HdrLen)}
		case 6:
			e = batchEntry{errno: unix.EINVAL}
		}
		q = append(q, e)
	}
	return q
}

// FuzzBatchReader: whatever frames arrive, the batch Reader (recvmmsg,
// frames spilled behind super-frames and dropped frames) hands out exactly
// what the per-frame Reader (recvmsg) does, frame for frame: sizes,
// metadata, GSO descriptions and bytes (a whole super-frame's in
// SuperFrame), in the same order, with the same Stats; only where one
// Read ends may differ (a recvmmsg stops in front of a refused frame).
// Every frame fits its buffer. The batch's buffers, their size, headroom,
// ReadGSO or ReadMeta and the recvmmsg batch are the input's.
func FuzzBatchReader(f *testing.F) {
	f.Add([]byte{3, 2, 0, 1, 4}, []byte{0, 1, 0, 0, 2, 1, 2, 40, 125, 0, 3, 0, 1, 100, 3, 0, 4, 5})
	f.Add([]byte{11, 2, 1, 0, 64}, []byte{0, 1, 0, 2, 200, 125, 0, 3, 0, 3, 50, 200, 0, 9, 1})
	f.Add([]byte{8, 1, 2, 1, 2}, []byte{0, 10, 0, 6, 0, 0, 6, 0, 0, 0, 11, 1, 4, 20, 0, 0, 12, 0, 5, 3, 0, 0, 13, 1})
	f.Add([]byte{16, 3, 3, 1, 1}, []byte{2, 255, 125, 2, 255, 170, 1, 30, 1, 0, 200, 0})
	f.Fuzz(batchReaderMatches)
}

// batchReaderMatches is FuzzBatchReader's check of one input.
func batchReaderMatches(t *testing.T, params, ops []byte) {
	if len(params) < 5 {
		return
	}
	count := 1 + int(params[0])%16
	offset := []int{0, 2, 64, 200}[params[2]%4]
	bufLen := offset + []int{60, 200, 1514, 2048}[params[1]%4]
	useGSO := params[3]%2 == 1
	recvBatch := 1 + int(params[4])%64
	entries := fuzzEntries(ops)

	type out struct {
		size int
		meta link.RxMeta
		gso  link.GSO
		data string
	}
	run := func(r *Reader) ([]out, link.OffloadStats) {
		bufs := make([][]byte, count)
		for i := range bufs {
			bufs[i] = make([]byte, bufLen)
		}
		sizes, meta := make([]int, count), make([]link.RxMeta, count)
		var gso []link.GSO
		if useGSO {
			gso = make([]link.GSO, count)
		}
		var got []out
		for {
			n, err := r.ReadGSO(bufs, sizes, meta, gso, offset)
			for i := range n {
				o := out{size: sizes[i], meta: meta[i]}
				if gso != nil {
					o.gso = gso[i]
				}
				if o.gso.Type != link.GSONone {
					o.data = string(r.SuperFrame()[offset : offset+sizes[i]])
				} else if sizes[i] > bufLen-offset {
					t.Fatalf("a frame of %d bytes in a buffer of %d", sizes[i], bufLen-offset)
				} else {
					o.data = string(bufs[i][offset : offset+sizes[i]])
				}
				got = append(got, o)
			}
			if err != nil {
				break // fakeConn: nothing more to read
			}
		}
		return got, r.Stats()
	}
	ref := &frameQueue{q: entries}
	want, wantStats := run(NewReader(&fakeConn{}, 1500, ref.recv))
	bq := &batchQueue{q: entries}
	got, gotStats := run(NewBatchReader(&fakeConn{}, 1500, recvBatch, bq.recv))
	if len(got) != len(want) || gotStats != wantStats {
		t.Fatalf("batch Reader: %d frames, stats %+v; per-frame Reader: %d, %+v", len(got), gotStats, len(want), wantStats)
	}
	for i := range want {
		if got[i] != want[i] {
			g, w := got[i], want[i]
			t.Fatalf("frame %d: batch %s, per-frame %s", i, describe(g.size, g.meta, g.gso, g.data), describe(w.size, w.meta, w.gso, w.data))
		}
	}
}

func describe(size int, meta link.RxMeta, gso link.GSO, data string) string {
	return fmt.Sprintf("%d bytes (meta %v, gso %+v) % x...", size, meta, gso, data[:min(len(data), 24)])
}
