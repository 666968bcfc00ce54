package router

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"
)

const (
	// icmpDestBurst is the burst of the per-destination ICMP limit, Linux's
	// XRLIM_BURST_FACTOR.
	icmpDestBurst = 6
	// defaultICMPDestInterval is Linux's icmp_ratelimit (1000 ms).
	defaultICMPDestInterval = time.Second
	// destSlots is the size of the per-destination table.
	destBits  = 10
	destSlots = 1 << destBits
)

// destLimiter is Linux's per-destination ICMP error limit (icmp_ratelimit,
// kept per inet_peer): each destination may receive one error per interval,
// with a burst of icmpDestBurst. It is checked before the global limit, as
// recent Linux kernels do, so that one destination's flood does not use up
// the global budget of everybody else's traceroute.
//
// The table has a fixed number of slots, indexed by a seeded hash of the
// destination, and allocates nothing. A destination that hashes to a slot
// held by another takes it over only if the other's bucket is full again (it
// has been idle for a whole burst: forgetting it changes nothing); otherwise
// the two share the bucket. Collisions can thus only make a destination
// limited sooner, never give a flooding one fresh tokens.
type destLimiter struct {
	interval int64 // ns per message; 0: no limit
	seed     uint32
	slots    [destSlots]destSlot
}

type destSlot struct {
	mu     sync.Mutex
	key    uint32 // the destination; 0 (0.0.0.0, never an ICMP destination): free
	credit int64  // ns of credit, at most icmpDestBurst*interval
	last   int64  // UnixNano of the last update
}

func newDestLimiter(interval time.Duration) *destLimiter {
	return &destLimiter{interval: int64(interval), seed: rand.Uint32()}
}

func (l *destLimiter) allow(now time.Time, dst [4]byte) bool {
	if l.interval <= 0 {
		return true
	}
	k := binary.BigEndian.Uint32(dst[:])
	s := &l.slots[((k^l.seed)*0x9e3779b1)>>(32-destBits)]
	t, full := now.UnixNano(), icmpDestBurst*l.interval
	s.mu.Lock()
	defer s.mu.Unlock()
	elapsed := max(0, t-s.last)
	if s.key != k && (s.key == 0 || s.credit+elapsed >= full) {
		s.key, s.credit = k, full
	}
	s.credit, s.last = min(full, s.credit+elapsed), t
	if s.credit < l.interval {
		return false
	}
	s.credit -= l.interval
	return true
}
