package tunnel

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// TestBatchSlots: batches come from the fixed slots while any is free,
// each caller its own; when all are taken a caller gets a batch of its own,
// and giving it back frees no slot. (Another test's goroutine may hold a
// slot meanwhile, a Recv blocked in its read: the test takes what is free.)
func TestBatchSlots(t *testing.T) {
	if s := unsafe.Sizeof(batchSlot{}); s != 128 {
		t.Errorf("batchSlot is %d bytes, want 128 (two cache lines of its own)", s)
	}
	var taken []*batch
	defer func() {
		for _, b := range taken {
			putBatch(b)
		}
	}()
	var extra *batch
	for range len(batchSlots) + 1 {
		b := getBatch(4)
		if b.slot == nil {
			extra = b
			break
		}
		if b.slot.b.slot != b.slot || &b.slot.b != b || !b.slot.taken.Load() {
			t.Fatalf("batch %p is not its slot's, or the slot is free", b)
		}
		taken = append(taken, b)
	}
	if extra == nil || len(extra.addrs) != 4 || len(extra.bufs) != 0 {
		t.Fatalf("no batch of its own after taking %d of %d slots", len(taken), len(batchSlots))
	}
	putBatch(extra)
	if b := getBatch(1); b.slot != nil {
		t.Fatal("giving back an overflow batch freed a slot")
	}
	last := taken[len(taken)-1]
	putBatch(last)
	if b := getBatch(1); b != last {
		t.Fatal("the freed slot was not reused")
	}
}

// checkingConn is a DatagramConn whose WriteTo checks that each batch is
// one sender's (every packet's last byte is the sender's mark) and goes to
// want, and counts the packets.
type checkingConn struct {
	t    *testing.T
	want netip.AddrPort
	sent atomic.Uint64
}

func (c *checkingConn) ReadFrom([][]byte, []int, []netip.AddrPort, int) (int, error) { return 0, nil }
func (c *checkingConn) LocalAddr() netip.AddrPort                                    { return addrPort(nodeA, DefaultUDPPort) }
func (c *checkingConn) BatchSize() int                                               { return 64 }
func (c *checkingConn) Close() error                                                 { return nil }

func (c *checkingConn) WriteTo(bufs [][]byte, addrs []netip.AddrPort, _ int) (int, error) {
	for i, b := range bufs {
		if b[len(b)-1] != bufs[0][len(bufs[0])-1] || addrs[i] != c.want {
			c.t.Errorf("batch mixes senders or addresses: packet %d marked %d to %v, packet 0 marked %d", i, b[len(b)-1], addrs[i], bufs[0][len(bufs[0])-1])
		}
	}
	c.sent.Add(uint64(len(bufs)))
	return len(bufs), nil
}

// TestSendConcurrent: concurrent Sends (the Tunnel contract) each get a
// batch of their own: no batch mixes two callers' packets.
func TestSendConcurrent(t *testing.T) {
	conn := &checkingConn{t: t, want: addrPort(nodeB, DefaultUDPPort)}
	a, _ := NewUDP(conn, UDPConfig{})
	defer a.Close()
	a.SetPeers(indexed(Peer{Addr: nodeB}))
	senders := 2*len(batchSlots) + 1 // more than the slots: some get their own
	const rounds, batchLen = 200, 4
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bufs, dst := make([][]byte, batchLen), make([]uint32, batchLen)
			for i := range bufs {
				bufs[i] = withHeadroom(ipv4Packet("10.244.0.4", "10.244.1.5", 8, byte(s)))
			}
			for range rounds {
				if n, err := a.Send(bufs, dst, testOffset); n != batchLen || err != nil {
					t.Errorf("Send = %d, %v; want %d, nil", n, err, batchLen)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := uint64(senders * rounds * batchLen)
	if got := conn.sent.Load(); got != want {
		t.Fatalf("%d packets written, want %d", got, want)
	}
	if s := a.Stats(); s.TxPackets != want || s.TxErrors != 0 || s.DropUnknownPeer != 0 {
		t.Fatalf("stats %+v, want %d packets sent and nothing else", s, want)
	}
}
