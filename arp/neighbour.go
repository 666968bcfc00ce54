package arp

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/taprouter/taprouter/link"
)

// key identifies a neighbour: the router port it is on (high 32 bits) and
// its IPv4 address (low 32 bits). An integer key keeps Lookup on the map's
// fast path.
type key uint64

// makeKey returns the key of ip on port; ok is false if ip is not IPv4.
func makeKey(port uint32, ip netip.Addr) (k key, ok bool) {
	if !ip.Is4() {
		return 0, false
	}
	a := ip.As4()
	return key(uint64(port)<<32 | uint64(binary.BigEndian.Uint32(a[:]))), true
}

// mustKey is makeKey for the slow-path methods, where a non-IPv4 address is
// the caller's bug.
func mustKey(port uint32, ip netip.Addr) key {
	k, ok := makeKey(port, ip)
	if !ok {
		panic("arp: neighbour address " + ip.String() + " is not IPv4")
	}
	return k
}

func (k key) port() uint32 { return uint32(k >> 32) }

func (k key) ip() netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], uint32(k))
	return netip.AddrFrom4(a)
}

// neighbour is one entry of the table.
type neighbour struct {
	// Read without the table's lock by Lookup and Confirm. Lookup writes
	// state only to move it from Stale to Delay; Confirm writes only
	// confirmed. Everything else writes them under the lock.
	state     atomic.Uint32 // a State
	mac       atomic.Uint64 // a link.HardwareAddr, see packMAC
	confirmed atomic.Bool   // traffic from the neighbour was seen since the last Tick

	// Guarded by Table.mu.
	key      key
	timerFor State     // the state that entered, deadline and probes belong to
	entered  time.Time // when the entry entered its state
	deadline time.Time // when the state's timer fires
	probes   int       // requests sent in this state
	// candidate is the MAC a conflicting claim named while the known MAC
	// is re-probed (in Probe); zero otherwise.
	candidate link.HardwareAddr
	queue     [][]byte // packets waiting for resolution
	kept      bool     // Keep was called for it: re-probed, never collected
}

func (n *neighbour) loadState() State { return State(n.state.Load()) }

func (n *neighbour) hardwareAddr() link.HardwareAddr { return unpackMAC(n.mac.Load()) }

func packMAC(a link.HardwareAddr) uint64 {
	var b [8]byte
	copy(b[2:], a[:])
	return binary.BigEndian.Uint64(b[:])
}

func unpackMAC(v uint64) link.HardwareAddr {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return link.HardwareAddr(b[2:])
}
