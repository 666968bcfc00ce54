package arp

import "strconv"

// State is a neighbour's state, after the kernel's NUD states.
type State uint8

// Neighbour states.
const (
	// Incomplete: broadcast requests are outstanding; packets are queued.
	Incomplete State = iota + 1
	// Reachable: a reply or request from the neighbour was seen within
	// ReachableTime.
	Reachable
	// Stale: the MAC is probably right but unconfirmed; using it starts Delay.
	Stale
	// Delay: a Stale entry was used; if nothing confirms it within DelayTime
	// it moves to Probe.
	Delay
	// Probe: unicast requests to the known MAC are outstanding.
	Probe
	// Failed: resolution failed; packets for it fail at once until the entry
	// is removed after FailedTime.
	Failed
	// Static: configured; never expires and is not changed by Learn.
	Static
)

// Valid reports whether an entry in state s has a MAC that may be used.
func (s State) Valid() bool {
	switch s {
	case Reachable, Stale, Delay, Probe, Static:
		return true
	}
	return false
}

// String returns the state's name as `ip neigh` spells it.
func (s State) String() string {
	switch s {
	case Incomplete:
		return "INCOMPLETE"
	case Reachable:
		return "REACHABLE"
	case Stale:
		return "STALE"
	case Delay:
		return "DELAY"
	case Probe:
		return "PROBE"
	case Failed:
		return "FAILED"
	case Static:
		return "STATIC"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}
