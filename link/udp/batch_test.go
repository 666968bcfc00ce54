package udp

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzPrepareSend checks the messages prepareSend builds from any batch of
// datagrams (lengths and destinations from the input, one of them of the
// wrong family for the IPv4 socket): in order they hold exactly the
// datagrams of the right family, each iovec pointing at the caller's
// bytes; a GSO message is a run as the kernel takes it (same address, all
// of the segment size but a shorter non-empty last, at most maxSegments and
// maxGSOPayload, the cmsg carrying the size); a plain one has no cmsg; and
// no message could have been joined to the one before it.
func FuzzPrepareSend(f *testing.F) {
	f.Add([]byte{0, 5, 0, 5, 0, 5, 0, 2}, uint16(maxGSOPayload))
	f.Add([]byte{0, 5, 1, 5, 0, 6, 0, 6, 0, 2, 3, 2, 0, 2, 0, 0, 0, 1}, uint16(1999))
	f.Add(make([]byte, 2*BatchSize), uint16(0))
	sizes := []int{0, 1, 100, 500, 1000, 1200, 1472, 2000, 65507}
	dests := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:4789"),
		netip.MustParseAddrPort("10.0.0.2:4789"),
		netip.MustParseAddrPort("10.0.0.1:4790"),
		netip.MustParseAddrPort("[2001:db8::1]:4789"), // wrong family
	}
	f.Fuzz(func(t *testing.T, plan []byte, maxSeg uint16) {
		n := min(len(plan)/2, BatchSize)
		bufs := make([][]byte, n)
		to := make([]netip.AddrPort, n)
		const offset = 4
		for i := range n {
			bufs[i] = make([]byte, offset+sizes[int(plan[2*i]>>4)%len(sizes)]+int(plan[2*i]&0xf))
			if plan[2*i]&0xf == 0xf {
				bufs[i] = bufs[i][:offset] // empty
			}
			to[i] = dests[int(plan[2*i+1])%len(dests)]
		}
		b := newSendBatch()
		b.prepareSend(bufs, to, offset, unix.AF_INET, int(maxSeg))
		var want []int // the datagrams that can be sent, in order
		for i := range n {
			if to[i].Addr().Is4() {
				want = append(want, i)
			}
		}
		if (len(want) < n) != (b.err != nil) {
			t.Fatalf("%d of %d datagrams of the right family, err %v", len(want), n, b.err)
		}
		k := 0 // next of want
		prevClosed, prevTo, prevSeg, prevTotal, prevCount := true, netip.AddrPort{}, 0, 0, 0
		for mi := range b.n {
			m := &b.msgs[mi].Hdr
			iovs := unsafe.Slice(m.Iov, m.Iovlen)
			dst := decode(&b.names[mi])
			total := 0
			for j, iov := range iovs {
				if k >= len(want) {
					t.Fatalf("message %d holds more datagrams than %v", mi, want)
				}
				p := bufs[want[k]][offset:]
				if int(iov.Len) != len(p) || (len(p) > 0 && iov.Base != &p[0]) {
					t.Fatalf("message %d iovec %d is not datagram %d", mi, j, want[k])
				}
				if to[want[k]] != dst {
					t.Fatalf("message %d to %v holds datagram %d to %v", mi, dst, want[k], to[want[k]])
				}
				total += len(p)
				k++
			}
			first := int(iovs[0].Len)
			// Could this message have joined the previous one?
			if !prevClosed && dst == prevTo && prevSeg <= int(maxSeg) && first <= prevSeg && first > 0 && prevTotal+first <= maxGSOPayload && prevCount < maxSegments {
				t.Fatalf("message %d (%d bytes to %v) could have joined message %d (segment %d, %d bytes, %d datagrams)", mi, first, dst, mi-1, prevSeg, prevTotal, prevCount)
			}
			if len(iovs) == 1 {
				if m.Controllen != 0 || m.Control != nil {
					t.Fatalf("plain message %d has a cmsg", mi)
				}
			} else {
				seg := int(b.ctrl[mi].size)
				if m.Control != (*byte)(unsafe.Pointer(&b.ctrl[mi])) || int(m.Controllen) != unix.CmsgSpace(2) ||
					b.ctrl[mi].hdr.Level != unix.SOL_UDP || b.ctrl[mi].hdr.Type != unix.UDP_SEGMENT || int(b.ctrl[mi].hdr.Len) != unix.CmsgLen(2) {
					t.Fatalf("GSO message %d: bad cmsg", mi)
				}
				if seg != first || seg > int(maxSeg) || len(iovs) > maxSegments || total > maxGSOPayload {
					t.Fatalf("GSO message %d: segment %d (first %d, max %d), %d datagrams, %d bytes", mi, seg, first, maxSeg, len(iovs), total)
				}
				for j, iov := range iovs {
					if l := int(iov.Len); l == 0 || l > seg || (l < seg && j < len(iovs)-1) {
						t.Fatalf("GSO message %d of segment %d: datagram %d of %d has %d bytes", mi, seg, j, len(iovs), l)
					}
				}
			}
			last := int(iovs[len(iovs)-1].Len)
			prevClosed = first == 0 || last < first
			prevTo, prevSeg, prevTotal, prevCount = dst, first, total, len(iovs)
		}
		if k != len(want) {
			t.Fatalf("messages hold %d datagrams, want %d", k, len(want))
		}
		b.release()
	})
}
