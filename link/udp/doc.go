// Package udp owns the underlay UDP socket that the vxlan and udp
// encapsulations send and receive through, as a link.DatagramConn that moves
// up to BatchSize datagrams per system call (recvmmsg/sendmmsg).
//
// The socket is non-blocking and reaches Go's netpoller only through a
// one-shot epoll registration armed while a ReadFrom or WriteTo waits
// (fdio.OneShotConn: no wake-up per datagram received or sent while the
// daemon is busy). The mmsghdr, iovec and sockaddr arrays of a batch are
// built once and reused, so ReadFrom and WriteTo do not allocate in steady
// state. ReadFrom has one batch behind a mutex; concurrent WriteTo callers
// each take a batch from fixed slots (two per CPU, made at first use), not a
// sync.Pool, which would empty in two garbage collections and make the next
// WriteTo allocate its 26 KB batch again (TestWriteToAllocsAcrossGC); with a
// pool of senders that would be every sender's.
//
// A SendOnly Conn only sends: ListenSenders opens a pool of them on
// ephemeral ports, which the vxlan and udp backends spread flows over so
// that the outer UDP source port follows the inner flow (see package
// tunnel). It has no receive batch (no overflow slots), and a classic BPF
// socket filter that accepts nothing, attached before bind, drops every
// datagram sent to its port (counted in the socket's drops) instead of
// queueing it where no one reads; ReadFrom returns ErrSendOnly.
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
// touched only by such datagrams and by GRO messages, see below), and
// ReadFrom returns the datagram whole through Large (link.LargeReader). A kernel vxlan device over a veth sends
// these: its TCP segmentation offload (tx-udp_tnl-segmentation) reaches the
// socket as one 64 KB datagram, which the kernel does not segment for a
// socket without an encapsulation handler. Normal datagrams land in the
// caller's buffer as before. No UDP datagram (jumbograms aside) exceeds a
// slot, so Dropped now stays 0 in practice.
//
// WriteTo sends with UDP GSO (generic segmentation offload, the
// UDP_SEGMENT cmsg, Linux 4.18) unless Listen was given WithGSO(false): a
// run of consecutive datagrams of one WriteTo to the same address, all of
// the first one's length but the last, which may be shorter, goes to the
// kernel as one sendmmsg message with one iovec per datagram (pointing at
// the caller's buffer, nothing is copied) and a UDP_SEGMENT cmsg with that
// length, and the kernel cuts it into the datagrams again, on the wire or,
// on loopback and a veth, at the receiving socket. A run holds at most 64
// datagrams (UDP_MAX_SEGMENTS of older kernels) and 65507 bytes (one IPv4
// packet); a datagram that starts no run, or an empty one, is a message of
// its own as without GSO. WriteTo still counts datagrams, not messages;
// WriteStats counts the messages.
//
// Listen turns GSO on only if getsockopt(UDP_SEGMENT) works: a kernel
// without it would ignore the cmsg and send each run as one long datagram.
// If the kernel refuses a GSO message (EIO: the route's device cannot
// offload the checksum, on older kernels, where recent ones such as 6.18
// checksum in software; EINVAL: a segment size or count it does not take,
// a socket without UDP checksums, and on older kernels also a segment too
// long for the MTU; ENOPROTOOPT or EOPNOTSUPP), WriteTo turns GSO off for the Conn for good (GSO reports it, WriteStats counts
// the refusal) and sends that run and the later runs of the batch datagram
// by datagram, so that nothing is lost. The kernel does not segment into
// IP fragments: a run of datagrams too long for the route's MTU, which it
// would fragment one by one, fails with EMSGSIZE; WriteTo sends those
// datagrams one by one and builds no runs of that length or longer again,
// keeping GSO for shorter ones. Any other error fails the message, all of
// its datagrams, and the batch goes on, as for a single datagram.
//
// ReadFrom receives with UDP GRO (generic receive offload, setsockopt
// UDP_GRO, Linux 5.0) unless Listen was given WithGRO(false) or the kernel
// refuses the option (then it reads as before). The kernel may then hand
// several datagrams of one sender, all of one length but the last, which
// may be shorter, as one message with a UDP_GRO cmsg giving that length
// (the segment size): a GSO message of a local sender over loopback or a
// veth reaches the socket unsegmented, and a device's GRO may coalesce
// datagrams from the wire. Each receive message has a control buffer of
// its own for the cmsg (the kernel's Controllen is reset before every
// recvmmsg). ReadFrom keeps its contract: it cuts a GRO message at the
// segment size and returns the datagrams one per buffer, in order, each
// with the message's source. A message lands as without GRO, in the
// caller's buffer and then its overflow slot; the first datagram stays
// where it landed, the others are copied into the following buffers, and
// a later message of the same recvmmsg whose buffer is written over is
// first moved into its own overflow slot. Datagrams that do not fit the
// caller's buffers stay pending in the overflow slots, and the next
// ReadFrom hands out those (only those, as many as its buffers take)
// before it reads the socket again. A message longer than the caller's
// buffer without the cmsg is a datagram, kept whole through Large as
// before; so is a datagram of a GRO message longer than its buffer. A
// message whose control data the kernel cut (MSG_CTRUNC) without the cmsg
// is dropped, since it could be a GRO message, and counted
// (ReadStats.CtrlTruncated; the buffer has room for more than the one
// cmsg, so it does not happen). ReadStats counts the messages, the GRO
// ones and their datagrams. Kernel vxlan super-packets (SKB_GSO_UDP_TUNNEL)
// carry no UDP_GRO cmsg and still come through Large.
package udp
