package router

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/fib"
)

// The return path of NATed flows.
//
// kube-proxy (iptables or nftables mode) DNATs a pod's packet to a Service's
// ClusterIP in the node's namespace: pod A → router (no route: host port) →
// node kernel (DNAT to pod B) → host port → router → B. B answers A
// directly, and the router, left alone, would deliver that answer straight
// to A, which never sent anything to B: A's connection is to the ClusterIP.
// The answer has to go back through the node's kernel, whose conntrack
// reverses the DNAT, as it does when the kernel itself routes between pods.
//
// So the router remembers, for every packet that arrives from the host port
// with a pod's source address (the kernel forwarded a pod's packet: plain
// pod-to-pod traffic never crosses the host), the flow its reply will be
// (the reversed addresses and ports, or the ICMP echo identifier), and
// sends a packet of such a flow that comes from a pod or a peer, and would
// be delivered to a local pod, to the host port instead. The kernel then
// un-DNATs it and routes it back to the router, which delivers it.
//
// The table is fixed-size and set-associative (buckets of flowWays slots,
// a seeded hash so that a pod cannot aim its flows at one bucket). The only
// goroutine that adds flows is the host port's; the timer clears expired
// ones. Readers (every pod port's and the tunnel's goroutine) take no lock:
// each slot is a seqlock whose writers claim it with a CAS. With no flow in
// the table, the check is one atomic load.

// Idle timeouts, as conntrack's defaults give a flow its lifetime after its
// last packet: an established TCP flow lives long (conntrack: 5 days; an
// hour here, since the entry is refreshed by every packet the client
// sends), one that saw FIN or RST as long as conntrack keeps TIME_WAIT, UDP
// as udp_timeout_stream, ICMP echo as long as UDP.
const (
	returnTimeoutTCP     = time.Hour
	returnTimeoutClosing = 2 * time.Minute
	returnTimeoutUDP     = 2 * time.Minute
	returnTimeoutICMP    = 2 * time.Minute
)

// DefaultReturnPathFlows is the return path table's capacity when
// Config.ReturnPathFlows is zero: 1.3 MB.
const DefaultReturnPathFlows = 32768

// flowWays is the number of slots per bucket.
const flowWays = 4

// returnScanInterval is how often the timer looks for expired flows.
const returnScanInterval = time.Second

// flowKey is a packed 5-tuple: a = source<<32 | destination; b = valid bit
// | protocol<<32 | source port<<16 | destination port (the ICMP echo
// identifier as the source port). b is never 0 for a valid key: 0 marks an
// empty slot.
type flowKey struct{ a, b uint64 }

const flowValid = 1 << 63

func makeFlowKey(proto uint8, src, dst []byte, sport, dport uint16) flowKey {
	return flowKey{
		a: uint64(binary.BigEndian.Uint32(src))<<32 | uint64(binary.BigEndian.Uint32(dst)),
		b: flowValid | uint64(proto)<<32 | uint64(sport)<<16 | uint64(dport),
	}
}

func (k flowKey) proto() uint8 { return uint8(k.b >> 32) }

// String is for tests and logs.
func (k flowKey) String() string {
	var s, d [4]byte
	binary.BigEndian.PutUint32(s[:], uint32(k.a>>32))
	binary.BigEndian.PutUint32(d[:], uint32(k.a))
	return netip.AddrPortFrom(netip.AddrFrom4(s), uint16(k.b>>16)).String() + "→" +
		netip.AddrPortFrom(netip.AddrFrom4(d), uint16(k.b)).String() + "/" + protoName(k.proto())
}

func protoName(p uint8) string {
	switch p {
	case uint8(header.TCPProtocolNumber):
		return "tcp"
	case uint8(header.UDPProtocolNumber):
		return "udp"
	case uint8(header.ICMPv4ProtocolNumber):
		return "icmp"
	case protoSCTP:
		return "sctp"
	}
	return "?"
}

const protoSCTP = 132

// The ICMP types whose payload quotes the packet they are about.
func isICMPError(t header.ICMPv4Type) bool {
	return t == header.ICMPv4DstUnreachable || t == header.ICMPv4TimeExceeded || t == header.ICMPv4ParamProblem
}

