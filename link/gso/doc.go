// Package gso splits an IPv4 TCP super-segment into segments that fit an
// MTU, as the kernel's GSO (tcp_gso_segment) or a NIC's TSO would have.
//
// A Linux sender hands a device that offers segmentation offload a TCP
// packet of up to 64 KB with a partial checksum, for the device to cut into
// MSS-sized segments. A veth passes such packets on unsplit, so taprouter
// receives them from a kernel peer: inside 64 KB vxlan or udp datagrams
// (tx-udp_tnl-segmentation) or as 64 KB frames on the direct backend's
// AF_PACKET socket (TSO). The tunnel splits them with a Segmenter before
// they reach the router.
//
// Each segment gets a copy of the IPv4 and TCP headers (options included)
// and the next run of payload bytes. Per segment the IPv4 total length, ID
// (the super-segment's plus the segment number) and header checksum are
// rewritten, the TCP sequence number advances by the payload before it, FIN
// and PSH stay only on the last segment and CWR only on the first, and the
// TCP checksum is computed in full over the segment (the super-segment's is
// partial, or at least not the segments'; it is not read).
//
// Segments are cut by the MTU, not by the sender's MSS, which a UDP socket
// does not report: payload per segment is the MTU minus the IPv4 and TCP
// header lengths. A TCP receiver takes any segment no longer than its MSS,
// and the receiving pod's MSS follows from its MTU, so segments that fit
// the pod MTU are accepted. A UDP super-datagram (UDP GSO) cannot be split
// this way: its segment size is the sending application's datagram size,
// not something the MTU tells; Reset refuses it (ErrNotTCP). Where the
// size is known (a TAP's virtio header carries it), ResetUDP cuts it into
// those datagrams, each with its own IPv4 ID, UDP length and checksum, as
// the kernel's __udp_gso_segment does, at most 128 of them.
//
// Nothing allocates: the caller supplies the buffer of each segment.
package gso
