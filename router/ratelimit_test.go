package router

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// One pod flooding unreachable destinations gets 6 errors and then one a
// second; another pod's traceroute is answered all the same (today's global
// limit alone let the flood use up its whole budget).
func TestICMPPerDestinationLimit(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	unreachable := func(i int) []byte {
		return ipv4(pa.ip, netip.MustParseAddr("10.244.0.99"), 64, header.UDPProtocolNumber, false, udpPayload(1, uint16(i), 8))
	}
	flood := func(count int) {
		for sent := 0; sent < count; sent += 50 {
			batch := make([][]byte, 0, 50)
			for i := range min(50, count-sent) {
				batch = append(batch, unreachable(sent+i))
			}
			n.fromPod(0, batch...)
		}
	}
	before := n.r.Stats()
	flood(200)
	wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 200, "icmp_unreachable": 6, "icmp_dest_rate_limited": 194, "forwarded": 6})
	if got := len(pa.dev.take()); got != 6 {
		t.Fatalf("pa got %d errors, want 6", got)
	}

	// pb's traceroute: each hop's probes are answered.
	before = n.r.Stats()
	for ttl := uint8(1); ttl <= 3; ttl++ {
		n.fromPod(1, ipv4(pb.ip, netip.MustParseAddr("10.244.1.5"), 1, header.UDPProtocolNumber, false, udpPayload(40000, 33434+uint16(ttl), 24)))
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_ttl": 3, "icmp_time_exceeded": 3, "forwarded": 3})
	out := pb.dev.take()
	if len(out) != 3 {
		t.Fatalf("pb got %d time exceeded, want 3", len(out))
	}
	for _, f := range out {
		checkICMP(t, header.IPv4(f[14:]), gateway, pb.ip, header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded)
	}

	// One more a second for pa, and after a long pause a burst of 6, no more.
	n.clk.Advance(time.Second)
	before = n.r.Stats()
	flood(10)
	wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 10, "icmp_unreachable": 1, "icmp_dest_rate_limited": 9, "forwarded": 1})
	n.clk.Advance(time.Hour)
	before = n.r.Stats()
	flood(10)
	wantDelta(t, n.r, before, map[string]uint64{"drop_no_route": 10, "icmp_unreachable": 6, "icmp_dest_rate_limited": 4, "forwarded": 6})
}

// Destinations in one set have their own buckets, up to destWays of them;
// one more shares a bucket while they are all busy (limited sooner, never
// fresh tokens) and takes an entry over once one has been idle for a burst.
func TestDestLimiterCollision(t *testing.T) {
	l := newDestLimiter(time.Second)
	l.seed = 0
	set := func(a [4]byte) uint32 {
		k := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		return (k * 0x9e3779b1) >> (32 - destBits)
	}
	dsts := [][4]byte{{10, 244, 0, 4}}
	for i := 1; len(dsts) < destWays+1; i++ {
		if b := [4]byte{10, 245, byte(i >> 8), byte(i)}; set(b) == set(dsts[0]) {
			dsts = append(dsts, b)
		}
	}
	now := time.Unix(1e9, 0)
	count := func(dst [4]byte, tries int) int {
		n := 0
		for range tries {
			if l.allow(now, dst) {
				n++
			}
		}
		return n
	}
	for i, d := range dsts[:destWays] {
		if got := count(d, 10); got != 6 {
			t.Fatalf("destination %d of the set: %d of 10 allowed, want 6 (its own bucket)", i, got)
		}
	}
	extra := dsts[destWays]
	if got := count(extra, 10); got != 0 {
		t.Fatalf("one more, with every entry busy: %d allowed, want 0", got)
	}
	// It shares one entry, the one its key picks (the entries are in the
	// order the destinations came).
	shared := int(binary.BigEndian.Uint32(extra[:]) % destWays)
	now = now.Add(3 * time.Second)
	if got := count(extra, 10); got != 3 {
		t.Fatalf("one more 3s later: %d allowed, want 3 (one bucket's)", got)
	}
	for i, d := range dsts[:destWays] {
		want := 3
		if i == shared {
			want = 0 // extra used its bucket up
		}
		if got := count(d, 10); got != want {
			t.Fatalf("destination %d 3s later: %d allowed, want %d", i, got, want)
		}
	}
	now = now.Add(6 * time.Second)
	if got := count(extra, 10); got != 6 {
		t.Fatalf("one more after an idle burst: %d allowed, want 6 (an entry of its own)", got)
	}
	now = now.Add(-time.Hour) // a clock that goes back gives no credit
	if got := count(extra, 1); got != 0 {
		t.Fatalf("after the clock went back: %d allowed", got)
	}
}

// The per-destination limiter is on the ICMP error path of every batch.
func TestDestLimiterAllocatesNothing(t *testing.T) {
	l := newDestLimiter(time.Second)
	now := time.Unix(1e9, 0)
	i := 0
	if got := allocsPerOp(t, 1000, func() {
		i++
		now = now.Add(time.Millisecond)
		l.allow(now, [4]byte{10, 244, byte(i >> 8), byte(i)})
	}); got != 0 {
		t.Fatalf("allow: %g allocations per call, want 0", got)
	}
}

// TestTokenBucketConcurrentExact: 8 goroutines draw from one bucket (1000
// tokens, no refill at a frozen clock) 1000 times each: exactly 1000 pass.
// Then 1 s later exactly rate (500) more.
func TestTokenBucketConcurrentExact(t *testing.T) {
	b := newTokenBucket(500, 1000)
	now := time.Unix(1e9, 0)
	count := func() int64 {
		var passed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 1000 {
					if b.allow(now, 1) {
						passed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return passed.Load()
	}
	if got := count(); got != 1000 {
		t.Errorf("%d passed from a full bucket of 1000, want exactly 1000", got)
	}
	now = now.Add(time.Second)
	if got := count(); got != 500 {
		t.Errorf("%d passed after 1 s at 500/s, want exactly 500", got)
	}
}

// BenchmarkTokenBucketParallel: the policer of a rate-limited pod, shared by
// every goroutine (one CAS per packet, no lock).
func BenchmarkTokenBucketParallel(b *testing.B) {
	tb := newTokenBucket(1e12, 1e12)
	now := time.Unix(1e9, 0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tb.allow(now, 1500)
		}
	})
}

// TestTokenBucketHugeBurst: a burst of 2^64 bits (what a CNI runtime may
// pass for "no burst limit") admits, and does not overflow into refusing.
func TestTokenBucketHugeBurst(t *testing.T) {
	b := policer(1, ^uint64(0))
	now := time.Unix(1e9, 0)
	for i := range 100 {
		if !b.allow(now, 1500) {
			t.Fatalf("packet %d refused by a bucket of 2^64 bits", i)
		}
	}
}