// transport returns the IPv4 header length of h and whether h carries the
// first bytes of its transport header (at least n of them): not a later
// fragment. h's header length is known to be valid (decodeIPv4) or is
// checked here (quoted packets).
func transport(h []byte, n int) (int, bool) {
	if len(h) < header.IPv4MinimumSize {
		return 0, false
	}
	ihl := int(h[0]&0xf) * 4
	if ihl < header.IPv4MinimumSize || len(h) < ihl+n {
		return 0, false
	}
	if binary.BigEndian.Uint16(h[6:8])&0x1fff != 0 {
		return 0, false // a later fragment: no transport header
	}
	return ihl, true
}

// replyKeyOfRequest is the flow of the replies to the packet h, which went
// from a client to a server: the reversed tuple. Only TCP, UDP, SCTP and
// ICMP echo requests have replies that can be told apart. closing says that
// h is a TCP segment with FIN or RST. h may be a packet quoted in an ICMP
// error (its first 8 transport bytes only).
func replyKeyOfRequest(h []byte) (k flowKey, closing, ok bool) {
	ihl, ok := transport(h, 8)
	if !ok {
		return k, false, false
	}
	src, dst, t := h[12:16], h[16:20], h[ihl:]
	switch proto := h[9]; proto {
	case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber), protoSCTP:
		sport, dport := binary.BigEndian.Uint16(t[0:2]), binary.BigEndian.Uint16(t[2:4])
		if proto == uint8(header.TCPProtocolNumber) && len(t) >= 14 {
			closing = header.TCPFlags(t[13])&(header.TCPFlagFin|header.TCPFlagRst) != 0
		}
		return makeFlowKey(proto, dst, src, dport, sport), closing, true
	case uint8(header.ICMPv4ProtocolNumber):
		if header.ICMPv4Type(t[0]) != header.ICMPv4Echo {
			return k, false, false
		}
		return makeFlowKey(proto, dst, src, binary.BigEndian.Uint16(t[4:6]), 0), false, true
	}
	return k, false, false
}

// flowOfReply is the flow the packet h belongs to if it is a reply: its own
// tuple for TCP, UDP and SCTP, and for an ICMP echo reply; for an ICMP
// error, the reply flow of the packet it quotes, which must have come from
// h's destination.
func flowOfReply(h []byte) (flowKey, bool) {
	ihl, ok := transport(h, 8)
	if !ok {
		return flowKey{}, false
	}
	t := h[ihl:]
	switch proto := h[9]; proto {
	case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber), protoSCTP:
		return makeFlowKey(proto, h[12:16], h[16:20], binary.BigEndian.Uint16(t[0:2]), binary.BigEndian.Uint16(t[2:4])), true
	case uint8(header.ICMPv4ProtocolNumber):
		switch typ := header.ICMPv4Type(t[0]); {
		case typ == header.ICMPv4EchoReply:
			return makeFlowKey(proto, h[12:16], h[16:20], binary.BigEndian.Uint16(t[4:6]), 0), true
		case isICMPError(typ):
			quoted := t[header.ICMPv4MinimumSize:]
			if len(quoted) < header.IPv4MinimumSize || [4]byte(quoted[12:16]) != [4]byte(h[16:20]) {
				return flowKey{}, false
			}
			k, _, ok := replyKeyOfRequest(quoted)
			return k, ok
		}
	}
	return flowKey{}, false
}

// flowSlot is one remembered flow. seq is odd while a writer changes the
// slot's key (inserts, evicts or expires a flow); readers wait for it to be
// even again. Refreshing a flow (seen, closing) does not change the key and
// takes no lock: a reader must never miss a live flow because its client
// sent a packet at the same moment (the reply would reach the pod from the
// backend's address, and the pod would reset the connection).
type flowSlot struct {
	seq     atomic.Uint64
	a, b    atomic.Uint64 // the key; b == 0: empty
	seen    atomic.Int64  // the flow's last request, UnixNano of the coarse clock
	closing atomic.Bool   // a TCP FIN or RST was seen
}

