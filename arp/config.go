package arp

import (
	"fmt"
	"time"
)

// Config holds the neighbour table's timers and limits. The defaults are the
// kernel's net.ipv4.neigh.default.* values named on each field.
type Config struct {
	// ReachableTime is how long a neighbour stays Reachable after the last
	// confirmation (base_reachable_time_ms, 30s; not randomized here).
	ReachableTime time.Duration
	// RetransTime is the interval between requests (retrans_time_ms, 1s).
	RetransTime time.Duration
	// DelayTime is how long a used Stale entry waits for a confirmation
	// before unicast probing starts (delay_first_probe_time, 5s).
	DelayTime time.Duration
	// GCStaleTime is how long an unused Stale entry is kept
	// (gc_stale_time, 60s).
	GCStaleTime time.Duration
	// FailedTime is how long a Failed entry is kept; packets for it fail at
	// once instead of starting a new resolution (3s, the length of one
	// resolution attempt; the kernel has no such timer).
	FailedTime time.Duration
	// MaxMulticastProbes is the number of broadcast requests sent for an
	// Incomplete entry before it fails (mcast_solicit, 3).
	MaxMulticastProbes int
	// MaxUnicastProbes is the number of unicast requests sent in Probe before
	// the entry fails (ucast_solicit, 3).
	MaxUnicastProbes int
	// QueueLen is the number of packets queued per unresolved neighbour; the
	// oldest is dropped when full (unres_qlen, 3). 0 disables queueing.
	QueueLen int
	// MaxEntries bounds the number of entries, Static ones included; when
	// full, unused Stale and Failed entries are evicted, and if none are, the
	// new neighbour is refused (gc_thresh3, 1024). Static entries are always
	// added.
	MaxEntries int
}

// DefaultConfig returns the kernel's defaults.
func DefaultConfig() Config {
	return Config{
		ReachableTime:      30 * time.Second,
		RetransTime:        time.Second,
		DelayTime:          5 * time.Second,
		GCStaleTime:        60 * time.Second,
		FailedTime:         3 * time.Second,
		MaxMulticastProbes: 3,
		MaxUnicastProbes:   3,
		QueueLen:           3,
		MaxEntries:         1024,
	}
}

func (c *Config) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReachableTime", c.ReachableTime},
		{"RetransTime", c.RetransTime},
		{"DelayTime", c.DelayTime},
		{"GCStaleTime", c.GCStaleTime},
		{"FailedTime", c.FailedTime},
	} {
		if d.v <= 0 {
			return fmt.Errorf("arp: config %s must be positive, got %v", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
		min  int
	}{
		{"MaxMulticastProbes", c.MaxMulticastProbes, 1},
		{"MaxUnicastProbes", c.MaxUnicastProbes, 1},
		{"QueueLen", c.QueueLen, 0},
		{"MaxEntries", c.MaxEntries, 1},
	} {
		if n.v < n.min {
			return fmt.Errorf("arp: config %s must be at least %d, got %d", n.name, n.min, n.v)
		}
	}
	return nil
}

// Clock tells the table the time. The router passes SystemClock; tests pass
// a fake that they advance by hand.
type Clock interface {
	Now() time.Time
}

// SystemClock is the Clock backed by time.Now.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
