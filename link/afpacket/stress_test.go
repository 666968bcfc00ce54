package afpacket_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/internal/devtest"
)

// stressFrame is frame seq of writer w: a marker frame ("w<w> <seq>",
// then bytes that depend on both) of size bytes, or, with segs > 0, a TCP
// super-frame of segs segments of 1360 bytes from port 40000+w, the
// sequence number seq, headers as a kernel's TSO leaves them (the TCP
// checksum field holding the pseudo-header sum).
func stressFrame(dst, src link.HardwareAddr, w, seq, size, segs int) []byte {
	if segs == 0 {
		f := marker(dst, src, fmt.Sprintf("w%d %08d", w, seq), size)
		for k := 14 + 11; k < len(f); k++ {
			f[k] = byte(seq*7 + k + w)
		}
		return f
	}
	n := segs * 1360
	f := make([]byte, 14+20+20+n)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := header.IPv4(f[14:])
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - 14), ID: uint16(seq), TTL: 63, Protocol: 6,
		Flags: header.IPv4FlagDontFragment, SrcAddr: tcpip.AddrFrom4([4]byte{10, 98, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 98, 0, 2})})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip.Payload())
	tcp.Encode(&header.TCPFields{SrcPort: uint16(40000 + w), DstPort: 5201, SeqNum: uint32(seq), AckNum: 1, DataOffset: 20, Flags: header.TCPFlagAck, WindowSize: 500})
	for k := range n {
		tcp[20+k] = byte(seq*3 + k + w)
	}
	binary.BigEndian.PutUint16(tcp[16:], checksum.Combine(header.PseudoHeaderChecksum(6, ip.SourceAddress(), ip.DestinationAddress(), 0), uint16(len(tcp))))
	return f
}

// stressID is the writer and sequence number of a frame stressFrame made.
func stressID(f []byte) (w, seq int, ok bool) {
	if len(f) < 14+11 {
		return 0, 0, false
	}
	switch etherType(f) {
	case markerType:
		if _, err := fmt.Sscanf(string(f[14:14+11]), "w%d %08d", &w, &seq); err != nil {
			return 0, 0, false
		}
		return w, seq, true
	case 0x0800:
		if len(f) < 54 {
			return 0, 0, false
		}
		return int(binary.BigEndian.Uint16(f[14+20:])) - 40000, int(binary.BigEndian.Uint32(f[14+20+4:])), true
	}
	return 0, 0, false
}

// TestBatchStress: two writers on A's socket and one on B's write frames
// at once, each WriteGSO a random mix of marker frames (60 to 1400 bytes)
// and whole TCP super-frames (2 to 40 segments), while B's socket is read
// with ReadGSO (random batches, headroom 64, as the router reads the
// underlay) and A's with ReadGSO too: every frame arrives once, in its
// writer's order, byte for byte (a super-frame whole, as written), and
// the kernel dropped none. Each writer keeps at most 16 frames unread.
func TestBatchStress(t *testing.T) {
	w := newWire(t)
	const perWriter = 4000
	const window = 16
	const headroom = 64
	type writer struct {
		id       int
		from, to *afpacket.Socket
		credit   chan struct{}
		sent     [][]byte // by sequence number
		superSeq map[int]bool
		mu       sync.Mutex
	}
	writers := []*writer{{id: 0, from: w.sa, to: w.sb}, {id: 1, from: w.sa, to: w.sb}, {id: 2, from: w.sb, to: w.sa}}
	for _, wr := range writers {
		wr.credit = make(chan struct{}, window)
		for range window {
			wr.credit <- struct{}{}
		}
		wr.sent = make([][]byte, perWriter)
		rng := rand.New(rand.NewPCG(uint64(wr.id), 1))
		for seq := range perWriter {
			segs := 0
			if wr.id != 2 && rng.IntN(6) == 0 {
				segs = 2 + rng.IntN(39)
			}
			wr.sent[seq] = stressFrame(wr.to.HWAddr(), wr.from.HWAddr(), wr.id, seq, 60+rng.IntN(1341), segs)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for _, wr := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(wr.id), 2))
			for seq := 0; seq < perWriter; {
				k := min(1+rng.IntN(window), perWriter-seq)
				for range k {
					<-wr.credit
				}
				bufs := make([][]byte, k)
				gso := make([]link.GSO, k)
				for i := range k {
					f := wr.sent[seq+i]
					bufs[i] = append(make([]byte, headroom), f...)
					if etherType(f) == 0x0800 {
						gso[i] = link.GSO{Type: link.GSOTCPv4, Size: 1360}
					}
				}
				if n, err := wr.from.WriteGSO(bufs, gso, headroom); n != k || err != nil {
					errs <- fmt.Errorf("writer %d: WriteGSO of %d = %d, %v", wr.id, k, n, err)
					return
				}
				seq += k
			}
		})
	}
	read := func(s *afpacket.Socket, want int, ws []*writer) {
		rng := rand.New(rand.NewPCG(uint64(want), 3))
		bufs, sizes := devtest.MakeBatch(64, headroom+1400+14+256)
		meta := make([]link.RxMeta, 64)
		gso := make([]link.GSO, 64)
		next := map[int]int{}
		for got := 0; got < want; {
			m := 1 + rng.IntN(64)
			n, err := s.ReadGSO(bufs[:m], sizes[:m], meta[:m], gso[:m], headroom)
			if err != nil {
				errs <- err
				return
			}
			for i := range n {
				var f []byte
				if gso[i].Type != link.GSONone {
					f = s.SuperFrame()[headroom : headroom+sizes[i]]
				} else {
					f = bufs[i][headroom : headroom+sizes[i]]
				}
				id, seq, ok := stressID(f)
				if !ok || id >= len(writers) || seq >= perWriter {
					errs <- fmt.Errorf("%s: frame %d of %d bytes (gso %+v) is no writer's: % x", s.Name(), got, len(f), gso[i], f[:min(40, len(f))])
					return
				}
				wr := writers[id]
				if seq != next[id] {
					errs <- fmt.Errorf("%s: writer %d's frame %d came after %d", s.Name(), id, seq, next[id]-1)
					return
				}
				next[id] = seq + 1
				sent := wr.sent[seq]
				wantGSO := link.GSO{}
				if etherType(sent) == 0x0800 {
					wantGSO = link.GSO{Type: link.GSOTCPv4, Size: 1360}
				}
				if string(f) != string(sent) || gso[i] != wantGSO {
					errs <- fmt.Errorf("%s: writer %d's frame %d: %d bytes (gso %+v), want %d (gso %+v)", s.Name(), id, seq, len(f), gso[i], len(sent), wantGSO)
					return
				}
				wr.credit <- struct{}{}
				got++
			}
		}
	}
	wg.Go(func() { read(w.sb, 2*perWriter, writers[:2]) })
	wg.Go(func() { read(w.sa, perWriter, writers[2:]) })
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case err := <-errs:
		t.Fatal(err)
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("timed out")
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	afpacket.WaitQueued(t, w.sb, 2*perWriter)
}
