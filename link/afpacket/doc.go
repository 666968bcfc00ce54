// Package afpacket owns the raw Ethernet socket on the underlay interface
// that taprouter's "direct" mode (flannel host-gw style: frames straight to
// the peer node's MAC) sends and receives through, as a link.Device.
//
// The socket is AF_PACKET/SOCK_RAW bound to one interface for every
// EtherType. PACKET_IGNORE_OUTGOING keeps frames that this host transmits on
// the interface (taprouter's own and the kernel's) out of the receive queue,
// so Read sees only what arrives from the wire. The socket does not take the
// frames away from the kernel: the node's own traffic keeps flowing, and
// Read returns a copy of it too, which the caller filters out.
//
// PACKET_AUXDATA is on: ReadMeta (link.MetaReader) reports per frame
// whether it carried an 802.1Q tag with a VLAN ID (the kernel strips the tag
// into metadata, so the frame's bytes look untagged) and whether its
// transport checksum is still partial (TP_STATUS_CSUMNOTREADY, set for
// frames from a local sender with checksum offload, such as a veth peer).
// Read is ReadMeta without the metadata. Frames are received with
// recvmsg(2) into a message header, iovec and control buffer owned by the
// socket, so receiving allocates nothing.
//
// A frame longer than the caller's buffer (a local sender's TSO frame,
// which a veth passes on unsplit: up to 64 KB) is received into an overflow
// buffer of link.MaxLarge bytes, the second iovec, allocated once, and
// returned whole through Large (link.LargeReader, link.RxLarge); it ends
// the batch, since the next frame would reuse the buffer. Its
// segment size is not asked for (PACKET_VNET_HDR would give it): the
// tunnel splits by the MTU, as it must for the UDP socket, which cannot
// tell (see package link/gso).
//
// The socket is non-blocking and registered with Go's netpoller through
// os.NewFile and syscall.RawConn. Read drains every ready frame in one
// wake-up, one recvmsg(2) per frame; Write skips a frame the kernel rejects
// instead of stopping at it. These loops are package link/internal/fdio's,
// shared with package tap. A PACKET_MMAP ring (TPACKET_V3) and a BPF filter
// for pod traffic are the next steps if this path needs to be faster. System
// calls go through golang.org/x/sys/unix.
package afpacket
