// Package tunnel owns taprouter's underlay encapsulation: how an inner IPv4
// packet leaves this node for a peer node and how a peer's packet is taken
// back out of the underlay. It does no routing: the router's FIB picks the
// peer (by its ID, see Peer.ID) and the tunnel only wraps, sends, receives,
// checks and unwraps.
//
// Peers live in a slot table: the low PeerSlotBits of an ID are the slot,
// the bits above its generation. A packet named by an ID whose slot is
// empty or holds another generation is dropped (drop_unknown_peer), so a
// packet the router routed to a peer that was removed meanwhile never
// reaches whichever peer took its slot.
//
// Three backends, flannel-style, sit behind the Tunnel interface:
//
//   - vxlan (vxlan.go): RFC 7348 over a UDP socket, wire-compatible with a
//     Linux kernel vxlan device configured the way flannel's vxlan backend
//     configures flannel.1 (VNI 1, port 8472, no learning).
//   - udp (udp.go): bare IP-in-UDP, flannel's old udp backend (port 8285).
//   - direct (direct.go): plain Ethernet frames on the underlay L2 to the peer
//     node's MAC, like flannel host-gw, through an AF_PACKET device. The peer
//     MAC comes from this package's own ARP on the underlay (package arp), not
//     from the kernel's neighbour table.
//
// vxlan and udp share the sockets, the peer snapshot, Send and Recv
// (datagram.go) and differ only in the header in front of the inner packet.
//
// # Outer source ports: flow entropy
//
// Linux vxlan sends each inner flow from a UDP source port of its own,
// udp_flow_src_port(): a hash of the inner flow scaled into the local port
// range. ECMP routers and the receiving NIC's RSS hash the outer 5-tuple,
// so flows spread over paths and receive queues (CPUs); from one source
// port they would all take one. The vxlan and udp backends do the same
// with a pool of sockets (VXLANConfig.Senders, UDPConfig.Senders; the
// daemon opens 8, config vxlan.sourcePorts and udp.sourcePorts, 1..64,
// through udp.ListenSenders): each bound to the underlay address and an
// ephemeral port the kernel picks from net.ipv4.ip_local_port_range, as
// Linux vxlan's range. Send picks a packet's sender by flowHash (flow.go)
// of the inner IPv4 packet: its addresses and protocol, and for TCP and
// UDP its ports; a fragment (the first too, whose ports the later ones
// lack), another protocol or a header too short for the ports hash
// without them, so all fragments of a datagram go together. The hash is a
// fixed function of those fields only (FuzzFlowHash holds it to a
// field-by-field reference), so a flow always leaves from one port and
// keeps its order; its sender is hash × n / 2^32 of n senders. The hash is
// not seeded: a sender choosing flows that share a port only gets what one
// port gave everyone before. Without senders Send uses the receiving
// socket, from the VXLAN port, as before.
//
// Send groups a batch by sender with a stable counting sort: one WriteTo
// per sender in use, with that sender's packets in their batch order (a
// flow is on one sender, so its order is kept, and a sender's run of
// packets to one peer is still one UDP GSO message); a batch of one
// sender's flows, the common case of one flow, goes out as it is. The
// grouping lives in the batch slot's scratch (spread), so Send allocates
// nothing. The pool has 8 ports, not the range's 28 000 as Linux vxlan:
// enough for ECMP paths and receive queues, and each sender a batch uses
// is a sendmmsg of its own, so more senders cost system calls. The
// tx_messages and tx_gso_* counters are the sums over the receiving
// socket and the senders.
//
// Cost, measured on the 2-core machine here under other load (medians of
// 3 to 5 runs, batches of 64 1400-byte packets): the hash 5.5 ns
// (BenchmarkFlowHash); Send into a socket that discards, 12 ns a packet
// from one socket, 24 ns through 8 senders for one flow, 32 ns for 64
// flows (BenchmarkSend); through real sockets over a veth 0.9 to 1.1 µs a packet
// from one socket or for 1 to 4 flows over 8 senders (within the noise),
// 1.5 µs for 64 flows, which take 8 sendmmsg calls instead of 2
// (BenchmarkSendUnderlay). The router's BenchmarkForwardPodToVXLAN (one
// socket) is unchanged: 78 ns a packet before and after, 0 allocations.
// bench/compare cross-node vxlan, two runs each of 1 socket and of 8
// senders: one stream 4.75 and 5.29 against 4.78 and 4.34 Gbit/s, 4
// streams (-P 4, 4 flows in a batch, up to 4 sendmmsg) 5.54 and 5.24
// against 4.81 and 4.81 Gbit/s, with the kernel's own reference moving
// from 6.9 to 20 Gbit/s between runs: on one machine with a veth, where
// no ECMP or RSS gains anything, spreading costs up to about 10% of
// multi-flow throughput.
//
// Nothing on the receiving side depends on the source port: Recv knows a
// peer by its source address only (as a kernel vxlan device, which takes
// any source port), so taprouter nodes of either kind, from 8472 or from
// the pool, and flannel.1 interoperate both ways (TestVXLANKernelInterop
// runs both). The senders receive nothing: a socket filter drops what
// reaches their ports (udp.SendOnly), and only the socket on the VXLAN
// port reads.
//
// Why a pool and not SO_REUSEPORT: a socket's source port is the port it
// is bound to, and a UDP socket cannot choose another per message (no
// cmsg sets it; only a raw socket could, without the kernel's UDP GSO and
// checksum offload). SO_REUSEPORT puts several sockets on one port, 8472,
// so it adds no source-port entropy. What it does is spread receiving over
// sockets, by a hash of the 4-tuple, which the senders' entropy makes
// work. That is not built: Tunnel.Recv is serialised and the router reads
// a tunnel from one goroutine, so more receive sockets need a reader
// goroutine each in the router, and queues (recvQueue) per socket. Measured
// here (8 source ports into a veth, 2 cores shared by sender and
// receivers), 2 SO_REUSEPORT sockets with a reader each received no more
// than one socket and reader (600 to 1000 thousand datagrams a second
// either way) when the reader only counts, and 15 to 40% more when each
// reader also reads every byte, taking the CPU from the sender; with both
// nodes on the same 2 cores there is no spare core for a second reader.
// On a receiver with more cores, the source ports already spread its
// softirq work over the NIC's queues (RSS) with one socket.
//
// # Partial checksums from kernel senders
//
// A Linux sender whose device offers TX checksum offload (a veth, and so
// every kind or docker-based cluster) hands over TCP and UDP packets with
// the checksum unfinished (CHECKSUM_PARTIAL): the field holds the folded
// pseudo-header sum, for the NIC to complete. A kernel vxlan device
// encapsulates such a packet as it is, and over a veth underlay nothing
// completes it, so the pod would drop every segment. Recv completes these
// checksums, as the NIC would have:
//
//   - direct: the AF_PACKET socket (link/afpacket, with PACKET_VNET_HDR)
//     completes them itself, where the frame's virtio header says. A
//     device that only reports them (link.RxChecksumPartial) gets its TCP
//     or UDP checksum computed here, over the transport header of the IPv4
//     packet.
//   - vxlan and udp: a UDP socket does not say. A TCP or UDP checksum is
//     completed only if it does not verify and its field equals the folded
//     pseudo-header sum, exactly what CHECKSUM_PARTIAL leaves. This lets in
//     nothing an underlay host could not send anyway: the backends carry no
//     authentication, so anyone who can send us a datagram can send the
//     same packet with a correct checksum. It does not repair corruption
//     either: a packet damaged on the way keeps its wrong checksum unless
//     the damage happens to leave exactly the pseudo-header sum in the
//     field (1 in 65536 of damaged packets, the same odds as damage that
//     still verifies, and behind the underlay's own Ethernet CRC).
//
// Cost: a complete packet (every packet from a taprouter peer or from a NIC
// that offloads) costs one pseudo-header sum, 12 bytes, before the field
// test rejects it; only a partial one pays a checksum over its segment,
// about 200 ns for 1400 bytes against 20 ns for the test alone
// (BenchmarkCompleteChecksum). Nothing allocates. Completed packets are
// counted in csum_completed; fragments, other protocols and UDP without
// checksum are left alone.
//
// # Segmentation offload from kernel senders
//
// A veth also passes a sender's segmentation offload on: TCP super-segments
// of up to 64 KB, with a partial checksum, that no NIC would put on a wire,
// inside 64 KB vxlan or udp datagrams (tx-udp_tnl-segmentation: the kernel
// does not segment SKB_GSO_UDP_TUNNEL packets for a UDP socket without an
// encapsulation handler) or as 64 KB direct frames (TSO). The direct
// backend is a GSOTunnel: RecvGSO hands such a frame to the router whole
// (tunnel_rx_whole), described by its virtio header (package
// link/afpacket), and SendGSO writes the router's super-frames onto the
// underlay whole (tunnel_tx_whole), so a TCP flow crosses a veth underlay
// in 64 KB frames both ways and is never segmented in userspace; Recv and
// Send cut them, and merge runs of a flow's segments into super-frames,
// for a router that does not take them whole. The UDP socket keeps
// a long datagram (and any link.LargeReader device a long frame) whole in
// a buffer of its own instead of dropping it, and Recv splits the inner TCP
// packet with package link/gso into segments of at most the inner MTU
// (VXLANConfig.MTU, UDPConfig.MTU, DirectConfig.MTU: the pod MTU), each
// with its own IPv4 ID and checksums, contiguous sequence numbers, and
// FIN/PSH only on the last, CWR only on the first. The sender's MSS is not
// known (a UDP socket does not report it), but a TCP receiver takes any
// segment no longer than its MSS, which follows from the pod's MTU.
//
// The segments are more packets than the buffers the read consumed. The
// first Recv hands out as many as fit in its batch (in the slots from the
// super-packet on); the rest, and the packets read behind the
// super-packet (copied, so that a flow keeps its order), stay queued in the
// backend and are handed out by the next Recv calls before the underlay is
// read again (recvQueue). The queue holds at most one batch; its storage is
// allocated at first use and reused, so splitting allocates nothing in
// steady state. Recv calls are serialised by a mutex (the transports
// serialised their reads already). A super-packet counts once in gso_split
// and each segment in gso_segments and rx_packets. One that cannot be split
// is dropped: as drop_malformed if its IPv4 or TCP header is inconsistent
// (including a wrong IPv4 header checksum), as drop_oversize if it is an
// IP fragment or not TCP: a UDP GSO super-datagram is cut at the sending
// application's datagram size, which nothing here tells. The
// super-packet's own TCP checksum is not checked (it is partial); every
// segment gets a full one, which, as above, admits nothing an underlay host
// could not send anyway.
//
// Cost: splitting a 64 KB super-segment into 47 segments for MTU 1450
// takes about 14 µs (BenchmarkSplit64K in link/gso), 16 µs through Recv
// (BenchmarkRecvSplit64K here), about 0.3 µs per segment: a copy and a
// checksum of each, against 0.2 µs to complete the checksum of a
// 1400-byte partial packet. Memory: 64 KB of overflow per
// AF_PACKET socket (its reader's), 64 × 64 KB per UDP socket (one slot per message of a
// recvmmsg batch, touched only by super-datagrams).
//
// # The direct backend on a shared L2
//
// Anyone on the underlay segment can answer ARP for a peer's address. The
// backend's ARP table takes no reply it did not ask for (arp_unsolicited),
// as the kernel by default; it asks for every peer when SetPeers names it
// and keeps the peer's entry however idle (re-probing it instead of
// collecting it), so a known MAC is there to defend. And it does not let
// a claim replace a known MAC: it
// re-probes the known MAC and takes the claim only if that stops answering
// (arp.Table.Learn); each such claim is counted in arp_conflicts and the
// first of each re-probe reported to DirectConfig.OnConflict. Frames are
// matched to the peer whose pod range holds their inner source, whatever
// their source MAC, as the kernel's host-gw routes do, so the real peer's
// traffic is never refused because of an impostor. Frames with an 802.1Q
// tag (which the kernel moves into PACKET_AUXDATA) belong to a VLAN, not to
// the untagged underlay, and are dropped (drop_vlan); priority-tagged
// frames (VLAN ID 0) are untagged traffic, as for the kernel.
//
// Send and Recv are the hot path: they work on batches in the caller's
// buffers, encapsulate and decapsulate in place using the headroom in front of
// each packet (see package link), read the peer set without locks (an
// atomic.Pointer to an immutable snapshot; Recv holds only its own mutex,
// uncontended with one reader) and do not allocate in steady state (their
// scratch batches live in fixed slots, see getBatch). Counters are
// accumulated per batch and published with one atomic add per counter
// the batch moved; Send's and Recv's are on separate cache lines.
package tunnel
