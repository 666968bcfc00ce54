package arp

import (
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// Hooks receives the table's output. The table calls it without holding its
// lock, so a hook may call back into the table. Queued packets are handed
// over: the hook owns them and the table never touches them again.
type Hooks interface {
	// SendRequest asks for an ARP request for target to be sent on port to
	// dst: link.Broadcast when resolving, the known MAC when probing. An
	// error (the request could not be transmitted) is counted in
	// Stats.SendFailures; the table retries at the next retransmit as if
	// the request had been lost.
	SendRequest(port uint32, target netip.Addr, dst link.HardwareAddr) error
	// Resolved reports that target on port is at mac and hands over the
	// packets queued for it (possibly none).
	Resolved(port uint32, target netip.Addr, mac link.HardwareAddr, queued [][]byte)
	// Failed reports that target on port did not answer and hands over the
	// packets queued for it (possibly none), which the router answers with
	// ICMP host unreachable.
	Failed(port uint32, target netip.Addr, queued [][]byte)
}

type eventKind uint8

const (
	sendRequest eventKind = iota + 1
	resolved
	failed
)

// event is a hook call collected under the table's lock and made after it
// is released.
type event struct {
	kind   eventKind
	key    key
	mac    link.HardwareAddr
	queued [][]byte
}

func emit(h Hooks, c *counters, events []event) {
	for i := range events {
		e := &events[i]
		switch e.kind {
		case sendRequest:
			if h.SendRequest(e.key.port(), e.key.ip(), e.mac) != nil {
				c.sendFailures.Add(1)
			}
		case resolved:
			h.Resolved(e.key.port(), e.key.ip(), e.mac, e.queued)
		case failed:
			h.Failed(e.key.port(), e.key.ip(), e.queued)
		}
	}
}