func (s *flowSlot) lock() uint64 {
	for i := 0; ; i++ {
		q := s.seq.Load()
		if q&1 == 0 && s.seq.CompareAndSwap(q, q+1) {
			return q + 1
		}
		backoff(i)
	}
}

// backoff yields the processor after a few spins: the writer being waited
// for may have been preempted inside its few instructions.
func backoff(spins int) {
	if spins >= 16 {
		runtime.Gosched()
	}
}

func (s *flowSlot) unlock(q uint64) { s.seq.Store(q + 1) }

// holds reports whether the slot holds k, without a lock. While a writer
// changes the slot's key it waits: a miss is never a guess.
func (s *flowSlot) holds(k flowKey) bool {
	for i := 0; ; i++ {
		q := s.seq.Load()
		if q&1 == 0 {
			hit := s.b.Load() == k.b && s.a.Load() == k.a
			if s.seq.Load() == q {
				return hit
			}
		}
		backoff(i)
	}
}

// refresh marks the slot's flow, k, as seen now, if the slot still holds k
// and no writer changed it meanwhile: seen is stored between two reads of
// an even, unchanged seq, so an expiry (which rereads seen under the lock)
// either sees it or has started before and is caught by the second read.
//
// A closing flow (FIN or RST seen) takes the locked path: closing stored
// here on a slot evicted meanwhile would give the new flow the short
// timeout (found in review).
func (s *flowSlot) refresh(k flowKey, now int64, closing bool) bool {
	if closing {
		return false
	}
	q := s.seq.Load()
	if q&1 != 0 || s.b.Load() != k.b || s.a.Load() != k.a {
		return false
	}
	s.seen.Store(now)
	return s.seq.Load() == q
}

type flowBucket struct{ slots [flowWays]flowSlot }

// flowTable is the return path's table of flows.
type flowTable struct {
	buckets      []flowBucket
	mask         uint64
	shift        uint // 64 - log2(len(buckets))
	seed0, seed1 uint64

	_     [64]byte
	count atomic.Int64 // occupied slots; read by every delivery to a pod
	_     [56]byte
	now   atomic.Int64 // the coarse clock: set at every Tick
	// lastScan is when expire last scanned; the timer's only.
	lastScan int64

	recorded, evicted, expired atomic.Uint64
}

func newFlowTable(capacity int, now time.Time) *flowTable {
	n := 1
	for n*flowWays < capacity {
		n <<= 1
	}
	t := &flowTable{buckets: make([]flowBucket, n), mask: uint64(n - 1), shift: uint(64 - bits.TrailingZeros(uint(n))), seed0: rand.Uint64(), seed1: rand.Uint64()}
	t.now.Store(now.UnixNano())
	t.lastScan = now.UnixNano()
	return t
}

// capacity is the number of flows the table holds.
func (t *flowTable) capacity() int { return len(t.buckets) * flowWays }

// bucket hashes k with the table's seeds (wyhash's mixing: the two halves
// of a 128-bit product folded, twice) and takes the bucket from the top
// bits, which depend on every bit of the key.
func (t *flowTable) bucket(k flowKey) *flowBucket {
	hi, lo := bits.Mul64(k.a^t.seed0, k.b^t.seed1)
	hi, lo = bits.Mul64(hi^lo, 0x9e3779b97f4a7c15)
	return &t.buckets[((hi^lo)>>t.shift)&t.mask]
}

