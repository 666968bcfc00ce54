// Package router is taprouter's forwarding plane: ports, the pipeline of
// stages a batch of packets passes through, and the packets the router
// originates itself (ARP answers, ICMP).
//
// A port is a link.Device with a role: a pod port (a TAP whose other end is a
// pod's eth0: Ethernet frames), the host port (a TUN in the node's namespace:
// IP packets) or the tunnel (a tunnel.Tunnel: IP packets to and from peer
// nodes). Each ingress port has its own goroutine that reads a batch, decodes
// it into Packets, runs the pipeline and transmits the survivors grouped by
// egress port, run to completion, without locks and without allocating.
// A goroutine's worker owns its buffers, its egress batches, a small cache
// of FIB lookups (keyed by the FIB snapshot, so a route change applies to
// the next packet) and its share of the router's counters, which only it
// writes and Stats sums on read (a worker that ends leaves its counts to
// the router-wide ones): no cache line is written by two goroutines per
// packet. A port's own counters are added once per batch.
//
// The pipeline is a list of Stages. Built-in stages route (FIB lookup, answers
// for the gateway address), decrement the TTL, and check the egress MTU; user
// stages go before routing (Config.IngressStages: filters, counters, policy)
// or after it (Config.EgressStages: they see the chosen next hop). A stage
// marks a packet dropped or consumed; later stages skip it. Every port's
// goroutine runs the same stage values at once, and a stage that panics is
// recovered at the pipeline (see Stage).
//
// The router behaves like the Linux router it replaces, as a pod sees it:
// it answers ARP for the gateway and learns each pod's MAC by ARP (package
// arp), decrements the TTL (63 on the same node, 62 across nodes), answers
// ping to the gateway, and sends ICMP time exceeded, destination unreachable
// and fragmentation needed (with the egress MTU), so that traceroute and
// tracepath work. ICMP errors are limited as Linux limits them: per
// destination (one a second, burst 6) and globally, "fragmentation needed"
// never. A pod whose MTU is above its port's read buffers (it raised it
// after it was attached) gets "fragmentation needed" with what the router
// can take for a frame the device cut to the buffer.
//
// Nothing is believed that a sender could forge. A pod may only send from
// its own IP and MAC. The underlay carries no authentication (anyone on it
// can send as a peer node), so a packet from the tunnel is only delivered
// if it passes a strict reverse-path check (the FIB's route to its inner
// source leads to the very peer it came from, or the source is that peer
// node's own address), and its inner destination is in this node's pod
// range or the gateway (drop_tunnel_spoofed, drop_tunnel_dst).
//
// Peers have stable IDs (slot | generation<<16, see tunnel.Peer.ID), not
// list positions: SetPeers matches the new set to the old by node name and
// deletes the FIB routes that go before the tunnel forgets a peer, and adds
// a peer to the tunnel before its routes, so that no packet is ever sent to
// a node that does not own its destination. Martian addresses
// (0/8, loopback, multicast, class E, broadcasts) are dropped as Linux does
// (drop_martian): from pods, nothing but unicast reaches the node's kernel.
//
// Services: kube-proxy DNATs a pod's packet to a ClusterIP in the node's
// namespace, and the kernel sends it back through the host port to the
// chosen pod. The router remembers the reply flow of every packet from the
// host port whose source is a pod (returnpath.go) and sends the replies of
// those flows to the host port, not to the pod, so that the kernel's
// conntrack reverses the DNAT: the client sees its answer come from the
// ClusterIP.
//
// IPv4 headers are read and written through gVisor's typed header views;
// checksums are updated incrementally (RFC 1624), and the header checksum
// of every packet received is checked 32 bits at a time.
package router
