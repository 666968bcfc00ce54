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
// vxlan and udp share the socket, the peer snapshot, Send and Recv
// (datagram.go) and differ only in the header in front of the inner packet.
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
// encapsulation handler) or as 64 KB direct frames (TSO). The AF_PACKET
// socket cuts direct frames itself, by the sender's segment size in their
// virtio header (package link/afpacket), and merges runs of a flow's
// segments that Send hands it into such super-frames, so a TCP flow
// crosses a veth underlay in 64 KB frames both ways. The UDP socket keeps
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
