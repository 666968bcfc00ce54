package arp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
)

// FuzzTable drives a small table with arbitrary operations: ARP payloads
// (parsed with Parse and learned from, as the router and the direct backend
// do), lookups, enqueues, confirms, removals and clock ticks. Invariants:
// the table never holds more than MaxEntries entries besides the Static
// ones, a Static entry never changes, Lookup only returns MACs someone
// claimed, queues never exceed QueueLen, and only a request for us creates
// an entry from a claim (a reply or another request for a neighbour
// without one is Unsolicited and changes nothing).
func FuzzTable(f *testing.F) {
	req := make([]byte, PayloadLen)
	(&Packet{Op: OpReply, SenderMAC: mac1, SenderIP: ip1, TargetIP: ip2}).Encode(req)
	f.Add(append([]byte{0, 0}, req...))
	f.Add([]byte{1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	f.Add([]byte{0, 5, 3, 200, 3, 100, 6, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		cfg := DefaultConfig()
		cfg.MaxEntries = 4
		h := newHarness(t, cfg)
		staticIP := netip.MustParseAddr("10.244.1.1")
		h.table.SetStatic(port1, staticIP, mac3)
		claimed := map[link.HardwareAddr]bool{mac3: true}
		ip := func(b byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, 1, b % 8}) }
		learn := func(port uint32, a netip.Addr, mac link.HardwareAddr, c Claim) {
			_, before, existed := h.table.Peek(port, a)
			got := h.table.Learn(port, a, mac, c)
			_, after, exists := h.table.Peek(port, a)
			if unsolicited := c != RequestForUs && (!existed || before == Failed); unsolicited != (got == Unsolicited) {
				t.Fatalf("Learn(%d, %v, %v, %d) on %v (exists %v) = %v", port, a, mac, c, before, existed, got)
			}
			if got == Unsolicited && (exists != existed || after != before) {
				t.Fatalf("Unsolicited Learn changed the entry: %v (exists %v) to %v (exists %v)", before, existed, after, exists)
			}
		}
		for len(ops) >= 2 {
			op, arg := ops[0], ops[1]
			ops = ops[2:]
			port := uint32(op>>4)%2 + 1
			switch op % 8 {
			case 0: // an ARP payload from the input
				n := min(len(ops), PayloadLen)
				p, err := Parse(ops[:n])
				ops = ops[n:]
				if err != nil || !p.SenderIP.Is4() {
					continue
				}
				claimed[p.SenderMAC] = true
				learn(port, p.SenderIP, p.SenderMAC, ClaimOf(&p, ip(arg)))
			case 1:
				mac := link.HardwareAddr{0x02, 0, 0, 0, 0, arg % 4}
				claimed[mac] = true
				learn(port, ip(arg>>3), mac, Claim(arg%3+1))
			case 2:
				if mac, ok := h.table.Lookup(port, ip(arg)); ok && !claimed[mac] {
					t.Fatalf("Lookup returned %v, which nobody claimed", mac)
				}
			case 3:
				h.table.Enqueue(port, ip(arg), []byte{arg})
			case 4:
				h.table.Confirm(port, ip(arg))
			case 5:
				if a := ip(arg); a != staticIP {
					h.table.Remove(port, a)
				}
			default:
				h.clock.advance(time.Duration(binary.BigEndian.Uint16([]byte{arg, op})) * time.Millisecond)
				h.table.Tick()
			}
			static := 0
			for _, e := range h.table.Entries() {
				if e.State == Static {
					static++
					if e.IP != staticIP || e.Port != port1 || e.MAC != mac3 {
						t.Fatalf("Static entry changed: %+v", e)
					}
				}
				if e.Queued > cfg.QueueLen {
					t.Fatalf("entry %+v queues more than QueueLen %d", e, cfg.QueueLen)
				}
			}
			if n := len(h.table.Entries()) - static; static != 1 || n > cfg.MaxEntries {
				t.Fatalf("%d Static and %d other entries, want 1 and at most %d", static, n, cfg.MaxEntries)
			}
			h.hooks.takeRequests()
		}
	})
}
