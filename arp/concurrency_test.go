package arp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
)

// TestConcurrentLookup runs lock-free readers against every writer. Run it
// with -race. Readers also check that a hit never returns a MAC that was not
// learned (such as the zero MAC of an Incomplete entry).
func TestConcurrentLookup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReachableTime = 300 * time.Millisecond
	cfg.DelayTime = 200 * time.Millisecond
	cfg.GCStaleTime = time.Second
	h := newHarness(t, cfg)
	ips := []netip.Addr{ip1, ip2, ip3}

	var stop atomic.Bool
	var hits atomic.Int64
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			for i := r; !stop.Load(); i++ {
				port, ip := uint32(i%2+1), ips[i%len(ips)]
				if mac, ok := h.table.Lookup(port, ip); ok {
					hits.Add(1)
					if mac != mac1 && mac != mac2 {
						t.Errorf("Lookup(%d, %v) returned %v, which was never learned", port, ip, mac)
						return
					}
				}
				if i%7 == 0 {
					h.table.Confirm(port, ip)
				}
			}
		})
	}

	macs := []link.HardwareAddr{mac1, mac2}
	// At least 5000 writes, and on until the readers have hit entries: on a
	// loaded machine the readers may not run at all during the first 5000.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 5000 || hits.Load() < 100 && time.Now().Before(deadline); i++ {
		port, ip := uint32(i%2+1), ips[i%len(ips)]
		switch i % 10 {
		case 0, 1, 2:
			h.table.Learn(port, ip, macs[i%2], Claim(i%3+1))
		case 3, 4:
			h.table.Enqueue(port, ip, pktA)
		case 5:
			h.table.SetStatic(port, ip, macs[i%2])
		case 6:
			h.table.Remove(port, ip)
		case 7:
			if i%100 == 7 {
				h.table.RemovePort(port)
			}
		case 8:
			h.table.Entries()
		}
		h.clock.advance(37 * time.Millisecond)
		h.table.Tick()
	}
	stop.Store(true)
	wg.Wait()
	if hits.Load() == 0 {
		t.Fatal("readers never hit an entry; the test exercised nothing")
	}
}
