// Package afpacket owns the raw Ethernet socket on the underlay interface
// that taprouter's "direct" mode (flannel host-gw style: frames straight to
// the peer node's MAC) sends and receives through, as a link.Device.
//
// The socket is AF_PACKET/SOCK_RAW bound to one interface for every
// EtherType. PACKET_IGNORE_OUTGOING keeps frames that this host transmits on
// the interface (taprouter's own and the kernel's) out of the receive queue,
// so Read sees only what arrives from the wire. The socket does not take the
// frames away from the kernel: the node's own traffic keeps flowing. Open
// returns a copy of every frame too; OpenFiltered attaches a classic BPF
// program that chooses the frames queued (the direct backend's,
// tunnel.DirectFilter, takes ARP and IPv4 for this node's pods only).
//
// PACKET_VNET_HDR puts a virtio_net_hdr in front of every frame, both ways,
// as on a TAP with offloads, and package link/internal/vnet reads and writes
// behind it:
//
//   - Read gets super-frames whole: a local sender's TSO frame, which a
//     veth passes on unsplit, or what the interface's GRO merged (so GRO
//     stays on; the daemon used to turn it off). It cuts them into segments
//     of the sender's segment size, at most the interface's MTU, with their
//     own checksums, and completes partial checksums (a local sender's
//     CHECKSUM_PARTIAL). Callers see frames of at most the MTU with complete
//     checksums, as from a NIC without offloads.
//   - Write merges runs of adjacent segments of one TCP flow into one
//     super-frame, one writev(2) for up to 64 KB: a veth and a bridge pass
//     it on whole, so the peer node's socket reads it as one frame; a NIC
//     segments it (TSO, or the kernel's GSO in software).
//
// PACKET_AUXDATA is on: ReadMeta (link.MetaReader) reports per frame
// whether it carried an 802.1Q tag with a VLAN ID (the kernel strips the tag
// into metadata, so the frame's bytes look untagged). OffloadStats counts
// super-frames both ways.
//
// The socket is non-blocking and reaches Go's netpoller only through a
// one-shot epoll registration armed while a Read or Write waits
// (fdio.OneShotConn: no wake-up per frame received or sent while the daemon
// is busy). Read receives up to a batch of 64 frames with one recvmmsg(2)
// (vnet.NewBatchReader): each message has its own virtio header, its own
// control buffer for PACKET_AUXDATA, and the caller's buffer, into which the
// kernel writes a plain frame directly, continued in an overflow slot of 64
// KB, where a super-frame arrives whole: 64 slots, 4.0 MiB per socket (pages
// are touched only as long frames land in them). Frames received behind a
// super-frame, or behind a frame dropped, are copied (into their slot, then
// into a caller's buffer) and handed out in order, by the same Read if it has
// room, else by the next. Write sends each run of frames that go alone
// (neither coalesced nor super-frames) with one sendmmsg(2), coalesced runs
// and super-frames with a writev(2) each, in order, and skips a frame the
// kernel rejects instead of stopping at it (it fails a sendmmsg call of its
// own). Neither allocates: message headers, iovecs and control buffers are
// the socket's. A PACKET_MMAP ring (TPACKET_V3) is the next step if this path
// needs to be faster. System calls go through golang.org/x/sys/unix.
package afpacket
