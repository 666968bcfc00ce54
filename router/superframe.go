package router

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
)

// Super-frames: a pod's kernel hands its TAP 64 KB TCP super-segments (TSO)
// and UDP super-datagrams (UDP_SEGMENT), and a veth hands the underlay's
// packet socket the same. A port whose device is a link.GSODevice reads
// them whole (Packet.GSO says so), and the pipeline handles one as one
// packet: decoded, policed, routed and TTL-decremented once, seen once by
// every stage. Its size against the egress MTU is its segments' (a
// segment too big with DF set gets "fragmentation needed" with the MTU,
// as Linux's ip_forward checks skb_gso_validate_network_len). At egress
// it is written whole to a port whose device takes super-frames, and to a
// tunnel that does (tunnel.GSOTunnel: the direct backend, for a peer whose
// MAC is resolved) — one write where the kernel would pass one GSO skb
// over a veth — and cut into its segments everywhere else (the vxlan and
// udp tunnels, the host port, a TAP without offloads, a pod whose MAC is
// not resolved yet): the router does in software what the kernel's GSO
// does before a device without TSO.
//
// A policer charges a super-frame what its segments are on the wire; one
// whose bucket cannot take it whole is cut, and its segments are policed
// one by one (the first ones pass), as if its TAP had cut it.
//
// Counters count segments, what the wire carries, so that they are the
// same whether a flow's packets crossed the router whole or cut (and as
// Linux's ip_rcv counts InReceives by gso_segs): a super-frame of 44
// segments forwarded adds 44 to forwarded and to its ports' packet
// counters.

// segments is how many packets p is on the wire: for a super-frame, as
// many as its port counted it received (whatever a stage did to its
// headers since, and also when it was dropped before its IPv4 header was
// decoded).
func (p *Packet) segments() int {
	if p.gso.Type == link.GSONone {
		return 1
	}
	if p.segs > 0 {
		return p.segs
	}
	return link.Segments(p.buf[p.start:p.end], p.gso)
}

// wireLen is the length of p on the wire, what a policer charges: a
// super-frame's length plus the headers each of its segments but the
// first repeats, as Linux's qdisc_pkt_len_init counts a GSO packet. (A
// super-frame charged its own length would take a 156-byte toll for 128
// one-byte UDP datagrams, 3712 bytes on the wire.)
func (p *Packet) wireLen() int {
	n := p.end - p.start
	if p.gso.Type == link.GSONone {
		return n
	}
	b := p.buf[p.start:p.end]
	hdr := int(b[0]&0x0f) * 4
	if p.gso.Type == link.GSOUDPv4 {
		hdr += 8
	} else if len(b) >= hdr+20 {
		hdr += int(b[hdr+12]>>4) * 4
	}
	return n + (p.segments()-1)*hdr
}

// superIntact reports whether the super-frame b is still what g says and
// the device read: a stage left its transport header in it and of its
// protocol (the writer of a super-frame whole reads it, the kernel
// refuses one whose headers do not fit, and cutting it needs it), its
// IPv4 header checksum valid and not a fragment.
func superIntact(b []byte, g link.GSO) bool {
	var s gso.Segmenter
	if g.Type == link.GSOUDPv4 {
		return s.ResetUDP(b, int(g.Size)) == nil
	}
	return g.Size > 0 && s.Reset(b, len(b)+1) == nil
}

// GSO says whether p is a super-frame, and how it is cut (see above). A
// stage that rewrites a super-frame's addresses or ports must keep its
// transport checksum field the pseudo-header sum (link.GSO): adjust it as
// RFC 1624 says, but as a sum, not as its complement.
func (p *Packet) GSO() link.GSO { return p.gso }

// segmentLen is the IPv4 length of the largest segment of the super-frame
// p.
func (p *Packet) segmentLen() int {
	b := p.buf[p.start:p.end]
	ihl := int(b[0]&0x0f) * 4
	if p.gso.Type == link.GSOUDPv4 {
		return min(len(b), ihl+8+int(p.gso.Size))
	}
	if len(b) < ihl+20 {
		return len(b)
	}
	return min(len(b), ihl+int(b[ihl+12]>>4)*4+int(p.gso.Size))
}

// superFrameSegments is the size of a cutter's batch: the segments of a
// super-frame go to transmit that many at a time.
const superFrameSegments = 64

