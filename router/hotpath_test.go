package router

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/fib"
)

// TestRouteCacheMatchesTable holds a worker's route cache to the FIB it
// caches: random lookups, many of them colliding in the cache's slots,
// interleaved with random route changes, each answered exactly as
// fib.Table.Lookup answers at that moment.
func TestRouteCacheMatchesTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tab := fib.New()
	var c routeCache
	addr := func() [4]byte { return [4]byte{10, 244, byte(rng.IntN(4)), byte(rng.IntN(64))} }
	for i := range 100000 {
		switch rng.IntN(50) {
		case 0:
			a := addr()
			bits := []int{16, 24, 32}[rng.IntN(3)]
			tab.Insert(netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked(), fib.NextHop{Kind: fib.Local, Port: uint32(rng.IntN(8))})
		case 1:
			a := addr()
			tab.Delete(netip.PrefixFrom(netip.AddrFrom4(a), []int{16, 24, 32}[rng.IntN(3)]).Masked())
		}
		a := addr()
		got, gotOK := c.lookup(tab, binary.BigEndian.Uint32(a[:]))
		want, wantOK := tab.Lookup(netip.AddrFrom4(a))
		if got != want || gotOK != wantOK {
			t.Fatalf("lookup %d of %v: cache %+v %v, table %+v %v", i, netip.AddrFrom4(a), got, gotOK, want, wantOK)
		}
	}
}

// TestRouteChangeAppliesToNextPacket: a route changed between two batches
// of one worker applies to the second, although the first left the old
// next hop in the worker's route cache.
func TestRouteChangeAppliesToNextPacket(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	pkt := func() []byte { return ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 10)) }
	before := n.r.Stats()
	n.fromPod(0, pkt())
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 1})
	if got := len(pb.dev.take()); got != 1 {
		t.Fatalf("pb got %d frames, want 1", got)
	}
	route := netip.PrefixFrom(pb.ip, 32)
	n.r.FIB().Insert(route, fib.NextHop{Kind: fib.Blackhole})
	before = n.r.Stats()
	n.fromPod(0, pkt())
	wantDelta(t, n.r, before, map[string]uint64{"drop_blackhole": 1})
	n.r.FIB().Insert(route, fib.NextHop{Kind: fib.Local, Port: pb.port.ID})
	before = n.r.Stats()
	n.fromPod(0, pkt(), pkt())
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 2})
	if got := len(pb.dev.take()); got != 2 {
		t.Fatalf("pb got %d frames, want 2", got)
	}
}

// TestWorkerCountersSummedAndRetired: each worker counts on its own; Stats
// sums the live workers and the router-wide counters, and a worker that
// ends (its port removed) leaves its counts behind, each exactly once.
func TestWorkerCountersSummedAndRetired(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	other := n.r.newWorker(64, 1450+ethHeaderLen+64)
	before := n.r.Stats()
	ok := ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 10))
	spoofed := ipv4(pb.ip, pa.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 10))
	n.fromPod(0, ok, ok, spoofed) // on n.w
	for k, p := range [][]byte{ok, spoofed, spoofed} {
		other.sizes[k] = copy(other.bufs[k][headroom:], ethernet(gwMAC, pa.mac, etherTypeIP, p))
	}
	other.receivePort(pa.port, 3)
	want := map[string]uint64{"forwarded": 3, "drop_spoofed": 3}
	wantDelta(t, n.r, before, want)
	n.r.retire(other)
	wantDelta(t, n.r, before, want)
	n.r.retire(n.w)
	wantDelta(t, n.r, before, want)
	if got := len(n.r.workers); got != 2 { // the sync node's tunnel worker and Tick's
		t.Errorf("%d workers live after two retired, want 2", got)
	}
	if rx, tx, d := pa.port.RxPackets.Load(), pb.port.TxPackets.Load(), pa.port.Drops.Load(); rx != 6 || tx != 3 || d != 3 {
		t.Errorf("pa rx %d drops %d, pb tx %d; want 6, 3, 3", rx, d, tx)
	}
}

// TestRemovedPortKeepsItsCounts: a started router's pod port forwards and
// drops, and is removed; its goroutine's counts stay in Stats, exactly.
func TestRemovedPortKeepsItsCounts(t *testing.T) {
	pa, pb := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5)
	n := newNode(t, Config{}, pa, pb)
	if err := n.r.SetStaticNeighbour("pb", pb.ip, pb.mac); err != nil {
		t.Fatal(err)
	}
	before := n.r.Stats()
	for i := range 5 {
		pa.send(ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, uint16(i), 10)))
	}
	pa.send(ipv4(pb.ip, pa.ip, 64, header.UDPProtocolNumber, true, udpPayload(1, 2, 10))) // spoofed
	for range 5 {
		pb.recvIPv4(t)
	}
	waitCounter(t, n.r, "forwarded", before["forwarded"]+5)
	waitCounter(t, n.r, "drop_spoofed", before["drop_spoofed"]+1)
	mid := n.r.Stats()
	n.r.statsMu.Lock()
	live := len(n.r.workers)
	n.r.statsMu.Unlock()
	if err := n.r.RemovePort("pa"); err != nil {
		t.Fatal(err)
	}
	wantDelta(t, n.r, mid, map[string]uint64{})
	n.r.statsMu.Lock()
	defer n.r.statsMu.Unlock()
	if got := len(n.r.workers); got != live-1 {
		t.Errorf("%d workers live after pa was removed, want %d", got, live-1)
	}
}
