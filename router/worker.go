package router

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/link"
)

const (
	ethHeaderLen = 14
	etherTypeIP  = 0x0800
	etherTypeARP = 0x0806
	// headroom is the space left in front of every packet read, so that an
	// Ethernet header or a tunnel's headers can be prepended in place.
	headroom = 64
)

// worker is the state of one ingress goroutine: its buffers and its egress
// batches. Nothing in it is shared, so the hot path takes no locks.
type worker struct {
	r       *Router
	bufs    [][]byte
	sizes   []int
	starts  []int
	peers   []uint32
	gso     []link.GSO // what ReadGSO said of each frame
	pkts    []Packet
	batch   []*Packet
	spare   [][]byte // buffers for packets the router originates
	nspare  int
	extra   []*Packet // originated packets of the current batch
	extraPk []Packet
	sending bool // in sendOriginated: no new round can start

	groups    []egressGroup // per pod port
	tunOut    [][]byte
	tunPeer   []uint32
	tunGSO    []link.GSO // per tunOut packet, with a GSOTunnel
	tunSupers int        // super-frames in tunOut
	hostOut   [][]byte
	one       [][]byte // a batch of one, for the slow path

	routes routeCache
	stats  workerStats // last: padded
}

type egressGroup struct {
	port *Port
	bufs [][]byte
	gso  []link.GSO // per buffer, for a port with a GSO device
}

func (r *Router) newWorker(batch, bufSize int) *worker {
	bufSize += headroom
	w := &worker{
		r:       r,
		bufs:    make([][]byte, batch),
		sizes:   make([]int, batch),
		starts:  make([]int, batch),
		peers:   make([]uint32, batch),
		gso:     make([]link.GSO, batch),
		pkts:    make([]Packet, batch),
		batch:   make([]*Packet, 0, batch),
		spare:   make([][]byte, batch),
		extra:   make([]*Packet, 0, batch),
		extraPk: make([]Packet, batch),
		tunOut:  make([][]byte, 0, batch),
		tunPeer: make([]uint32, 0, batch),
		tunGSO:  make([]link.GSO, 0, batch),
		hostOut: make([][]byte, 0, batch),
		one:     make([][]byte, 1),
	}
	for i := range w.bufs {
		w.bufs[i] = make([]byte, bufSize)
		w.spare[i] = make([]byte, max(bufSize, 2048))
	}
	r.register(w)
	return w
}

// runPort reads batches from a pod or host port until it is closed.
func (w *worker) runPort(p *Port) {
	for {
		var n int
		var err error
		if p.gso != nil {
			n, err = p.gso.ReadGSO(w.bufs, w.sizes, nil, w.gso, headroom)
		} else {
			n, err = p.dev.Read(w.bufs, w.sizes, headroom)
		}
		if err != nil {
			// A deleted TAP reports an error wrapping ErrClosed: only the
			// router closing the device is an orderly end.
			if !p.closing.Load() {
				why := err.Error()
				p.down.Store(&why)
				w.r.log.Warn("port read failed; port is down", zap.String("port", p.Name), zap.Error(err))
			}
			return
		}
		w.receivePort(p, n)
	}
}

// receivePort decodes and forwards the n packets read from p into w.bufs.
func (w *worker) receivePort(p *Port, n int) {
	w.batch = w.batch[:0]
	bytes, packets := 0, n
	l3 := 0 // where a frame's IPv4 packet starts
	if p.Kind == PodPort {
		l3 = ethHeaderLen
	}
	for i, size := range w.sizes[:n] {
		bytes += size
		if p.gso != nil && w.gso[i].Type != link.GSONone && size > l3 {
			// Counted as its segments (see superframe.go), here and in
			// whatever happens to it: drops at decode too.
			packets += link.Segments(p.gso.SuperFrame()[headroom+l3:headroom+size], w.gso[i]) - 1
		}
	}
	p.RxPackets.Add(uint64(packets))
	p.RxBytes.Add(uint64(bytes))
	for i := 0; i < n; i++ {
		pk := &w.pkts[i]
		*pk = Packet{buf: w.bufs[i], InPort: p.ID}
		if p.gso != nil && w.gso[i].Type != link.GSONone {
			pk.buf, pk.gso, pk.segs = p.gso.SuperFrame(), w.gso[i], 1
			if w.sizes[i] > l3 {
				pk.segs = link.Segments(pk.buf[headroom+l3:headroom+w.sizes[i]], pk.gso)
			}
		}
		var reason DropReason
		if p.Kind == PodPort {
			reason = w.decodePodFrame(p, pk, headroom, headroom+w.sizes[i])
		} else {
			pk.Origin = FromHost
			reason = decodeHostPacket(pk, headroom, headroom+w.sizes[i])
		}
		if reason == DropNone {
			if eg := p.egress.Load(); eg != nil && !eg.allow(w.r.clock.Now(), float64(pk.wireLen())) {
				if pk.gso.Type == link.GSONone {
					reason = DropRateLimited
				} else {
					// Not all of it: cut, each segment policed as it
					// would have been had the TAP cut it (see cutAndSend).
					pk.police, pk.mustCut = eg, true
				}
			}
		}
		switch reason {
		case DropNone:
			w.batch = append(w.batch, pk)
		case dropConsumed:
		case dropTruncated:
			w.tooBigForBuffer(pk)
			w.stats.drop(DropTooBig)
			p.Drops.Add(1)
		default:
			segs := pk.segments()
			w.stats.dropN(reason, segs)
			p.Drops.Add(uint64(segs))
		}
	}
	w.process(w.batch)
}