// record remembers or refreshes the flow k. A full bucket gives up the
// flow seen least recently.
func (t *flowTable) record(k flowKey, closing bool) {
	now := t.now.Load()
	bk := t.bucket(k)
	var free, oldest *flowSlot
	for i := range bk.slots {
		s := &bk.slots[i]
		switch b := s.b.Load(); {
		case b == 0:
			if free == nil {
				free = s
			}
		case b == k.b && s.a.Load() == k.a:
			if s.refresh(k, now, closing) {
				return
			}
			// Expired (or being expired) meanwhile: under the lock, refresh
			// it if it is still there, or take the slot if it is free.
			q := s.lock()
			if s.b.Load() == k.b && s.a.Load() == k.a {
				s.seen.Store(now)
				if closing {
					s.closing.Store(true)
				}
				s.unlock(q)
				return
			}
			s.unlock(q)
			if free == nil && s.b.Load() == 0 {
				free = s
			}
		default:
			if oldest == nil || s.seen.Load() < oldest.seen.Load() {
				oldest = s
			}
		}
	}
	s := free
	if s == nil {
		s = oldest
	}
	q := s.lock()
	if s.b.Load() == 0 {
		t.count.Add(1)
	} else {
		t.evicted.Add(1)
	}
	s.a.Store(k.a)
	s.b.Store(k.b)
	s.seen.Store(now)
	s.closing.Store(closing)
	s.unlock(q)
	t.recorded.Add(1)
}

// contains reports whether k is a remembered flow.
func (t *flowTable) contains(k flowKey) bool {
	bk := t.bucket(k)
	for i := range bk.slots {
		if bk.slots[i].holds(k) {
			return true
		}
	}
	return false
}

func timeoutOf(proto uint8, closing bool) int64 {
	switch proto {
	case uint8(header.TCPProtocolNumber), protoSCTP:
		if closing {
			return int64(returnTimeoutClosing)
		}
		return int64(returnTimeoutTCP)
	case uint8(header.ICMPv4ProtocolNumber):
		return int64(returnTimeoutICMP)
	}
	return int64(returnTimeoutUDP)
}

// tick sets the coarse clock and, once a returnScanInterval, forgets the
// flows idle for longer than their timeout.
func (t *flowTable) tick(now time.Time) {
	n := now.UnixNano()
	t.now.Store(n)
	if n-t.lastScan < int64(returnScanInterval) {
		return
	}
	t.lastScan = n
	if t.count.Load() == 0 {
		return
	}
	for i := range t.buckets {
		for j := range t.buckets[i].slots {
			s := &t.buckets[i].slots[j]
			b := s.b.Load()
			if b == 0 || n-s.seen.Load() < timeoutOf(uint8(b>>32), s.closing.Load()) {
				continue
			}
			q := s.lock()
			if b = s.b.Load(); b != 0 && n-s.seen.Load() >= timeoutOf(uint8(b>>32), s.closing.Load()) {
				s.a.Store(0)
				s.b.Store(0)
				t.count.Add(-1)
				t.expired.Add(1)
			}
			s.unlock(q)
		}
	}
}

// returnPath is the route stage's part of the return path: it remembers the
// reply flows of pods' packets the node's kernel forwarded (from the host
// port, to a pod here or on a peer), and turns a packet of such a reply
// flow from a pod or a peer, routed to a pod here, to the host port. It
// returns the packet's next hop.
func (w *worker) returnPath(p *Packet, nh fib.NextHop) fib.NextHop {
	switch {
	case p.Origin == FromHost:
		if nh.Kind == fib.Local || nh.Kind == fib.Peer {
			w.r.recordReturnPath(p)
		}
	case nh.Kind == fib.Local && p.Origin != FromRouter && w.r.ret.count.Load() != 0:
		if k, ok := flowOfReply(p.buf[p.start:p.end]); ok && w.r.ret.contains(k) {
			w.stats.add(cReturnedToHost, p.segments()) // packets, as the host's kernel counts them
			return fib.NextHop{Kind: fib.Host}
		}
	}
	return nh
}

// recordReturnPath remembers the reply flow of p, a packet from the host
// port, if its source is a pod's (here or on a peer).
func (r *Router) recordReturnPath(p *Packet) {
	h := p.buf[p.start:p.end]
	src, _ := r.fib.Lookup(netip.AddrFrom4([4]byte(h[12:16])))
	if src.Kind != fib.Local && src.Kind != fib.Peer {
		return // the node's own traffic, or an un-NATed reply going back to its pod
	}
	if k, closing, ok := replyKeyOfRequest(h); ok {
		r.ret.record(k, closing)
	}
}
