package router

import (
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/fib"
)

const (
	// icmpQuoteLimit bounds an ICMP error to 576 bytes, as Linux does: the
	// offending packet is quoted as far as that allows (RFC 1812 4.3.2.3).
	icmpQuoteLimit = 576
	// tosInternetControl is the precedence Linux gives ICMP errors.
	tosInternetControl = 0xc0
	defaultTTL         = 64
)

// newPacket takes a spare buffer for a packet the router originates; the
// packet is sent after the current batch. It returns nil when the spares of
// this batch are used up.
func (w *worker) newPacket() *Packet {
	if w.nspare == len(w.spare) {
		if w.sending {
			return nil
		}
		w.sendOriginated() // make room: what waits is sent now
	}
	pk := &w.extraPk[w.nspare]
	*pk = Packet{buf: w.spare[w.nspare], start: headroom, Origin: FromRouter}
	w.nspare++
	w.extra = append(w.extra, pk)
	return pk
}

// deliverLocal handles a packet addressed to the router itself: echo
// requests are answered in place; UDP gets port unreachable, other
// protocols protocol unreachable; TCP and other ICMP are dropped and
// counted (drop_local: nothing listens).
func (w *worker) deliverLocal(p *Packet) {
	h := header.IPv4(p.buf[p.start:p.end])
	if h.More() || h.FragmentOffset() != 0 {
		p.Drop(DropMalformed) // the router does not reassemble
		return
	}
	switch h.TransportProtocol() {
	case header.ICMPv4ProtocolNumber:
		icmp := header.ICMPv4(h.Payload())
		switch {
		case len(icmp) < header.ICMPv4MinimumSize:
			p.Drop(DropMalformed)
		case icmp.Type() != header.ICMPv4Echo:
			p.Drop(DropLocal)
		default:
			w.echoReply(p, h, icmp)
		}
	case header.UDPProtocolNumber:
		w.unreachable(p, header.ICMPv4PortUnreachable, DropNoRoute)
	case header.TCPProtocolNumber:
		p.Drop(DropLocal)
	default:
		w.unreachable(p, header.ICMPv4ProtoUnreachable, DropNoRoute)
	}
}

// echoReply turns an echo request into its reply in place and routes it.
func (w *worker) echoReply(p *Packet, h header.IPv4, icmp header.ICMPv4) {
	src, dst := h.SourceAddress(), h.DestinationAddress()
	h.SetSourceAddress(dst)
	h.SetDestinationAddress(src)
	h.SetTTL(defaultTTL)
	h.SetChecksum(0)
	h.SetChecksum(^h.CalculateChecksum())
	icmp.SetType(header.ICMPv4EchoReply)
	icmp.SetChecksum(0)
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	p.Origin = FromRouter
	nh, _ := w.r.fib.Lookup(netip.AddrFrom4(src.As4()))
	if nh.Kind != fib.Local && nh.Kind != fib.Peer && nh.Kind != fib.Host {
		p.Drop(DropNoRoute)
		return
	}
	p.NextHop, p.routed = nh, true
	w.stats.add(cICMPEchoReplies, 1)
}

// unreachable answers p with ICMP destination unreachable and drops it.
func (w *worker) unreachable(p *Packet, code header.ICMPv4Code, reason DropReason) {
	if w.icmpError(p, header.ICMPv4DstUnreachable, code, 0) {
		w.stats.add(cICMPUnreachable, 1)
	}
	p.Drop(reason)
}

