// Package vnet owns the virtio_net_hdr, the 10-byte header that Linux puts
// in front of every frame on a TAP opened with IFF_VNET_HDR and on a packet
// socket with PACKET_VNET_HDR, and moves frames through such a descriptor
// as a link.Device would without offloads:
//
//   - Reader receives a frame behind its header (readv(2) for a TAP: the
//     RecvFunc is the owner's; a batch of them with recvmmsg(2) for a
//     packet socket, the BatchRecvFunc the owner's, see batch.go), completes
//     a partial TCP or UDP checksum where csum_start and csum_offset say
//     (held to the frame's bounds; hdr_len is never trusted), and cuts a
//     TCP/IPv4 super-frame (GSO_TCPV4) of up to 64 KB into segments of the
//     sender's segment size, at most the MTU, with package link/gso.
//   - Coalescer writes frames behind a header, merging runs of adjacent
//     segments of one TCP flow into one GSO_TCPV4 super-frame, and runs of
//     datagrams of one UDP flow into one GSO_UDP_L4 super-datagram, written
//     with one writev(2), as the kernel's GRO would merge them (the rules
//     are in coalesce.go); the kernel on the other side segments it again,
//     or, on a veth, passes it on whole. A packet socket's Coalescer sends each run
//     of the frames that go alone with one sendmmsg(2).
//
// Package tap uses both for a pod's TAP with offloads, package afpacket for
// the direct backend's underlay socket. The header is in the host's byte
// order (legacy virtio: TUNSETVNETLE/BE are not used, and a packet socket
// has no other). Neither side allocates per frame: the 64 KB buffer, the
// iovecs and the closures RawConn runs are the Reader's and the
// Coalescer's, under a mutex that serialises calls.
package vnet
