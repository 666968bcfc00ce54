package udp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// BatchSize is the largest number of datagrams one recvmmsg or sendmmsg call
// moves.
const BatchSize = 64

// socketBuffer is the receive and send buffer size Listen asks for.
const socketBuffer = 4 << 20

// Conn is a UDP socket that moves datagrams in batches. It implements
// link.DatagramConn. ReadFrom calls are serialised; WriteTo may be called
// from many goroutines at once.
type Conn struct {
	conn   *fdio.OneShotConn
	family int
	local  netip.AddrPort
	closed atomic.Bool

	readMu  sync.Mutex
	read    *batch
	dropped atomic.Uint64
	rstats  struct {
		messages, groMessages, groDatagrams, ctruncated atomic.Uint64
	}

	writers []writeSlot // a send batch per concurrent WriteTo, made at first use

	gso    atomic.Bool   // WriteTo builds GSO messages
	gsoMax atomic.Uint32 // of segments up to this size
	stats  struct {
		messages, gsoMessages, gsoDatagrams, gsoRefused, gsoOversize atomic.Uint64
	}
}

// Option configures a Conn at Listen.
type Option func(*options)

type options struct {
	gso, gro, sendOnly bool
}

// WithGSO turns UDP generic segmentation offload on send on or off. It is
// on by default where the kernel has it (UDP_SEGMENT, Linux 4.18): WriteTo
// then hands a run of datagrams to one peer to the kernel as one message,
// which the kernel segments (see the package doc). Off, every datagram is
// a message of its own.
func WithGSO(on bool) Option {
	return func(o *options) { o.gso = on }
}

// WithGRO turns UDP generic receive offload on or off. It is on by default
// where the kernel has it (setsockopt UDP_GRO works, Linux 5.0): the kernel
// may then hand several datagrams of one sender, of one length but the
// last, as one message (from a sender's UDP GSO on loopback or a veth, or
// coalesced by a device's GRO), which ReadFrom cuts into the datagrams
// again (see the package doc). Off, every datagram is a message of its
// own.
func WithGRO(on bool) Option {
	return func(o *options) { o.gro = on }
}

// SendOnly makes a Conn that only sends: a socket of the pool of senders
// that spreads flows over source ports (see the package doc). It has no
// receive batch (none of the overflow slots' 4 MB), its socket drops every
// datagram it receives (a socket filter that accepts nothing, so nothing
// queues in a buffer no one reads) and ReadFrom fails with
// ErrSendOnly.
func SendOnly() Option {
	return func(o *options) { o.sendOnly = true }
}

// ErrSendOnly is what ReadFrom returns on a SendOnly Conn.
var ErrSendOnly = errors.New("udp: ReadFrom on a send-only socket")

// ReadStats counts what ReadFrom received from the kernel since Listen.
type ReadStats struct {
	Messages     uint64 // messages recvmmsg returned: one per datagram received alone, one per GRO message
	GROMessages  uint64 // of those, GRO messages (two datagrams or more, a UDP_GRO cmsg)
	GRODatagrams uint64 // datagrams in the GRO messages
	// CtrlTruncated: messages dropped because their control data was cut
	// (MSG_CTRUNC) and held no UDP_GRO cmsg, so that they could be GRO
	// messages, which must not pass as one datagram. The control buffer
	// has room for more than this package asks for, so it stays 0.
	CtrlTruncated uint64
}

// WriteStats counts what WriteTo handed the kernel since Listen.
type WriteStats struct {
	Messages     uint64 // messages the kernel took: one per datagram sent alone, one per GSO message
	GSOMessages  uint64 // of those, GSO messages (two datagrams or more, a UDP_SEGMENT cmsg)
	GSODatagrams uint64 // datagrams in the GSO messages
	GSORefused   uint64 // GSO messages the kernel refused, turning GSO off; their datagrams were sent one by one
	GSOOversize  uint64 // GSO messages too long for the route's MTU (EMSGSIZE); sent one by one, no GSO for that segment size and longer since
}