// runTunnel reads batches from the tunnel until it is closed.
func (w *worker) runTunnel() {
	t := w.r.tunnel
	for {
		var n int
		var err error
		if g := w.r.gsoTun; g != nil {
			n, err = g.RecvGSO(w.bufs, w.sizes, w.starts, w.peers, w.gso, headroom)
		} else {
			n, err = t.Recv(w.bufs, w.sizes, w.starts, w.peers, headroom)
		}
		if err != nil {
			if !errors.Is(err, link.ErrClosed) {
				select {
				case <-w.r.stop:
				default:
					w.r.log.Warn("tunnel receive failed; tunnel stops", zap.Error(err))
				}
			}
			return
		}
		w.receiveTunnel(n)
	}
}

// receiveTunnel forwards the n packets the tunnel decapsulated into w.bufs,
// after checkTunnel.
func (w *worker) receiveTunnel(n int) {
	w.batch = w.batch[:0]
	for i := 0; i < n; i++ {
		if w.sizes[i] == 0 {
			continue // dropped and counted by the tunnel
		}
		pk := &w.pkts[i]
		*pk = Packet{buf: w.bufs[i], Origin: FromTunnel, Peer: w.peers[i]}
		if g := w.r.gsoTun; g != nil && w.gso[i].Type != link.GSONone {
			pk.buf, pk.gso = g.SuperFrame(), w.gso[i]
		}
		reason := decodeIPv4(pk, w.starts[i], w.starts[i]+w.sizes[i])
		switch reason {
		case DropNone:
			reason = w.checkTunnel(pk)
		case dropTruncated:
			// The underlay socket drops and counts datagrams longer than
			// the buffer (tunnel_drop_oversize): this one lies.
			reason = DropMalformed
		}
		if reason != DropNone {
			segs := 1
			if pk.gso.Type != link.GSONone && pk.end > pk.start {
				segs = pk.segments()
			}
			w.stats.dropN(reason, segs)
			continue
		}
		w.batch = append(w.batch, pk)
	}
	w.process(w.batch)
}

// Decoders return, besides the drop reasons:
const (
	// dropConsumed: a frame they handled themselves (ARP), neither dropped
	// nor forwarded.
	dropConsumed = numDropReasons + iota
	// dropTruncated: an IPv4 packet longer than the read buffer: the device
	// cut it to the buffer (a TAP's read(2) does, and reports the cut
	// length). The header is intact and checked.
	dropTruncated
)

// decodePodFrame checks an Ethernet frame from a pod and leaves pk pointing
// at its IPv4 packet. ARP is answered here.
func (w *worker) decodePodFrame(p *Port, pk *Packet, start, end int) DropReason {
	pk.Origin = FromPod
	frame := pk.buf[start:end]
	if len(frame) < ethHeaderLen {
		return DropMalformed
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		w.handleARP(p, frame)
		return dropConsumed
	case etherTypeIP:
	default:
		return DropNotIPv4
	}
	if !p.MAC.IsZero() && link.HardwareAddr(frame[6:12]) != p.MAC {
		return DropSpoofed
	}
	if dst := link.HardwareAddr(frame[0:6]); dst != w.r.cfg.GatewayMAC {
		if dst[0]&1 != 0 {
			return DropMulticast
		}
		return DropBadMAC
	}
	reason := decodeIPv4(pk, start+ethHeaderLen, end)
	if reason != DropNone && reason != dropTruncated {
		return reason
	}
	if netip.AddrFrom4([4]byte(pk.buf[pk.start+12:pk.start+16])) != p.IP {
		return DropSpoofed
	}
	if w.r.isMartianDst([4]byte(pk.buf[pk.start+16 : pk.start+20])) {
		return DropMartian // never handed to the node's kernel
	}
	return reason
}

