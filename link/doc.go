// Package link is the seam between taprouter and the devices it moves packets
// through: TAP devices (pod ports), a TUN device (the host port), UDP sockets
// and AF_PACKET sockets (the underlay).
//
// The shape follows wireguard-go's tun.Device: every call moves a batch of
// packets, and an offset leaves headroom in front of each packet so that an
// encapsulation can prepend its headers in place, without a copy.
//
// Conventions, for every implementation:
//   - Read(bufs, sizes, offset) reads up to len(bufs) packets; packet i lands in
//     bufs[i][offset:] and its length in sizes[i]. It blocks until at least one
//     packet is read and returns how many were read.
//   - Write(bufs, offset) sends packet i, which is bufs[i][offset:]; it returns
//     how many were sent.
//   - A read returns a packet longer than its buffer only from a
//     LargeReader (the UDP socket), which keeps it whole in a buffer of its
//     own: sizes[i] then exceeds len(bufs[i])-offset and Large(i) holds the
//     packet. Those are a local sender's segmentation offload, passed on
//     unsplit by a veth; package gso splits them. Devices with a virtio
//     header (a TAP with offloads, the AF_PACKET socket) cut such frames
//     themselves in Read, by the segment size the header gives; as a
//     GSODevice they also hand them on whole (ReadGSO, at most one per
//     call, in SuperFrame()) and take them whole (WriteGSO), GSO saying
//     what each frame is, so that a router can move a 64 KB super-frame
//     with one read and one write.
//
// Sub-packages hold the implementations (tap, afpacket, udp), the splitting
// of offloaded TCP super-segments (gso) and in-memory
// fakes for tests (linktest).
package link
