package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
	"github.com/taprouter/taprouter/link/internal/vnet"
)

const (
	batchSize = 64
	// socketBuffer is the socket's send and receive buffer (the kernel
	// doubles it): super-frames cross the underlay whole, and at 8 Gbit/s
	// 4 MiB was 8 ms of traffic, which a daemon preempted on a busy node
	// overran (tunnel_rx_queue_drops in the hundreds per 4 s of -P 4, and
	// as many TCP retransmits); 16 MiB took them to 0.
	socketBuffer = 16 << 20
)

// Socket is an AF_PACKET socket bound to one Ethernet interface. It
// implements link.Device: Read returns frames received on the interface and
// Write transmits frames on it. Reads are serialised with each other, and so
// are writes.
type Socket struct {
	conn   *fdio.OneShotConn
	name   string
	hwAddr link.HardwareAddr
	mtu    int
	closed atomic.Bool

	recv   receiver
	send   sender
	reader *vnet.Reader
	writer *vnet.Coalescer

	statsMu    sync.Mutex
	queueDrops uint64 // tp_drops read so far
}

var (
	_ link.Device         = (*Socket)(nil)
	_ link.MetaReader     = (*Socket)(nil)
	_ link.GSODevice      = (*Socket)(nil)
	_ link.OffloadCounter = (*Socket)(nil)
)

// Open opens a packet socket on the Ethernet interface ifname in the calling
// thread's network namespace that receives every frame.
func Open(ifname string) (*Socket, error) { return OpenFiltered(ifname, nil) }

// OpenFiltered is Open with a classic BPF program (SO_ATTACH_FILTER) that
// chooses the frames the socket receives: the kernel runs it on each frame,
// at the Ethernet header, and queues the frame only if it returns non-zero.
// It is attached before the socket is bound, so no frame it would refuse
// is ever queued. A nil filter receives every frame.
func OpenFiltered(ifname string, filter []bpf.Instruction) (*Socket, error) {
	return open(ifname, filter, true)
}

// open is OpenFiltered; batched false receives and sends one frame per
// system call (recvmsg, writev), as before recvmmsg and sendmmsg: tests
// and benchmarks compare the two.
func open(ifname string, filter []bpf.Instruction, batched bool) (*Socket, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("afpacket open %s: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != len(link.HardwareAddr{}) {
		return nil, fmt.Errorf("afpacket open %s: not an Ethernet interface (hardware address %q)", ifname, ifi.HardwareAddr)
	}
	var prog []unix.SockFilter
	if filter != nil {
		raw, err := bpf.Assemble(filter)
		if err != nil {
			return nil, fmt.Errorf("afpacket open %s: filter: %w", ifname, err)
		}
		prog = make([]unix.SockFilter, len(raw))
		for i, r := range raw {
			prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
	}
	// Protocol 0 receives nothing, so no frame from another interface can
	// be queued before bind narrows the socket to ifname.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("afpacket open %s: socket: %w", ifname, err)
	}
	if err := setup(fd, ifi.Index, prog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("afpacket open %s: %w", ifname, err)
	}
	conn, err := fdio.NewOneShotConn(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("afpacket open %s: %w", ifname, err)
	}
	s := &Socket{conn: conn, name: ifname, mtu: ifi.MTU}
	if batched {
		s.reader = vnet.NewBatchReader(conn, ifi.MTU, batchSize, s.recv.recvBatch)
		s.writer = vnet.NewBatchCoalescer(conn, fdio.SkipRejected, batchSize, s.send.send)
	} else {
		s.reader = vnet.NewReader(conn, ifi.MTU, s.recv.recv)
		s.writer = vnet.NewCoalescer(conn, fdio.SkipRejected)
	}
	copy(s.hwAddr[:], ifi.HardwareAddr)
	return s, nil
}

func setup(fd, ifindex int, filter []unix.SockFilter) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fmt.Errorf("set PACKET_IGNORE_OUTGOING (needs Linux 4.20): %w", err)
	}
	// PACKET_AUXDATA tells ReadMeta about VLAN tags, which the kernel
	// moves out of the frame.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("set PACKET_AUXDATA: %w", err)
	}
	// PACKET_VNET_HDR puts a virtio_net_hdr in front of every frame both
	// ways: super-frames (GSO) and partial checksums cross whole.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fmt.Errorf("set PACKET_VNET_HDR: %w", err)
	}
	for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		// The FORCE variants need CAP_NET_ADMIN; without it, take what
		// the rmem_max and wmem_max sysctls allow.
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[0], socketBuffer) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt[1], socketBuffer); err != nil {
				return fmt.Errorf("set socket buffer: %w", err)
			}
		}
	}
	if len(filter) > 0 {
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("attach filter: %w", err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	return nil
}

// htons converts v to network byte order, as sll_protocol wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// HWAddr returns the interface's MAC address.
func (s *Socket) HWAddr() link.HardwareAddr { return s.hwAddr }

// MTU returns the interface's MTU when the socket was opened.
func (s *Socket) MTU() int { return s.mtu }

// Name returns the interface's name.
func (s *Socket) Name() string { return s.name }

// BatchSize returns the batch size Read and Write are tuned for.
func (s *Socket) BatchSize() int { return batchSize }

// Dropped returns how many received frames were dropped because their
// virtio header could not be honoured: a GSO frame that is not TCP over
// IPv4 or is malformed, one the kernel could not describe (a GSO type
// virtio has no name for), one too small a buffer would have cut.
func (s *Socket) Dropped() uint64 { return s.reader.Stats().Dropped }

// OffloadStats returns what the socket did with super-frames and partial
// checksums, both ways (link.OffloadCounter).
func (s *Socket) OffloadStats() link.OffloadStats {
	st := s.reader.Stats()
	st.Coalesced, st.CoalescedFrames, st.CoalesceRefused = s.writer.Coalesced()
	st.WrittenWhole, st.WriteCut = s.writer.Whole()
	return st
}

// QueueDrops returns how many frames the kernel dropped because the
// socket's receive queue was full (PACKET_STATISTICS' tp_drops, summed:
// the kernel resets it on every read): the daemon did not read fast
// enough, or a burst outgrew the 16 MiB buffer.
func (s *Socket) QueueDrops() uint64 {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	var st *unix.TpacketStats
	var err error
	if s.conn.Control(func(fd uintptr) {
		st, err = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}) == nil && err == nil {
		s.queueDrops += uint64(st.Drops)
	}
	return s.queueDrops
}

// Close closes the socket; a blocked Read returns link.ErrClosed.
func (s *Socket) Close() error {
	s.closed.Store(true)
	if err := s.conn.Close(); err != nil {
		return s.ioError("close", err)
	}
	return nil
}

// ioError maps err to link.ErrClosed after Close (the OneShotConn reports
// os.ErrClosed) and describes it otherwise.
func (s *Socket) ioError(op string, err error) error {
	if s.closed.Load() || errors.Is(err, os.ErrClosed) {
		return link.ErrClosed
	}
	return fmt.Errorf("afpacket %s: %s: %w", s.name, op, err)
}