// decodeHostPacket checks an IP packet from the host port. The node's kernel
// sends IPv6 there as well (router solicitations, MLD reports, from the
// moment the TUN is up): like IPv6 frames from pods, they are not IPv4
// rather than malformed.
func decodeHostPacket(pk *Packet, start, end int) DropReason {
	if end > start && pk.buf[start]>>4 == 6 {
		return DropNotIPv4
	}
	return decodeIPv4(pk, start, end)
}

// decodeIPv4 validates the IPv4 header at buf[start:end] as Linux's ip_rcv
// does (version, header length, total length, header checksum) and trims
// link-layer padding. A packet longer than what was read is malformed,
// unless the read filled the buffer (end == len(buf)): then the device cut
// it, and decodeIPv4 returns dropTruncated with pk holding what was read.
func decodeIPv4(pk *Packet, start, end int) DropReason {
	b := pk.buf[start:end]
	if len(b) < header.IPv4MinimumSize || b[0]>>4 != 4 {
		return DropMalformed
	}
	ihl := int(b[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < header.IPv4MinimumSize || total < ihl || ihl > len(b) {
		return DropMalformed
	}
	if !headerChecksumValid(b[:ihl]) {
		return DropMalformed
	}
	if ihl > header.IPv4MinimumSize && hasSourceRoute(b[header.IPv4MinimumSize:ihl]) {
		return DropSourceRoute
	}
	if total > len(b) {
		if end != len(pk.buf) {
			return DropMalformed
		}
		pk.start, pk.end = start, end
		return dropTruncated
	}
	pk.start, pk.end = start, start+total
	return DropNone
}

// headerChecksumValid reports whether the IPv4 header h (IHL*4 bytes, a
// multiple of 4) has a valid checksum: its one's complement sum is 0xffff,
// as header.IPv4.IsChecksumValid says, summed 32 bits at a time (RFC 1071
// 2(C)): a third of the instructions of the generic checksum, on every
// packet.
func headerChecksumValid(h []byte) bool {
	var sum uint64
	for ; len(h) >= 4; h = h[4:] {
		sum += uint64(binary.BigEndian.Uint32(h))
	}
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	return sum == 0xffff
}

// hasSourceRoute reports whether the options opts hold a loose or strict
// source route, which Linux drops (accept_source_route is off by default).
// The scan stops at the end of the list or at a malformed option.
func hasSourceRoute(opts []byte) bool {
	for i := 0; i < len(opts); {
		switch header.IPv4OptionType(opts[i]) {
		case header.IPv4OptionListEndType:
			return false
		case header.IPv4OptionNOPType:
			i++
			continue
		case ipv4OptionLSRR, ipv4OptionSSRR:
			return true
		}
		if i+1 >= len(opts) || opts[i+1] < 2 {
			return false
		}
		i += int(opts[i+1])
	}
	return false
}

// The source route options (RFC 791 3.1).
const (
	ipv4OptionLSRR header.IPv4OptionType = 0x83
	ipv4OptionSSRR header.IPv4OptionType = 0x89
)

// process runs the pipeline over a batch and transmits what survives,
// then does the same for the packets the router originated meanwhile.
func (w *worker) process(batch []*Packet) {
	if len(batch) == 0 {
		w.sendOriginated() // answers to what was dropped at decode
		return
	}
	r := w.r
	for _, s := range r.ingress {
		w.runStage(s, batch)
	}
	w.route(batch)
	w.forward(batch)
	for _, s := range r.egress {
		w.runStage(s, batch)
	}
	w.checkMTU(batch)
	w.transmit(batch)
	w.sendOriginated()
}

// runStage runs a user stage over a batch. A panic in it is recovered, as
// net/http recovers a handler: the packets still in flight are dropped. A
// stage may rewrite a packet's bytes: one whose IPv4 header it left
// inconsistent with the packet (version, header length, total length) is
// dropped as malformed, so that the router's own code after it never reads
// out of bounds.
func (w *worker) runStage(s Stage, batch []*Packet) {
	defer func() {
		if v := recover(); v != nil {
			w.r.stagePanicked(s, batch, v)
		}
	}()
	s.Process(batch)
	for _, p := range batch {
		if p.verdict == Continue && (!headerIntact(p.buf[p.start:p.end]) || p.gso.Type != link.GSONone && !superIntact(p.buf[p.start:p.end], p.gso)) {
			p.Drop(DropMalformed)
		}
	}
}

// headerIntact reports whether b is still what decodeIPv4 accepted: an IPv4
// header whose length fits and whose total length is len(b).
func headerIntact(b []byte) bool {
	if len(b) < header.IPv4MinimumSize || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0xf) * 4
	return ihl >= header.IPv4MinimumSize && ihl <= len(b) && int(binary.BigEndian.Uint16(b[2:4])) == len(b)
}

// stagePanicLogEvery bounds the logging of panicking stages.
const stagePanicLogEvery = time.Minute

func (r *Router) stagePanicked(s Stage, batch []*Packet, v any) {
	n := 0
	for _, p := range batch {
		if p.verdict == Continue {
			p.Drop(DropStagePanic)
			n++
		}
	}
	now := r.clock.Now().UnixNano()
	last := r.lastPanicLog.Load()
	if (last == 0 || now-last >= int64(stagePanicLogEvery)) && r.lastPanicLog.CompareAndSwap(last, now) {
		r.log.Error("stage panicked; its batch is dropped", zap.String("stage", s.Name()), zap.Any("panic", v), zap.Int("dropped", n), zap.ByteString("stack", debug.Stack()))
	}
}

// sendOriginated routes and sends the packets the router originated while
// processing a batch (ICMP, fragments), and those that originates in turn.
// It frees the spare buffers.
func (w *worker) sendOriginated() {
	w.sending = true
	defer func() { w.sending = false }()
	for done := 0; done < len(w.extra); {
		extra := w.extra[done:]
		done = len(w.extra)
		w.route(extra)
		for _, s := range w.r.egress {
			w.runStage(s, extra)
		}
		w.checkMTU(extra)
		w.transmit(extra)
	}
	w.extra = w.extra[:0]
	w.nspare = 0
}

// route looks up each packet's next hop. Packets for the router itself are
// answered; packets without a route get ICMP unreachable.
func (w *worker) route(batch []*Packet) {
	r := w.r
	for _, p := range batch {
		if p.verdict != Continue || p.routed {
			continue
		}
		dst4 := [4]byte(p.buf[p.start+16 : p.start+20])
		nh, _ := w.routes.lookup(r.fib, binary.BigEndian.Uint32(dst4[:]))
		nh = w.returnPath(p, nh)
		p.NextHop = nh
		switch nh.Kind {
		case fib.Self:
			w.deliverLocal(p)
		case fib.Unreachable:
			code := header.ICMPv4NetUnreachable
			if r.cfg.PodCIDR.Contains(netip.AddrFrom4(dst4)) {
				code = header.ICMPv4HostUnreachable
			}
			w.unreachable(p, code, DropNoRoute)
		case fib.Blackhole:
			p.Drop(DropBlackhole)
		case fib.Host:
			if p.Origin == FromHost {
				w.unreachable(p, header.ICMPv4NetUnreachable, DropLoop)
			}
		}
	}
}

// forward decrements the TTL of forwarded packets, answering time exceeded
// when it runs out. The checksum is updated incrementally (RFC 1624): TTL
// is the high byte of the 16-bit word at offset 8.
func (w *worker) forward(batch []*Packet) {
	for _, p := range batch {
		if p.verdict != Continue || p.Origin == FromRouter {
			continue
		}
		h := p.buf[p.start:p.end]
		if h[8] <= 1 {
			w.icmpError(p, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded, 0)
			p.Drop(DropTTL)
			continue
		}
		h[8]--
		sum := uint32(binary.BigEndian.Uint16(h[10:12])) + 0x0100
		sum += sum >> 16
		binary.BigEndian.PutUint16(h[10:12], uint16(sum))
	}
}

// egressMTU is the largest packet the next hop carries.
func (w *worker) egressMTU(nh fib.NextHop) int {
	switch nh.Kind {
	case fib.Local:
		if p := w.r.port(nh.Port); p != nil {
			return p.MTU
		}
	case fib.Peer:
		return w.r.cfg.TunnelMTU
	case fib.Host:
		if p := w.r.port(HostPortID); p != nil {
			return p.MTU
		}
	}
	return 0
}

// checkMTU answers "fragmentation needed" for packets with DF that are too
// big for the egress MTU and fragments the others.
func (w *worker) checkMTU(batch []*Packet) {
	for _, p := range batch {
		if p.verdict != Continue {
			continue
		}
		mtu := w.egressMTU(p.NextHop)
		size := p.end - p.start
		if p.gso.Type != link.GSONone {
			size = p.segmentLen()
		}
		if mtu == 0 || size <= mtu {
			continue
		}
		if dontFragment(p.buf[p.start:p.end]) {
			if w.icmpError(p, header.ICMPv4DstUnreachable, header.ICMPv4FragmentationNeeded, uint16(mtu)) {
				w.stats.add(cICMPFragNeeded, 1)
			}
			p.Drop(DropTooBig)
			continue
		}
		if p.gso.Type != link.GSONone {
			p.mustCut = true // cut by cutAndSend, to the MTU
			continue
		}
		if w.fragment(p, mtu) {
			p.Consume()
		}
	}
}

// transmit sends every packet still in the batch, grouped by egress port.
// Each packet moves exactly one counter: forwarded when its device or the
// tunnel took it (in flush), or one drop reason.
func (w *worker) transmit(batch []*Packet) {
	r := w.r
	// The last neighbour found: the packets of a batch mostly go to one
	// pod, whose MAC does not change within a batch (the first Lookup
	// moved a stale entry on, as each would).
	var last struct {
		port uint32
		dst  netip.Addr
		mac  link.HardwareAddr
	}
	for _, p := range batch {
		if p.verdict != Continue {
			if p.verdict == Dropped {
				w.stats.dropN(p.reason, p.segments())
			}
			continue
		}
		super := p.gso.Type != link.GSONone
		if super && (p.mustCut || p.NextHop.Kind == fib.Host ||
			p.NextHop.Kind == fib.Peer && (r.gsoTun == nil || !r.gsoTun.SendsWhole(p.NextHop.Peer))) {
			w.cutAndSend(p)
			continue
		}
		switch p.NextHop.Kind {
		case fib.Local:
			port := r.port(p.NextHop.Port)
			if port == nil {
				w.stats.dropN(DropNoRoute, p.segments())
				continue
			}
			dst := netip.AddrFrom4([4]byte(p.buf[p.start+16 : p.start+20]))
			if super {
				// Whole only to a device that takes it, and a pod whose
				// MAC is known: else its segments go (or wait for ARP)
				// one by one.
				if port.gso == nil {
					w.cutAndSend(p)
					continue
				}
				mac, ok := r.neigh.Lookup(port.ID, dst)
				if !ok {
					w.cutAndSend(p)
					continue
				}
				// The MAC found is the one it goes to: a second Lookup
				// that failed (the entry changed meanwhile) would queue
				// it whole for ARP, and Resolved write it as one frame.
				last.port, last.dst, last.mac = port.ID, dst, mac
			}
			if in := port.ingress.Load(); in != nil && !in.allow(r.clock.Now(), float64(p.wireLen())) {
				if super {
					// Not all of it: its segments, each policed.
					w.cutAndSend(p)
					continue
				}
				segs := p.segments()
				w.stats.dropN(DropRateLimited, segs)
				port.Drops.Add(uint64(segs))
				continue
			}
			if dst != last.dst || port.ID != last.port {
				mac, ok := r.neigh.Lookup(port.ID, dst)
				if !ok {
					// Counted when it leaves (neighbourHooks.Resolved) or
					// is dropped (Failed, neigh_queue_drops).
					r.neigh.Enqueue(port.ID, dst, p.buf[p.start:p.end])
					continue
				}
				last.port, last.dst, last.mac = port.ID, dst, mac
			}
			s := p.start - ethHeaderLen
			writeEthernet(p.buf[s:], last.mac, r.cfg.GatewayMAC, etherTypeIP)
			g := w.groupFor(port)
			g.bufs = append(g.bufs, p.buf[s:p.end])
			if port.gso != nil {
				g.gso = append(g.gso, p.gso)
			}
		case fib.Peer:
			w.tunOut = append(w.tunOut, p.buf[p.start-headroom:p.end])
			w.tunPeer = append(w.tunPeer, p.NextHop.Peer)
			if r.gsoTun != nil {
				w.tunGSO = append(w.tunGSO, p.gso)
				if super {
					w.tunSupers++
				}
			}
		case fib.Host:
			w.hostOut = append(w.hostOut, p.buf[p.start:p.end])
		default:
			w.stats.dropN(DropNoRoute, p.segments())
		}
	}
	w.flush()
}

func (w *worker) groupFor(p *Port) *egressGroup {
	for i := range w.groups {
		if w.groups[i].port == p {
			return &w.groups[i]
		}
	}
	for i := range w.groups {
		if w.groups[i].port == nil {
			w.groups[i].port = p
			return &w.groups[i]
		}
	}
	w.groups = append(w.groups, egressGroup{port: p, bufs: make([][]byte, 0, cap(w.batch)), gso: make([]link.GSO, 0, cap(w.batch))})
	return &w.groups[len(w.groups)-1]
}

// flush writes the egress batches and counts as forwarded what the
// devices and the tunnel took.
func (w *worker) flush() {
	r := w.r
	sent := 0
	for i := range w.groups {
		g := &w.groups[i]
		if g.port == nil {
			continue
		}
		if len(g.bufs) > 0 {
			sent += w.writeGSO(g.port, g.bufs, g.gso)
		}
		g.port, g.bufs, g.gso = nil, g.bufs[:0], g.gso[:0]
	}
	if len(w.tunOut) > 0 {
		// The tunnel counts the rest itself: drop_unknown_peer,
		// tunnel_tx_errors (in drop_tx_error), and the direct backend's
		// packets queued for ARP (tunnel_tx_resolved, in forwarded, when
		// sent; drop_no_neighbour when not). Counting len-n here as well
		// would count them twice.
		var n int
		if w.tunSupers > 0 {
			n, _ = r.gsoTun.SendGSO(w.tunOut, w.tunGSO, w.tunPeer, headroom)
		} else {
			n, _ = r.tunnel.Send(w.tunOut, w.tunPeer, headroom)
		}
		sent += n
		w.tunOut, w.tunPeer, w.tunGSO, w.tunSupers = w.tunOut[:0], w.tunPeer[:0], w.tunGSO[:0], 0
	}
	if len(w.hostOut) > 0 {
		if hp := r.port(HostPortID); hp != nil {
			sent += w.write(hp, w.hostOut)
		} else {
			w.stats.dropN(DropNoRoute, len(w.hostOut))
		}
		w.hostOut = w.hostOut[:0]
	}
	if sent > 0 {
		w.stats.add(cForwarded, sent)
	}
}

// write sends a batch on p, counting what the device refused (whether or
// not it said why); it returns how many it sent.
func (w *worker) write(p *Port, bufs [][]byte) int { return w.writeGSO(p, bufs, nil) }

// writeGSO is write where gso (if not nil: p's device is a GSODevice)
// describes each frame; super-frames count as their segments, in what it
// returns too.
func (w *worker) writeGSO(p *Port, bufs [][]byte, gso []link.GSO) int {
	if p.gso == nil || len(gso) != len(bufs) {
		gso = nil
	}
	var n int
	if gso != nil {
		n, _ = p.gso.WriteGSO(bufs, gso, 0)
	} else {
		n, _ = p.dev.Write(bufs, 0)
	}
	n = min(max(n, 0), len(bufs))
	bytes := 0
	for _, b := range bufs[:n] {
		bytes += len(b)
	}
	sent, lost := n, len(bufs)-n
	if gso != nil {
		sent, lost = frameSegments(bufs[:n], gso), frameSegments(bufs[n:], gso[n:])
	}
	p.TxBytes.Add(uint64(bytes))
	p.TxPackets.Add(uint64(sent))
	if lost > 0 {
		w.stats.dropN(DropTxError, lost)
		p.Drops.Add(uint64(lost))
	}
	return sent
}

// frameSegments is how many packets the Ethernet frames bufs, described by
// gso, are on the wire.
func frameSegments(bufs [][]byte, gso []link.GSO) int {
	n := len(bufs)
	for i, b := range bufs {
		if gso[i].Type != link.GSONone && len(b) > ethHeaderLen {
			n += link.Segments(b[ethHeaderLen:], gso[i]) - 1
		}
	}
	return n
}

// writeOne sends one frame or packet on a port (slow path).
func (w *worker) writeOne(p *Port, b []byte) bool {
	w.one[0] = b
	ok := w.write(p, w.one) == 1
	w.one[0] = nil
	return ok
}

func writeEthernet(b []byte, dst, src link.HardwareAddr, etherType uint16) {
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], etherType)
}

func isMulticastOrBroadcast(a netip.Addr) bool {
	return a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