var (
	_ link.DatagramConn = (*Conn)(nil)
	_ link.LargeReader  = (*Conn)(nil)
)

// Listen opens a UDP socket bound to addr in the calling thread's network
// namespace. Port 0 picks a free port; LocalAddr reports it. An IPv4 address
// gives an IPv4 socket, anything else an IPv6 one. By default it sends with
// UDP GSO (WithGSO) and receives with UDP GRO (WithGRO) if the kernel has
// them.
func Listen(addr netip.AddrPort, opts ...Option) (*Conn, error) {
	o := options{gso: true, gro: true}
	for _, opt := range opts {
		opt(&o)
	}
	if !addr.IsValid() {
		return nil, fmt.Errorf("udp listen: invalid address %v", addr)
	}
	family := unix.AF_INET6
	if addr.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udp listen %v: socket: %w", addr, err)
	}
	if o.sendOnly {
		// Before bind, so that no datagram queues before the filter.
		if err := dropAll(fd); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("udp listen %v: %w", addr, err)
		}
	}
	local, err := bind(fd, family, addr)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("udp listen %v: %w", addr, err)
	}
	conn, err := fdio.NewOneShotConn(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("udp listen %v: %w", addr, err)
	}
	c := &Conn{conn: conn, family: family, local: local}
	if !o.sendOnly {
		gro := o.gro && unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		c.read = newRecvBatch(gro)
	}
	c.writers = make([]writeSlot, 2*runtime.GOMAXPROCS(0))
	c.gso.Store(o.gso && hasGSO(fd))
	c.gsoMax.Store(maxGSOPayload)
	return c, nil
}

// hasGSO reports whether the kernel knows UDP_SEGMENT on fd. A kernel
// without it (before 4.18) would not refuse the cmsg but ignore it and send
// a run as one long datagram, so GSO must not be tried there.
func hasGSO(fd int) bool {
	_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	return err == nil
}

// dropAll attaches a classic BPF socket filter to fd that accepts nothing
// ("ret #0"): the kernel drops every datagram for fd before it queues.
func dropAll(fd int) error {
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		return fmt.Errorf("attach drop-all filter: %w", err)
	}
	return nil
}

// ListenSenders opens n SendOnly Conns bound to addr, each on a port of its
// own that the kernel picks from its local port range
// (net.ipv4.ip_local_port_range, where Linux vxlan takes its source ports
// too). opts apply to each. On failure it closes those it opened.
func ListenSenders(addr netip.Addr, n int, opts ...Option) ([]*Conn, error) {
	conns := make([]*Conn, 0, n)
	opts = append(opts[:len(opts):len(opts)], SendOnly())
	for range n {
		c, err := Listen(netip.AddrPortFrom(addr, 0), opts...)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// bind sizes the socket buffers, binds fd to addr and returns the bound
// address.
func bind(fd, family int, addr netip.AddrPort) (netip.AddrPort, error) {
	for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		// The FORCE variants need CAP_NET_ADMIN and ignore rmem_max and
		// wmem_max; without it, take what the sysctls allow.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], socketBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], socketBuffer); err != nil {
				return netip.AddrPort{}, fmt.Errorf("set socket buffer: %w", err)
			}
		}
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return netip.AddrPort{}, fmt.Errorf("bind: %w", err)
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", err)
	}
	switch sa := bound.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getsockname: unexpected address %T", bound)
}