// cutter holds the buffers a super-frame is cut into. Cutters live in a
// fixed array of slots, each taken by a compare-and-swap and given back by
// a store (as tunnel's batches: a sync.Pool is emptied by the collector and,
// under the race detector, drops items at random), so only workers cutting
// at the moment hold one, and cutting allocates nothing once a slot has
// its cutter. More cutters at once than slots get one of their own, which
// is garbage afterwards.
type cutter struct {
	seg   gso.Segmenter
	bufs  [][]byte
	pkts  []Packet
	batch []*Packet
	slot  *cutterSlot
}

// cutterSlot is a cutter and whether it is taken, padded to 64 bytes.
type cutterSlot struct {
	taken atomic.Bool
	c     *cutter
	_     [64 - 8 - 8]byte
}

// cutterSlots has two slots per CPU, as tunnel's batches.
var cutterSlots = make([]cutterSlot, max(2*runtime.GOMAXPROCS(0), 4))

// getCutter returns a cutter whose buffers hold bufSize bytes each; the
// caller gives it back with putCutter.
func getCutter(bufSize int) *cutter {
	for i := range cutterSlots {
		s := &cutterSlots[i]
		if !s.taken.Load() && s.taken.CompareAndSwap(false, true) {
			if s.c == nil || len(s.c.bufs[0]) < bufSize {
				s.c = newCutter(bufSize)
				s.c.slot = s
			}
			return s.c
		}
	}
	return newCutter(bufSize)
}

func newCutter(bufSize int) *cutter {
	c := &cutter{
		bufs:  make([][]byte, superFrameSegments),
		pkts:  make([]Packet, superFrameSegments),
		batch: make([]*Packet, superFrameSegments),
	}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, bufSize)
		c.batch[i] = &c.pkts[i]
	}
	return c
}

func putCutter(c *cutter) {
	c.seg = gso.Segmenter{} // do not pin the super-frame
	if c.slot != nil {
		c.slot.taken.Store(false)
	}
}

// cutAndSend cuts the super-frame p, routed, into its segments and sends
// them as batches of their own (checkMTU, then transmit), after flushing
// what the current batch holds for egress so that the flow keeps its
// order. A TCP super-frame whose segments the egress MTU cannot carry
// (without DF: checkMTU let it through) is cut to the MTU instead, smaller
// segments as valid as the fragments Linux would send; a UDP one is cut
// into its datagrams, which checkMTU fragments. With p.police set, each
// segment must pass that (its pod's egress) policer.
func (w *worker) cutAndSend(p *Packet) {
	segs := p.segments()
	w.flush()
	c := getCutter(len(w.bufs[0]))
	defer putCutter(c)
	pkt := p.buf[p.start:p.end]
	var err error
	if p.gso.Type == link.GSOUDPv4 {
		err = c.seg.ResetUDP(pkt, int(p.gso.Size))
	} else {
		size := p.segmentLen()
		if mtu := w.egressMTU(p.NextHop); mtu > 0 && size > mtu {
			size = mtu
		}
		err = c.seg.Reset(pkt, size)
	}
	if err != nil {
		w.stats.dropN(DropMalformed, segs) // a stage left it unfit to cut
		return
	}
	policed := 0 // segments the pod's egress policer dropped
	for !c.seg.Done() {
		k := 0
		for k < len(c.bufs) && !c.seg.Done() {
			b := c.bufs[k]
			n := c.seg.Next(b[headroom:])
			if n == 0 {
				break
			}
			if p.police != nil && !p.police.allow(w.r.clock.Now(), float64(n)) {
				policed++
				continue
			}
			q := c.batch[k]
			*q = Packet{buf: b, start: headroom, end: headroom + n, Origin: p.Origin, InPort: p.InPort, Peer: p.Peer, NextHop: p.NextHop, routed: true}
			k++
		}
		if k == 0 && !c.seg.Done() {
			// A segment longer than the buffers, which hold the ingress
			// port's MTU: not what its device checked.
			w.stats.dropN(DropTooBig, max(0, segs-c.seg.Segments()))
			break
		}
		w.checkMTU(c.batch[:k])
		if len(w.extra) > 0 && !w.sending {
			// The fragments checkMTU made of these segments go before
			// the segments after them that need none (the last, shorter
			// datagram), not after the whole batch.
			w.sendOriginated()
		}
		w.transmit(c.batch[:k])
	}
	if policed > 0 {
		w.stats.dropN(DropRateLimited, policed)
		if in := w.r.port(p.InPort); in != nil && p.Origin == FromPod {
			in.Drops.Add(uint64(policed))
		}
	}
}

// dontFragment reports whether the IPv4 packet b has DF set.
func dontFragment(b []byte) bool { return binary.BigEndian.Uint16(b[6:8])&0x4000 != 0 }
