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
	// The per-destination table: destSets sets of destWays entries.
	destBits = 10
	destSets = 1 << destBits
	destWays = 4
)

// destLimiter is Linux's per-destination ICMP error limit (icmp_ratelimit,
// kept per inet_peer): each destination may receive one error per interval,
// with a burst of icmpDestBurst. It is checked before the global limit, as
// recent Linux kernels do, so that one destination's flood does not use up
// the global budget of everybody else's traceroute.
//
// The table has a fixed size and allocates nothing: a seeded hash of the
// destination picks a set, and the destination has its own entry among the
// set's destWays, keyed by its exact address, as Linux keys inet_peer. A
// new destination takes a free entry, or one whose bucket is full again (idle
// for a whole burst: forgetting it changes nothing). Only when every entry
// of its set is busy does it share one: it is then limited
// sooner, but a flooding destination never gets fresh tokens, and one
// destination's flood never touches another's budget unless destWays
// others of its set are busy at the same time.
type destLimiter struct {
	interval int64 // ns per message; 0: no limit
	seed     uint32
	sets     [destSets]destSet
}

type destSet struct {
	mu   sync.Mutex
	ways [destWays]destEntry
}

type destEntry struct {
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
	set := &l.sets[((k^l.seed)*0x9e3779b1)>>(32-destBits)]
	t, full := now.UnixNano(), icmpDestBurst*l.interval
	set.mu.Lock()
	defer set.mu.Unlock()
	e := set.entry(k, t, full)
	e.credit, e.last = min(full, e.credit+max(0, t-e.last)), t
	if e.credit < l.interval {
		return false
	}
	e.credit -= l.interval
	return true
}

// entry returns k's entry in the set, taking a free or idle one for a new
// destination, or, when all are busy, sharing the one k's key picks (always
// the same one: a newcomer drains one bucket, not each in turn). The caller
// holds the set's lock.
func (s *destSet) entry(k uint32, t, full int64) *destEntry {
	for i := range s.ways {
		if s.ways[i].key == k {
			return &s.ways[i]
		}
	}
	for i := range s.ways {
		if e := &s.ways[i]; e.key == 0 || e.credit+max(0, t-e.last) >= full {
			e.key, e.credit, e.last = k, full, t
			return e
		}
	}
	return &s.ways[k%destWays]
}
