package router

import (
	"github.com/taprouter/taprouter/link"
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
	// DropSourceRoute: the packet carries a loose or strict source route
	// option (LSRR, SSRR). Linux drops these unless accept_source_route is
	// set, which it is not by default.
	DropSourceRoute
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
	DropSourceRoute:   "drop_source_route",
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
	cReturnedToHost                     // replies of NATed flows sent to the host port (returnpath.go)
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
	cReturnedToHost:      "returned_to_host",
}

// stats are the router-wide counters that no worker owns: what the
// router's other goroutines count (ARP announcements and requests, the
// neighbour table's callbacks), and the counts of workers that ended (see
// Router.retire). Each is a padded atomic, as several goroutines add to it.
// The forwarding path counts into its worker's workerStats instead.
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

// workerStats are one worker's share of the router's counters. Only the
// worker's goroutine writes them, so a count is a load and a store (no
// locked read-modify-write, no cache line that another writer dirties);
// Stats reads them with atomic loads and sums them over the workers. They
// are the last field of the worker, padded, so that no other allocation
// shares their last cache line.
type workerStats struct {
	drops    [numDropReasons]atomic.Uint64
	counters [numCounters]atomic.Uint64
	_        [64]byte
}

func (s *workerStats) drop(r DropReason)         { bump(&s.drops[r], 1) }
func (s *workerStats) dropN(r DropReason, n int) { bump(&s.drops[r], uint64(n)) }
func (s *workerStats) add(c counter, n int)      { bump(&s.counters[c], uint64(n)) }

// bump adds n to a counter that only the calling goroutine writes.
func bump(c *atomic.Uint64, n uint64) { c.Store(c.Load() + n) }

// register makes w's counts part of Stats.
func (r *Router) register(w *worker) {
	r.statsMu.Lock()
	r.workers[w] = struct{}{}
	r.statsMu.Unlock()
}

// retire moves the counts of w, whose goroutine has ended, into the
// router-wide counters and forgets w, so that pods coming and going do not
// grow the set Stats sums over. Stats, under the same lock, sees the
// counts either in w or in r.stats, never in both or neither.
func (r *Router) retire(w *worker) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	for i := range w.stats.drops {
		addNonZero(&r.stats.drops[i].Uint64, w.stats.drops[i].Load())
	}
	for i := range w.stats.counters {
		addNonZero(&r.stats.counters[i].Uint64, w.stats.counters[i].Load())
	}
	delete(r.workers, w)
}

func addNonZero(c *atomic.Uint64, v uint64) {
	if v != 0 {
		c.Add(v)
	}
}

// sumCounters returns the router's counters: the router-wide ones plus
// every live worker's.
func (r *Router) sumCounters() (drops [numDropReasons]uint64, counters [numCounters]uint64) {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	for i := range drops {
		drops[i] = r.stats.drops[i].Load()
	}
	for i := range counters {
		counters[i] = r.stats.counters[i].Load()
	}
	for w := range r.workers {
		for i := range drops {
			drops[i] += w.stats.drops[i].Load()
		}
		for i := range counters {
			counters[i] += w.stats.counters[i].Load()
		}
	}
	return drops, counters
}

// Stats returns every counter by name: the drop reasons and the router's
// events, the pod-side neighbour table's counters (arp.Stats) prefixed
// "neigh_", and the tunnel's counters prefixed "tunnel_". The tunnel's drop
// reasons also appear unprefixed (drop_unknown_peer, drop_bad_vni, ...), the
// packets the underlay refused (tunnel_tx_errors) in drop_tx_error, and the
// packets the neighbour table dropped from a full resolution queue as
// drop_neighbour_queue, so that every drop is counted under one drop_ name
// per reason.
//
// "forwarded" counts the packets handed to an egress device or to the
// tunnel's underlay, the router's own included (ICMP, and each fragment of
// a fragmented packet, which itself is not counted). A packet that waits
// for its neighbour's MAC counts when it is sent: on a pod port by the
// router, on the direct backend's underlay by the tunnel
// (tunnel_tx_resolved, added in). So every packet that reaches the egress
// moves exactly one of forwarded and the drop_ counters: one the device or
// underlay refuses moves drop_tx_error only, one whose port went away
// drop_no_route only.
//
// TAP offloads (tap.Options.Offload), summed over the current pod ports:
// tap_checksums_completed, tap_superframes (TCP super-frames from pods) cut
// into tap_segments, drop_tap_offload (offloaded frames that could not be
// honoured), tap_coalesced (super-frames written to pods, merged from
// tap_coalesced_frames frames), tap_coalesce_refused (ports whose kernel
// refused a super-frame write: they write frames alone since). A port's
// counts leave the sums with it.
//
// The return path of NATed flows (returnpath.go): return_path_flows is the
// number of flows remembered now (a gauge), of return_path_capacity;
// return_path_recorded counts the flows added, return_path_evicted those
// given up for a new one in a full bucket, return_path_expired those
// forgotten after their idle timeout; returned_to_host counts the replies
// sent to the host port instead of a pod (they are also forwarded).
func (r *Router) Stats() map[string]uint64 {
	m := make(map[string]uint64, int(numDropReasons)+int(numCounters)+32)
	drops, counters := r.sumCounters()
	for i := DropReason(1); i < numDropReasons; i++ {
		m[dropNames[i]] = drops[i]
	}
	for i := counter(0); i < numCounters; i++ {
		m[counterNames[i]] = counters[i]
	}
	m["return_path_flows"] = uint64(max(r.ret.count.Load(), 0))
	m["return_path_capacity"] = uint64(r.ret.capacity())
	m["return_path_recorded"] = r.ret.recorded.Load()
	m["return_path_evicted"] = r.ret.evicted.Load()
	m["return_path_expired"] = r.ret.expired.Load()
	var off link.OffloadStats
	for _, p := range *r.ports.Load() {
		if c, ok := p.deviceOffloads(); ok {
			off.Checksums += c.Checksums
			off.SuperFrames += c.SuperFrames
			off.Segments += c.Segments
			off.Dropped += c.Dropped
			off.Coalesced += c.Coalesced
			off.CoalescedFrames += c.CoalescedFrames
			off.CoalesceRefused += c.CoalesceRefused
			off.ReadWhole += c.ReadWhole
			off.WrittenWhole += c.WrittenWhole
			off.WriteCut += c.WriteCut
		}
	}
	m["tap_checksums_completed"] = off.Checksums
	m["tap_superframes"] = off.SuperFrames
	m["tap_segments"] = off.Segments
	m["drop_tap_offload"] = off.Dropped
	m["tap_coalesced"] = off.Coalesced
	m["tap_coalesced_frames"] = off.CoalescedFrames
	m["tap_coalesce_refused"] = off.CoalesceRefused
	m["tap_superframes_read_whole"] = off.ReadWhole
	m["tap_superframes_written_whole"] = off.WrittenWhole
	m["tap_superframes_write_cut"] = off.WriteCut
	ns := r.neigh.Stats()
	ns.Each(func(name string, v uint64) { m["neigh_"+name] = v })
	m["drop_neighbour_queue"] = ns.QueueDrops
	if t := r.tunnel; t != nil {
		for k, v := range t.Stats().Map() {
			m["tunnel_"+k] = v
			switch {
			case strings.HasPrefix(k, "drop_"):
				m[k] += v // one drop counter per reason, wherever it happened
			case k == "tx_errors":
				m["drop_tx_error"] += v
			case k == "tx_resolved":
				m["forwarded"] += v
			}
		}
	}
	return m
}
