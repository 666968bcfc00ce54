package router

import (
	"strings"
	"sync/atomic"
)

// DropReason says why a packet was dropped; each has a counter.
type DropReason uint8

// Drop reasons. Their names are the counters' names in Stats.
const (
	DropNone        DropReason = iota
	DropMalformed              // not a valid IPv4 packet / Ethernet frame
	DropNotIPv4                // an ethertype the router does not route (IPv6, LLDP, ...)
	DropSpoofed                // a pod sent with a source IP or MAC that is not its own
	DropBadMAC                 // a frame not addressed to the gateway MAC
	DropTTL                    // TTL expired (ICMP time exceeded sent)
	DropNoRoute                // no route (ICMP unreachable sent)
	DropBlackhole              // blackhole route
	DropTooBig                 // DF set and larger than the egress MTU, or larger than the port's read buffer (ICMP frag needed sent)
	DropNeighbour              // the next hop's MAC could not be resolved
	DropTxError                // the egress device refused the packet
	DropMulticast              // broadcast or multicast destination
	DropFiltered               // a user stage dropped it
	DropLoop                   // would leave by the port it came in on (host to host)
	DropRateLimited            // over a pod's bandwidth limit
	// DropMartian: a destination no router forwards (0.0.0.0/8, 127/8,
	// 224/4 multicast, 240/4 including 255.255.255.255, the pod subnet's
	// directed broadcast) sent to the gateway, or such an inner source or
	// destination from the tunnel. Linux drops these as martians.
	DropMartian
	// DropTunnelSpoofed: a packet from a peer node whose inner source is
	// neither in that peer's pod range nor the peer's own address. The
	// underlay carries no authentication: anyone can send as a peer.
	DropTunnelSpoofed
	// DropTunnelDst: a packet from a peer node whose inner destination is
	// neither in this node's pod range nor the gateway.
	DropTunnelDst
	// DropStagePanic: a stage panicked; the packets of its batch that were
	// still in flight are dropped (see Stage).
	DropStagePanic
	// DropLocal: addressed to the gateway, which has no use for it: TCP
	// (nothing listens) and ICMP other than echo requests.
	DropLocal
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropNone:          "drop_none",
	DropMalformed:     "drop_malformed",
	DropNotIPv4:       "drop_not_ipv4",
	DropSpoofed:       "drop_spoofed",
	DropBadMAC:        "drop_bad_mac",
	DropTTL:           "drop_ttl",
	DropNoRoute:       "drop_no_route",
	DropBlackhole:     "drop_blackhole",
	DropTooBig:        "drop_too_big",
	DropNeighbour:     "drop_neighbour",
	DropTxError:       "drop_tx_error",
	DropMulticast:     "drop_multicast",
	DropFiltered:      "drop_filtered",
	DropLoop:          "drop_loop",
	DropRateLimited:   "drop_rate_limited",
	DropMartian:       "drop_martian",
	DropTunnelSpoofed: "drop_tunnel_spoofed",
	DropTunnelDst:     "drop_tunnel_dst",
	DropStagePanic:    "drop_stage_panic",
	DropLocal:         "drop_local",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "drop_unknown"
}

// counter indexes the router's event counters.
type counter uint8

const (
	cForwarded           counter = iota // handed to an egress device (see Stats)
	cICMPEchoReplies                    // echo replies from the gateway
	cICMPTimeExceeded                   // time exceeded sent
	cICMPUnreachable                    // destination unreachable sent (not frag needed)
	cICMPFragNeeded                     // fragmentation needed sent
	cICMPRateLimited                    // ICMP errors not sent: over the global limit
	cICMPDestRateLimited                // ICMP errors not sent: over their destination's limit
	cICMPNoBuffer                       // ICMP errors not sent: no spare buffer in the batch
	cARPRepliesSent                     // answers to pods' requests for the gateway
	cARPRequestsSent                    // requests for pods' MACs
	cARPGratuitousSent                  // gateway announcements on new ports
	cFragmentsSent                      // fragments the router made
	cARPSendErrors                      // ARP packets a pod's device refused
	cARPReceived                        // ARP packets from pods, learned from or answered
	numCounters
)

var counterNames = [numCounters]string{
	cForwarded:           "forwarded",
	cICMPEchoReplies:     "icmp_echo_replies",
	cICMPTimeExceeded:    "icmp_time_exceeded",
	cICMPUnreachable:     "icmp_unreachable",
	cICMPFragNeeded:      "icmp_frag_needed",
	cICMPRateLimited:     "icmp_rate_limited",
	cICMPDestRateLimited: "icmp_dest_rate_limited",
	cICMPNoBuffer:        "icmp_no_buffer",
	cARPRepliesSent:      "arp_replies_sent",
	cARPRequestsSent:     "arp_requests_sent",
	cARPGratuitousSent:   "arp_gratuitous_sent",
	cFragmentsSent:       "fragments_sent",
	cARPSendErrors:       "arp_send_errors",
	cARPReceived:         "arp_received",
}

// stats are the router-wide counters. Each is a padded atomic so that the
// ingress goroutines of different ports do not share cache lines.
type stats struct {
	drops    [numDropReasons]paddedCounter
	counters [numCounters]paddedCounter
}

type paddedCounter struct {
	atomic.Uint64
	_ [56]byte
}

func (s *stats) drop(r DropReason)    { s.drops[r].Add(1) }
func (s *stats) add(c counter, n int) { s.counters[c].Add(uint64(n)) }

// Stats returns every counter by name: the drop reasons and the router's
// events, the pod-side neighbour table's counters (arp.Stats) prefixed
// "neigh_", and the tunnel's counters prefixed "tunnel_". The tunnel's drop
// reasons also appear unprefixed (drop_unknown_peer, drop_bad_vni, ...), and
// the packets the neighbour table dropped from a full resolution queue as
// drop_neighbour_queue, so that every drop is counted under one drop_ name
// per reason.
//
// "forwarded" counts the packets handed to an egress device, the router's
// own included (ICMP, and each fragment of a fragmented packet, which itself
// is not counted); a packet that waits for its neighbour's MAC counts when
// it is sent, the direct backend's waiting for a peer's underlay MAC
// included (tunnel_tx_resolved); a packet the tunnel drops or fails to send
// is not forwarded.
func (r *Router) Stats() map[string]uint64 {
	m := make(map[string]uint64, int(numDropReasons)+int(numCounters)+32)
	for i := DropReason(1); i < numDropReasons; i++ {
		m[dropNames[i]] = r.stats.drops[i].Load()
	}
	for i := counter(0); i < numCounters; i++ {
		m[counterNames[i]] = r.stats.counters[i].Load()
	}
	ns := r.neigh.Stats()
	ns.Each(func(name string, v uint64) { m["neigh_"+name] = v })
	m["drop_neighbour_queue"] = ns.QueueDrops
	if t := r.tunnel; t != nil {
		for k, v := range t.Stats().Map() {
			m["tunnel_"+k] = v
			if strings.HasPrefix(k, "drop_") {
				m[k] += v // one drop counter per reason, wherever it happened
			}
		}
		m[counterNames[cForwarded]] += m["tunnel_tx_resolved"]
	}
	return m
}
