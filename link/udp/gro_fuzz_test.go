package udp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
)

// planReader hands out the bytes of a fuzz input, then zeros.
type planReader []byte

func (r *planReader) byte() int {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return int(b)
}

func (r *planReader) u16() int { return r.byte()<<8 | r.byte() }

// fuzzMessage is message i of a fuzz input: its bytes, the segment size
// in its UDP_GRO cmsg (0: none), its flags and source.
type fuzzMessage struct {
	data          []byte
	seg           int
	trunc, ctrunc bool
	from          netip.AddrPort
}

// FuzzSplitRecv plays the kernel's side of a recvmmsg into the iovecs
// prepareRecv set up (caller's buffers of the input's lengths, then the
// overflow slots), with UDP_GRO cmsgs (behind another cmsg, at times) of
// the input's segment sizes and MSG_TRUNC and MSG_CTRUNC flags, then hands
// the datagrams out through parse and splitRecv into batches of buffers of
// the input's counts and lengths, overwriting each batch's buffers after
// the call as a caller reusing them does. Invariant: the datagrams handed
// out are, in order, those of the messages not dropped (MSG_TRUNC, or
// MSG_CTRUNC without the cmsg); those of a message concatenate to it, each
// of the segment size but a shorter last, ceil(len/seg) of them, or one if
// it is no GRO train (no cmsg, or not longer than the segment); each
// comes with its message's source; one longer than its buffer has its
// start in the buffer and is whole in Large, one that fits has no Large.
func FuzzSplitRecv(f *testing.F) {
	f.Add([]byte{0, 2, 5, 220, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 1, 0})
	f.Add([]byte{8, 3, 5, 220, 5, 220, 0, 40, 218, 192, 5, 120, 1, 0, 78, 32, 0, 0, 2, 1, 0, 50, 0, 0, 0, 3, 2, 5, 220})
	f.Add([]byte{0, 1, 255, 255, 0, 255, 255, 0, 100, 0, 1, 0, 4, 0, 100})
	b := newRecvBatch(true)
	srcs := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:4789"),
		netip.MustParseAddrPort("10.0.0.2:4789"),
		netip.MustParseAddrPort("10.0.0.1:1"),
	}
	f.Fuzz(func(t *testing.T, plan []byte) {
		r := planReader(plan)
		b.rMsgs, b.groMsgs, b.groDgrams, b.truncated, b.ctruncated = 0, 0, 0, 0, 0
		offset := r.byte() % 32
		nmsg := 1 + r.byte()%BatchSize
		bufs := make([][]byte, nmsg)
		for i := range bufs {
			bufs[i] = make([]byte, offset+r.u16()%9000)
		}
		b.prepareRecv(bufs, offset)
		msgs := make([]fuzzMessage, nmsg)
		total := 0 // datagrams, to bound the work
		for i := range msgs {
			m := &msgs[i]
			size := r.u16() % 70000
			capacity := len(bufs[i]) - offset
			if capacity < link.MaxLarge {
				capacity = link.MaxLarge
			}
			size = min(size, capacity)
			m.seg = r.u16()
			if m.seg > 0 && size/m.seg > 200 {
				m.seg = size / 200
			}
			fl := r.byte()
			m.trunc, m.ctrunc = fl&0x1f == 1, fl&0x1f == 2
			m.from = srcs[fl>>5%len(srcs)]
			m.data = make([]byte, size)
			for k := range m.data {
				m.data[k] = byte(i*7 + k*13 + k>>8)
			}
			// The kernel's part: scatter into the iovecs, name, cmsg.
			hm := &b.msgs[i]
			rest := m.data
			for _, iov := range unsafe.Slice(hm.Hdr.Iov, hm.Hdr.Iovlen) {
				k := copy(unsafe.Slice(iov.Base, iov.Len), rest)
				rest = rest[k:]
			}
			if len(rest) > 0 {
				t.Fatalf("message %d: %d bytes do not fit its iovecs", i, len(m.data))
			}
			hm.Len = uint32(size)
			encode(&b.names[i], unix.AF_INET6, m.from)
			hm.Hdr.Flags = 0
			if m.trunc {
				hm.Hdr.Flags |= unix.MSG_TRUNC
			}
			if m.ctrunc {
				hm.Hdr.Flags |= unix.MSG_CTRUNC
			}
			ctrl := unsafe.Slice((*byte)(unsafe.Pointer(&b.rctrl[i])), groCtrlWords*8)
			clear(ctrl)
			at := 0
			if fl&0x10 != 0 { // another cmsg first
				h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
				h.Level, h.Type = unix.SOL_IP, unix.IP_TOS
				h.SetLen(unix.CmsgLen(1))
				at = unix.CmsgSpace(1)
			}
			if m.seg > 0 {
				h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[at]))
				h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
				h.SetLen(unix.CmsgLen(4))
				binary.NativeEndian.PutUint32(ctrl[at+unix.CmsgLen(0):], uint32(m.seg))
				at += unix.CmsgSpace(4)
			}
			hm.Hdr.SetControllen(at)
			if !m.trunc && !(m.ctrunc && m.seg == 0) {
				if m.seg > 0 && size > m.seg {
					total += (size + m.seg - 1) / m.seg
				} else {
					total++
				}
			}
		}
		b.done = nmsg
		b.parse(bufs, offset)

		mi, at := 0, 0 // next expected datagram: at byte at of message mi
		skip := func() {
			for mi < nmsg && (msgs[mi].trunc || (msgs[mi].ctrunc && msgs[mi].seg == 0)) {
				mi++
			}
		}
		skip()
		got := 0
		for call := 0; ; call++ {
			if call > 0 {
				// A later call: the caller's buffers of the first are its
				// own again, new ones of other counts and lengths.
				off := r.byte() % 32
				n := 1 + r.byte()%BatchSize
				bufs = make([][]byte, n)
				for i := range bufs {
					bufs[i] = make([]byte, off+r.u16()%9000)
				}
				offset = off
			}
			sizes := make([]int, len(bufs))
			from := make([]netip.AddrPort, len(bufs))
			n := b.splitRecv(bufs, sizes, from, offset)
			b.release()
			if n == 0 && b.pending() {
				t.Fatalf("call %d: no datagram handed out, but some are pending", call)
			}
			for k := range n {
				if mi >= nmsg {
					t.Fatalf("call %d: datagram %d more than the messages hold", call, k)
				}
				m := &msgs[mi]
				end := len(m.data)
				if m.seg > 0 && len(m.data) > m.seg {
					end = min(at+m.seg, len(m.data))
				}
				want := m.data[at:end]
				dst := bufs[k][offset:]
				var d []byte
				if sizes[k] > len(dst) {
					d = b.large[k]
					if !bytes.Equal(dst, want[:min(len(dst), len(want))]) {
						t.Fatalf("call %d datagram %d (message %d byte %d): the buffer does not hold its start", call, k, mi, at)
					}
				} else {
					d = dst[:sizes[k]]
					if b.large[k] != nil {
						t.Fatalf("call %d datagram %d fits its buffer but has Large", call, k)
					}
				}
				if !bytes.Equal(d, want) {
					t.Fatalf("call %d datagram %d: %d bytes, want message %d bytes [%d, %d)", call, k, sizes[k], mi, at, end)
				}
				if from[k] != m.from {
					t.Fatalf("call %d datagram %d from %v, want %v", call, k, from[k], m.from)
				}
				got++
				at = end
				if at == len(m.data) {
					mi, at = mi+1, 0
					skip()
				}
			}
			for _, buf := range bufs {
				for k := range buf {
					buf[k] = 0xee
				}
			}
			if !b.pending() {
				break
			}
		}
		if mi != nmsg || got != total {
			t.Fatalf("handed out %d datagrams up to message %d, want %d of %d messages", got, mi, total, nmsg)
		}
		wantGRO := 0
		for _, m := range msgs {
			if !m.trunc && m.seg > 0 && len(m.data) > m.seg {
				wantGRO++
			}
		}
		if b.groMsgs != wantGRO {
			t.Fatalf("%d GRO messages counted, want %d", b.groMsgs, wantGRO)
		}
	})
}
