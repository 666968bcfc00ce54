// Package udp owns the underlay UDP socket that the vxlan and udp
// encapsulations send and receive through, as a link.DatagramConn that moves
// up to BatchSize datagrams per system call (recvmmsg/sendmmsg).
//
// The socket is non-blocking and registered with Go's netpoller through
// os.NewFile and syscall.RawConn. The mmsghdr, iovec and sockaddr arrays of
// a batch are built once and reused, so ReadFrom and WriteTo do not allocate
// in steady state. ReadFrom has one batch behind a mutex; concurrent WriteTo
// callers take their own batch from a sync.Pool.
//
// It calls recvmmsg and sendmmsg through golang.org/x/sys/unix rather than
// golang.org/x/net/ipv4's ReadBatch/WriteBatch because the latter allocate:
// measured here, a WriteBatch+ReadBatch round of 64 datagrams costs 128
// allocations (two per datagram: the net.UDPAddr of each received message
// and its IP), against 0 for this package.
//
// A datagram longer than the caller's buffer is not dropped: each message
// of the receive batch has a second iovec into an overflow slot of its own
// (link.MaxLarge bytes, BatchSize slots, 4 MB allocated once per socket,
// touched only by such datagrams), and ReadFrom returns the datagram whole
// through Large (link.LargeReader). A kernel vxlan device over a veth sends
// these: its TCP segmentation offload (tx-udp_tnl-segmentation) reaches the
// socket as one 64 KB datagram, which the kernel does not segment for a
// socket without an encapsulation handler. Normal datagrams land in the
// caller's buffer as before. No UDP datagram (jumbograms aside) exceeds a
// slot, so Dropped now stays 0 in practice.
//
// UDP GSO and GRO are not used yet; batch is where they would go (see its
// comment).
package udp
