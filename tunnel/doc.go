// Package tunnel owns taprouter's underlay encapsulation: how an inner IPv4
// packet leaves this node for a peer node and how a peer's packet is taken
// back out of the underlay. It does no routing: the router's FIB picks the
// peer (an index into the slice given to SetPeers) and the tunnel only wraps,
// sends, receives, checks and unwraps.
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
// Send and Recv are the hot path: they work on batches in the caller's
// buffers, encapsulate and decapsulate in place using the headroom in front of
// each packet (see package link), take no locks (the peer set is an
// atomic.Pointer to an immutable snapshot) and do not allocate in steady
// state. Counters are accumulated per batch and published with one atomic add
// per counter.
package tunnel
