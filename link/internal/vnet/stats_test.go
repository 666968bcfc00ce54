package vnet

import (
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestStatsChecksumsCoverSegments: every segment's checksum is counted in
// Checksums too, and a caller takes Checksums - Segments as the partial
// checksums completed (tunnel.Direct.Stats does), so no snapshot may show
// fewer checksums than segments, even one taken while a super-frame is
// being cut. One goroutine cuts super-frames of 40 segments, another takes
// snapshots until 5,000 are cut.
func TestStatsChecksumsCoverSegments(t *testing.T) {
	frame := superFrame(40*1000, header.TCPFlagAck)
	r := &Reader{mtu: 1040, large: make([]byte, 65536+64)}
	copy(r.hdr[:], vnetHeader(1, 1, 1000))
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.bufs, r.sizes, r.n = bufs, make([]int, len(bufs)), 0
			copy(r.large, frame)
			r.accept(len(frame), r.large[:len(frame)], 0)
		}
	}()
	bad, snapshots := 0, 0
	for ; r.superFrames.Load() < 5000; snapshots++ {
		if s := r.Stats(); s.Checksums < s.Segments {
			bad++
		}
	}
	close(stop)
	wg.Wait()
	if bad != 0 {
		t.Errorf("%d of %d snapshots had fewer checksums than segments", bad, snapshots)
	}
}
