// Package tap owns Linux TUN/TAP devices: creating them (TUNSETIFF),
// re-attaching to persistent ones, and moving batches of frames (TAP) or IP
// packets (TUN) through them as a link.Device.
//
// A TAP device is a pod port: podnet moves it into the pod's network
// namespace as eth0, and the file descriptor this package holds keeps working
// from the daemon's namespace. A TUN device is the host port (taprouter0).
//
// The file descriptor is non-blocking and reaches Go's netpoller only
// through a one-shot epoll registration that a Read arms when it finds
// nothing (fdio.OneShotConn), so that a pod's sender does not wake the
// daemon for each frame it queues while the daemon is reading anyway; a
// waiting Read parks a goroutine, and Close wakes it. Read drains every
// frame that is ready in one wake-up: it blocks only for the first frame, then calls read(2) until
// EAGAIN or the batch is full. Write stops at the first frame the kernel
// rejects. These loops are package link/internal/fdio's, shared with package
// afpacket.
//
// Create sets the device's txqueuelen to DefaultTxQueueLen: for TUN/TAP it
// is the ring between the kernel and Read, and the driver drops what
// overflows it rather than pushing back on the sender.
//
// With Options.Offload a TAP is opened with IFF_VNET_HDR and offers its
// kernel checksum offload, TSO over IPv4 and UDP segmentation offload (USO,
// Linux 6.2; TUNSETOFFLOAD, probed: what the kernel refuses is left out,
// and Offloads says what it took). A UDP_SEGMENT sender's super-datagram
// is cut back into the datagrams it asked for. The
// pod's kernel then hands taprouter TCP super-frames of up to 64 KB with
// partial checksums, one read(2) each instead of one per segment. Read
// hides that from its caller: it completes partial checksums where the
// virtio header's csum_start and csum_offset say (held to the frame's
// bounds; hdr_len is never used), and
// cuts a super-frame into segments of the sender's segment size (at most
// the MTU, so a TCP that lowered its MSS after a frag-needed keeps to it),
// one per buffer of the batch, the rest handed out by the next Read. Write
// puts an empty virtio_net_hdr in front of each frame (no offload asked
// of the kernel), or merges a run of one TCP flow's segments into one
// super-frame. Attach sets the offloads the adopting process asks for,
// and clears a previous owner's: they belong to the device, not the fd.
// The virtio header's reader and writer are package link/internal/vnet's,
// shared with package afpacket's underlay socket.
//
// The ioctls go through golang.org/x/sys/unix directly. Wrappers such as
// songgao/water cannot set IFF_VNET_HDR, cannot combine persist and
// multiqueue, hide the fd behind a blocking io.ReadWriter and read one frame
// per call; taprouter needs all of those knobs (now or later) and batch reads.
package tap
