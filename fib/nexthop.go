package fib

import (
	"net/netip"
	"strconv"
)

// Kind says what the router does with a packet whose destination matches a
// route.
type Kind uint8

const (
	// Unreachable means no route: the router answers ICMP destination
	// unreachable (net unreachable). It is the zero Kind, so the zero
	// NextHop that Lookup returns on a miss is Unreachable.
	Unreachable Kind = iota
	// Blackhole means the packet is silently dropped (and counted).
	Blackhole
	// Local means a pod port on this node; NextHop.Port is the port index.
	Local
	// Peer means a peer node through the tunnel; NextHop.Peer is the peer
	// index.
	Peer
	// Host means the host port (the node's own namespace); it is the
	// default route for non-pod traffic.
	Host
	// Self means an address the router itself owns (the gateway); the
	// packet goes to the router's ICMP responder.
	Self
)

var kindNames = [...]string{
	Unreachable: "unreachable",
	Blackhole:   "blackhole",
	Local:       "local",
	Peer:        "peer",
	Host:        "host",
	Self:        "self",
}

// String returns the lower-case name of k, as taprouterctl prints it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// NextHop is where a route sends a packet. It is small and comparable and is
// passed by value. Port is meaningful only for Local, Peer only for Peer.
type NextHop struct {
	Kind Kind
	Port uint32
	Peer uint32
}

// String formats h as "local port 3", "peer 7", "host", ...
func (h NextHop) String() string {
	switch h.Kind {
	case Local:
		return "local port " + strconv.FormatUint(uint64(h.Port), 10)
	case Peer:
		return "peer " + strconv.FormatUint(uint64(h.Peer), 10)
	default:
		return h.Kind.String()
	}
}

// Route is one entry of the table: a masked prefix and its next hop.
type Route struct {
	Prefix  netip.Prefix
	NextHop NextHop
}

// String formats r as "10.244.1.0/24 peer 1".
func (r Route) String() string {
	return r.Prefix.String() + " " + r.NextHop.String()
}