// ReadFrom reads up to min(len(bufs), BatchSize) datagrams: datagram i into
// bufs[i][offset:], its length into sizes[i] and its source into from[i],
// in the order they arrived. It blocks until at least one datagram has
// arrived. A datagram longer than its buffer but at most link.MaxLarge
// bytes is kept whole: sizes[i] exceeds the buffer and Large(i) holds it
// (link.LargeReader). A longer one is dropped and counted in Dropped.
//
// With GRO, a message of several datagrams is cut into them; those that
// do not fit this call's buffers are pending, kept in the Conn, and the
// next ReadFrom returns them (and only them, up to its buffers) without
// reading the socket (after Close, they are dropped: ReadFrom returns
// link.ErrClosed). An empty bufs returns 0 at once.
func (c *Conn) ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error) {
	if len(bufs) > BatchSize {
		bufs = bufs[:BatchSize]
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if c.read == nil {
		return 0, ErrSendOnly
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	b := c.read
	if b.pending() {
		if c.closed.Load() {
			return 0, link.ErrClosed
		}
		if n := b.splitRecv(bufs, sizes, from, offset); n > 0 {
			return n, nil
		}
		// Only dropped messages (truncated) were left: read the socket,
		// as ReadFrom blocks until it has a datagram (found in review).
	}
	defer b.release()
	for {
		b.prepareRecv(bufs, offset)
		if err := c.conn.Read(b.fn); err != nil {
			return 0, c.ioError("read", err)
		}
		if b.err != nil {
			return 0, c.ioError("read", b.err)
		}
		b.parse(bufs, offset)
		n := b.splitRecv(bufs, sizes, from, offset)
		c.countRead(b)
		if n > 0 {
			return n, nil
		}
	}
}

// countRead adds what parse counted in b to the Conn's counters.
func (c *Conn) countRead(b *batch) {
	c.rstats.messages.Add(uint64(b.rMsgs))
	if b.groMsgs > 0 {
		c.rstats.groMessages.Add(uint64(b.groMsgs))
		c.rstats.groDatagrams.Add(uint64(b.groDgrams))
	}
	if b.truncated > 0 {
		c.dropped.Add(uint64(b.truncated))
	}
	if b.ctruncated > 0 {
		c.rstats.ctruncated.Add(uint64(b.ctruncated))
	}
	b.rMsgs, b.groMsgs, b.groDgrams, b.truncated, b.ctruncated = 0, 0, 0, 0, 0
}

// WriteTo sends bufs[i][offset:] to to[i] for every i. It tries every
// datagram even when some fail (an unreachable peer must not hold up the
// others) and returns how many datagrams were sent and the first error.
//
// With GSO on, a run of consecutive datagrams to one address of one length
// (the last may be shorter) goes to the kernel as one message, which fails
// or succeeds as a whole. If the kernel refuses GSO for it, WriteTo turns
// GSO off for the Conn (GSO reports false from then on) and sends the
// run's datagrams one by one, so none is lost. If the run's datagrams are
// too long for the route's MTU (EMSGSIZE, where the kernel would fragment
// them), WriteTo sends them one by one and builds no runs of that length
// or longer again.
func (c *Conn) WriteTo(bufs [][]byte, to []netip.AddrPort, offset int) (int, error) {
	b, slot := c.takeWriter()
	defer slot.free()
	sent := 0
	var firstErr error
	for start := 0; start < len(bufs); start += BatchSize {
		end := min(start+BatchSize, len(bufs))
		maxSeg := 0
		if c.gso.Load() {
			maxSeg = int(c.gsoMax.Load())
		}
		b.prepareSend(bufs[start:end], to[start:end], offset, c.family, maxSeg)
		err := c.conn.Write(b.fn)
		b.release()
		sent += b.sent
		c.count(b)
		if err != nil {
			return sent, c.ioError("write", err)
		}
		if b.err != nil && firstErr == nil {
			firstErr = c.ioError("write", b.err)
		}
	}
	return sent, firstErr
}

// writeSlot holds a send batch and whether a WriteTo has it. Unlike a
// sync.Pool, which empties in two garbage collections (and under the race
// detector drops items at random), the slots keep their batches: a WriteTo
// allocates only when it makes a slot's batch, or when more callers write
// at once than there are slots (two per CPU: the router's goroutines, at
// most GOMAXPROCS running at a time, and some preempted while writing).
type writeSlot struct {
	taken atomic.Bool
	b     *batch // written only by the holder of taken
}

// takeWriter returns a free slot's batch and the slot, or a batch of its
// own and nil if every slot is taken.
func (c *Conn) takeWriter() (*batch, *writeSlot) {
	for i := range c.writers {
		s := &c.writers[i]
		if !s.taken.Load() && s.taken.CompareAndSwap(false, true) {
			if s.b == nil {
				s.b = newSendBatch()
			}
			return s.b, s
		}
	}
	return newSendBatch(), nil
}

// free gives the slot back (nil: a batch of its own, garbage now).
func (s *writeSlot) free() {
	if s != nil {
		s.taken.Store(false)
	}
}

// count adds what the kernel took of b to the Conn's WriteStats, turns GSO
// off if the kernel refused it and lowers the longest segment size if the
// kernel found one too long.
func (c *Conn) count(b *batch) {
	c.stats.messages.Add(uint64(b.msgsSent))
	if b.gsoSent > 0 {
		c.stats.gsoMessages.Add(uint64(b.gsoSent))
		c.stats.gsoDatagrams.Add(uint64(b.gsoDgrams))
	}
	if b.refused > 0 {
		c.gso.Store(false)
		c.stats.gsoRefused.Add(uint64(b.refused))
	}
	if b.oversize > 0 {
		c.stats.gsoOversize.Add(uint64(b.oversize))
		for {
			old := c.gsoMax.Load()
			if uint32(b.ceiling) >= old || c.gsoMax.CompareAndSwap(old, uint32(b.ceiling)) {
				break
			}
		}
	}
}

// GSO reports whether WriteTo sends with UDP GSO: asked for (WithGSO), the
// kernel has UDP_SEGMENT, and it has not refused a GSO message on this
// Conn.
func (c *Conn) GSO() bool { return c.gso.Load() }

// GRO reports whether ReadFrom receives with UDP GRO: asked for (WithGRO),
// the kernel took setsockopt UDP_GRO, and c is not SendOnly.
func (c *Conn) GRO() bool { return c.read != nil && c.read.gro }

// ReadStats returns what ReadFrom received since Listen.
func (c *Conn) ReadStats() ReadStats {
	return ReadStats{
		Messages:      c.rstats.messages.Load(),
		GROMessages:   c.rstats.groMessages.Load(),
		GRODatagrams:  c.rstats.groDatagrams.Load(),
		CtrlTruncated: c.rstats.ctruncated.Load(),
	}
}

// WriteStats returns what WriteTo handed the kernel since Listen.
func (c *Conn) WriteStats() WriteStats {
	return WriteStats{
		Messages:     c.stats.messages.Load(),
		GSOMessages:  c.stats.gsoMessages.Load(),
		GSODatagrams: c.stats.gsoDatagrams.Load(),
		GSORefused:   c.stats.gsoRefused.Load(),
		GSOOversize:  c.stats.gsoOversize.Load(),
	}
}

// Large implements link.LargeReader: datagram i of the last ReadFrom whole,
// if it was longer than its buffer, else nil. It is valid until the next
// ReadFrom; call it from the goroutine that read.
func (c *Conn) Large(i int) []byte {
	if i < 0 || i >= BatchSize || c.read == nil {
		return nil
	}
	return c.read.large[i]
}

// LocalAddr returns the address the socket is bound to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// BatchSize returns BatchSize.
func (c *Conn) BatchSize() int { return BatchSize }

// Dropped returns how many received datagrams were dropped because they did
// not fit their buffer and its overflow slot (longer than link.MaxLarge).
func (c *Conn) Dropped() uint64 { return c.dropped.Load() }

// Close closes the socket; a blocked ReadFrom returns link.ErrClosed.
func (c *Conn) Close() error {
	c.closed.Store(true)
	if err := c.conn.Close(); err != nil {
		return c.ioError("close", err)
	}
	return nil
}

// ioError maps err to link.ErrClosed after Close (the OneShotConn reports
// os.ErrClosed) and describes it otherwise.
func (c *Conn) ioError(op string, err error) error {
	if c.closed.Load() || errors.Is(err, os.ErrClosed) {
		return link.ErrClosed
	}
	return fmt.Errorf("udp %v: %s: %w", c.local, op, err)
}