// icmpError originates an ICMP error about p (RFC 792, RFC 1812 4.3.2.7: never
// about an ICMP error, a non-first fragment, a broadcast or multicast, or a
// packet from an unspecified source). It reports whether one was sent.
func (w *worker) icmpError(p *Packet, typ header.ICMPv4Type, code header.ICMPv4Code, mtu uint16) bool {
	r := w.r
	orig := header.IPv4(p.buf[p.start:p.end])
	origSrc := netip.AddrFrom4(orig.SourceAddress().As4())
	origDst := netip.AddrFrom4(orig.DestinationAddress().As4())
	if p.Origin == FromRouter || orig.FragmentOffset() != 0 ||
		origSrc.IsUnspecified() || origSrc.IsLoopback() || isMulticastOrBroadcast(origSrc) ||
		isMulticastOrBroadcast(origDst) {
		return false
	}
	if orig.TransportProtocol() == header.ICMPv4ProtocolNumber {
		// orig[hlen:], not Payload(): a truncated packet is shorter than
		// its total length.
		if icmp := orig[orig.HeaderLength():]; len(icmp) < 1 || !isICMPInfo(header.ICMPv4Type(icmp[0])) {
			return false
		}
	}
	// Like Linux, never limit "fragmentation needed": path MTU discovery
	// depends on it. The per-destination limit goes first: a destination
	// over it does not take from the global budget.
	if fragNeeded := typ == header.ICMPv4DstUnreachable && code == header.ICMPv4FragmentationNeeded; !fragNeeded {
		now := r.clock.Now()
		if !r.icmpTo.allow(now, origSrc.As4()) {
			w.stats.add(cICMPDestRateLimited, 1)
			return false
		}
		if !r.icmp.allow(now, 1) {
			w.stats.add(cICMPRateLimited, 1)
			return false
		}
	}
	e := w.newPacket()
	if e == nil {
		w.stats.add(cICMPNoBuffer, 1)
		return false
	}
	quote := min(len(orig), icmpQuoteLimit-header.IPv4MinimumSize-header.ICMPv4MinimumSize)
	total := header.IPv4MinimumSize + header.ICMPv4MinimumSize + quote
	b := e.buf[e.start : e.start+total]
	e.end = e.start + total
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TOS:         tosInternetControl,
		TotalLength: uint16(total),
		TTL:         defaultTTL,
		Protocol:    uint8(header.ICMPv4ProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(r.icmpSource(p).As4()),
		DstAddr:     tcpip.AddrFrom4(origSrc.As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
	clear(icmp[:header.ICMPv4MinimumSize])
	icmp.SetType(typ)
	icmp.SetCode(code)
	if typ == header.ICMPv4DstUnreachable && code == header.ICMPv4FragmentationNeeded {
		icmp.SetMTU(mtu)
	}
	copy(icmp[header.ICMPv4MinimumSize:], orig[:quote])
	icmp.SetChecksum(^checksum.Checksum(icmp, 0))
	if p.Origin == FromTunnel {
		// Back to the peer it came from, also when its source is the peer
		// node's own address (which the FIB would send to the node's
		// kernel, and that drops a packet from its own address).
		e.NextHop, e.routed = fib.NextHop{Kind: fib.Peer, Peer: p.Peer}, true
	}
	if typ == header.ICMPv4TimeExceeded {
		w.stats.add(cICMPTimeExceeded, 1)
	}
	return true
}

// tooBigForBuffer answers a packet the device cut to the read buffer (a pod
// whose MTU is above the port's) with "fragmentation needed" and the largest
// packet the router can take from it: what fits the buffer, or the next
// hop's MTU if that is smaller. The rest of the packet is lost, so this is
// sent whatever its DF bit; a Linux sender lowers its path MTU either way.
func (w *worker) tooBigForBuffer(p *Packet) {
	mtu := len(p.buf) - p.start
	nh, _ := w.r.fib.Lookup(netip.AddrFrom4([4]byte(p.buf[p.start+16 : p.start+20])))
	if m := w.egressMTU(nh); m > 0 && m < mtu {
		mtu = m
	}
	if w.icmpError(p, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint16(min(mtu, 0xffff))) {
		w.stats.add(cICMPFragNeeded, 1)
	}
}

// icmpSource is the source address of an ICMP error about p: the gateway
// for packets from pods and the host, the node's underlay address for
// packets from the tunnel (Linux uses the address of the interface the
// packet came in on; traceroute shows it as the remote node's hop).
func (r *Router) icmpSource(p *Packet) netip.Addr {
	if p.Origin == FromTunnel && r.cfg.NodeAddr.IsValid() {
		return r.cfg.NodeAddr
	}
	return r.cfg.Gateway
}

func isICMPInfo(t header.ICMPv4Type) bool {
	switch t {
	case header.ICMPv4Echo, header.ICMPv4EchoReply, header.ICMPv4Timestamp, header.ICMPv4TimestampReply, header.ICMPv4InfoRequest, header.ICMPv4InfoReply:
		return true
	}
	return false
}

// fragment splits p into fragments that fit mtu (RFC 791), sent after the
// batch to p's next hop, all in the same round. Fragments after the first
// carry only the options whose copied flag is set. It reports false, having
// dropped p, when there is no room for all of them.
func (w *worker) fragment(p *Packet, mtu int) bool {
	h := header.IPv4(p.buf[p.start:p.end])
	hlen := int(h.HeaderLength())
	payload := p.buf[p.start+hlen : p.end]
	step := (mtu - hlen) &^ 7
	if step <= 0 {
		p.Drop(DropTooBig)
		return false
	}
	need := (len(payload) + step - 1) / step
	if need > len(w.spare) {
		p.Drop(DropTooBig)
		return false
	}
	if need > len(w.spare)-w.nspare && !w.sending {
		w.sendOriginated() // all fragments of a packet go in one round
	}
	if need > len(w.spare)-w.nspare {
		p.Drop(DropTooBig)
		return false
	}
	baseOff := int(h.FragmentOffset())
	more := h.More()
	for off := 0; off < len(payload); off += step {
		n := min(step, len(payload)-off)
		f := w.newPacket() // room was made above
		f.Origin, f.InPort, f.Peer = p.Origin, p.InPort, p.Peer
		f.NextHop, f.routed = p.NextHop, true
		f.end = f.start + hlen + n
		copy(f.buf[f.start:], p.buf[p.start:p.start+hlen])
		if baseOff+off > 0 {
			copiedOptionsOnly(f.buf[f.start+header.IPv4MinimumSize : f.start+hlen])
		}
		copy(f.buf[f.start+hlen:], payload[off:off+n])
		fh := header.IPv4(f.buf[f.start:f.end])
		fh.SetTotalLength(uint16(hlen + n))
		flags := h.Flags() &^ header.IPv4FlagMoreFragments
		if more || off+n < len(payload) {
			flags |= header.IPv4FlagMoreFragments
		}
		fh.SetFlagsFragmentOffset(flags, uint16(baseOff+off))
		fh.SetChecksum(0)
		fh.SetChecksum(^fh.CalculateChecksum())
		w.stats.add(cFragmentsSent, 1)
	}
	return true
}

// copiedOptionsOnly keeps, in the header of a fragment other than the first,
// only the options whose copied flag is set (RFC 791 3.1): the others become
// NOPs, as Linux's ip_options_fragment does, so that the header keeps its
// length and every fragment carries the same amount of payload. A malformed
// option ends the list.
func copiedOptionsOnly(opts []byte) {
	const copied = 0x80
	for i := 0; i < len(opts); {
		switch header.IPv4OptionType(opts[i]) {
		case header.IPv4OptionListEndType:
			return
		case header.IPv4OptionNOPType:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			clear(opts[i:])
			return
		}
		l := int(opts[i+1])
		if opts[i]&copied == 0 {
			for j := i; j < i+l; j++ {
				opts[j] = byte(header.IPv4OptionNOPType)
			}
		}
		i += l
	}
}

// unreachableAll answers host unreachable for packets whose neighbour could
// not be resolved (called by the timer goroutine with its own worker).
func (w *worker) unreachableAll(queued [][]byte) {
	for _, q := range queued {
		if len(q) < header.IPv4MinimumSize {
			continue
		}
		// The queue kept the bytes, not where they came from: a source
		// routed to a peer node came in through the tunnel.
		p := Packet{buf: q, start: 0, end: len(q), Origin: FromPod}
		if nh, _ := w.r.fib.Lookup(netip.AddrFrom4([4]byte(q[12:16]))); nh.Kind == fib.Peer {
			p.Origin, p.Peer = FromTunnel, nh.Peer
		}
		if w.icmpError(&p, header.ICMPv4DstUnreachable, header.ICMPv4HostUnreachable, 0) {
			w.stats.add(cICMPUnreachable, 1)
		}
		w.stats.drop(DropNeighbour)
		if w.nspare == len(w.spare) {
			w.sendOriginated()
		}
	}
	w.sendOriginated()
}

// tokenBucket is a token-bucket policer: tokens accrue at rate per second up
// to burst, and a packet passes if it can take its cost. The router uses one
// per second of ICMP errors (cost 1, as Linux's icmp_msgs_per_sec and
// icmp_msgs_burst) and one per direction of a rate-limited pod (cost in
// bytes). It is safe for concurrent use and takes no lock: it is kept as
// the generic cell rate algorithm (GCRA), which is the same bucket seen
// from the other side. tat, the theoretical arrival time, is when the
// bucket will be full again: a packet of cost c at now passes if the debt
// it leaves, max(tat, now) + c/rate - now, is at most burst/rate, which is
// "the bucket holds at least c tokens"; passing moves tat by c/rate, one
// compare-and-swap. The bucket starts full.
type tokenBucket struct {
	nsPerToken float64
	burstNs    int64
	// epoch is when the bucket was made: times are taken as durations
	// since it, through the monotonic clock (a wall-clock step back must
	// not stop the traffic for as long), and fake clocks work as well.
	epoch time.Time
	tat   atomic.Int64 // ns since epoch
}

// maxBucketNs bounds the bucket's durations so that sums of them cannot
// overflow (a burst of 2^64 bits at 1 bit/s is 584 years: no limit).
const maxBucketNs = 1 << 61

func newTokenBucket(rate, burst float64) *tokenBucket {
	b := &tokenBucket{nsPerToken: 1e9 / rate, burstNs: int64(min(burst*1e9/rate, maxBucketNs)), epoch: time.Now()}
	b.tat.Store(-maxBucketNs) // full: long ago
	return b
}

func (b *tokenBucket) allow(now time.Time, cost float64) bool {
	t := int64(now.Sub(b.epoch))
	c := int64(min(cost*b.nsPerToken+0.5, maxBucketNs))
	for {
		tat := b.tat.Load()
		next := max(tat, t) + c
		if next-t > b.burstNs {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}
