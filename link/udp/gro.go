package udp

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groCtrlWords is the size of a receive message's control buffer in 8-byte
// words (8-byte words keep the cmsg header aligned): room for the UDP_GRO
// cmsg (an int, 24 bytes with its header on 64-bit Linux) and more, so
// that MSG_CTRUNC does not happen with the options this package sets.
const groCtrlWords = 8

// rmsg is what the split step knows of receive message i.
type rmsg struct {
	size int // bytes received; -1: dropped
	seg  int // segment size of a GRO train (size > seg), else 0: one datagram
	from netip.AddrPort
	// head is how many of the message's bytes are in the caller's buffer
	// (b.heads[i]), the rest being at the same offsets in the overflow
	// slot; slot(i)[kept:size] holds the message from byte kept on (kept
	// starts at head and is lowered by keep).
	head, kept int
}

// groSize returns the segment size in the UDP_GRO cmsg of ctrl, or 0 if
// there is none (or it is not positive).
func groSize(ctrl []byte) int {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(ctrl)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4 {
			return max(int(int32(binary.NativeEndian.Uint32(data))), 0)
		}
		ctrl = rest
	}
	return 0
}

// parse records what the recvmmsg into bufs[i][offset:] (and the overflow
// slots) returned in its b.done messages, and starts a split of them.
func (b *batch) parse(bufs [][]byte, offset int) {
	b.rMsgs += b.done
	for i := range b.done {
		m := &b.msgs[i]
		r := &b.rmsgs[i]
		*r = rmsg{size: -1}
		b.heads[i] = nil
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
			b.truncated++
			continue
		}
		seg := 0
		if b.gro {
			n := min(int(m.Hdr.Controllen), groCtrlWords*8)
			seg = groSize(unsafeBytes(&b.rctrl[i])[:n])
			if seg == 0 && m.Hdr.Flags&unix.MSG_CTRUNC != 0 {
				// The cmsg may have been cut: this could be a GRO
				// train, which must not pass as one datagram.
				b.ctruncated++
				continue
			}
		}
		size := int(m.Len)
		r.size, r.from = size, decode(&b.names[i])
		if seg > 0 && size > seg {
			r.seg = seg
			b.groMsgs++
			b.groDgrams += (size + seg - 1) / seg
		}
		b.heads[i] = bufs[i][offset:]
		r.head = min(size, len(b.heads[i]))
		r.kept = r.head
	}
	b.next, b.at, b.end, b.fresh = 0, 0, b.done, true
}

// unsafeBytes returns the bytes of a control buffer.
func unsafeBytes(c *[groCtrlWords]uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(c)), groCtrlWords*8)
}

// pending reports whether datagrams of the last recvmmsg are left for the
// next split.
func (b *batch) pending() bool { return b.next < b.end }

// splitRecv hands out the datagrams of the received messages, from where the
// last split stopped, into bufs[n][offset:], their lengths into sizes[n]
// and their sources into from[n], in order, and returns how many. A GRO
// train is cut into datagrams of its segment size; any other message is
// one datagram. A datagram longer than its buffer is also kept whole in
// the overflow slot of its message and b.large[n] points at it (nil for
// the others), as before GRO.
//
// The first splitRecv after parse (b.heads set) finds message i in bufs[i]:
// its first datagram stays there when it is handed out as datagram i, and
// before datagram n > i is written over message n's start, keep copies
// that start into message n's slot. When bufs are full and datagrams are
// left, keep moves what is left of every message into its slot and the
// heads are forgotten, so that the next split, into any buffers, reads
// from the slots only. The slots are not touched again until that is done:
// ReadFrom does not call recvmmsg while datagrams are pending.
func (b *batch) splitRecv(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) int {
	n := 0
	for b.next < b.end && n < len(bufs) {
		i, p := b.next, b.at
		r := &b.rmsgs[i]
		if r.size < 0 {
			b.next, b.at = i+1, 0
			continue
		}
		q := r.size
		if r.seg > 0 {
			q = min(p+r.seg, r.size)
		}
		if n > i && n < b.end {
			b.keep(n, 0) // datagram n is written over message n's start
		}
		inPlace := b.fresh && n == i && p == 0
		dst := bufs[n][offset:]
		b.large[n] = nil
		if d := q - p; d <= len(dst) {
			if !inPlace {
				copy(dst, b.bytes(i, p, q))
			}
		} else {
			b.keep(i, p)
			whole := b.slot(i)[p:q]
			b.large[n] = whole
			if !inPlace {
				copy(dst, whole)
			}
		}
		sizes[n], from[n] = q-p, r.from
		n++
		if q == r.size {
			b.next, b.at = i+1, 0
		} else {
			b.at = q
		}
	}
	if b.fresh {
		if b.pending() {
			b.keep(b.next, b.at)
			for k := b.next + 1; k < b.end; k++ {
				b.keep(k, 0)
			}
		}
		for k := range b.end {
			b.heads[k] = nil
		}
		b.fresh = false
	}
	return n
}

// keep makes message i's slot hold it from byte p on, copying from its
// start in the caller's buffer what only that holds.
func (b *batch) keep(i, p int) {
	r := &b.rmsgs[i]
	if r.size < 0 || p >= r.kept || b.heads[i] == nil {
		return
	}
	copy(b.slot(i)[p:r.kept], b.heads[i][p:r.kept])
	r.kept = p
}

// bytes returns bytes [p, q) of message i, in the caller's buffer if it
// holds them all, else in the slot.
func (b *batch) bytes(i, p, q int) []byte {
	r := &b.rmsgs[i]
	if p < r.kept && q <= r.head {
		return b.heads[i][p:q]
	}
	b.keep(i, p)
	return b.slot(i)[p:q]
}
