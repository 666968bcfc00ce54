package tap

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/fdio"
	"github.com/taprouter/taprouter/link/internal/vnet"
)

// batchSize is the batch Read and Write are sized for.
const batchSize = 64

// DefaultTxQueueLen is the transmit queue length Create gives a device
// unless Options.TxQueueLen says otherwise.
//
// A TUN/TAP device's txqueuelen is the size of the ring that holds what the
// kernel has sent on the device until Read takes it, and the tun driver
// drops (tx_dropped) whatever does not fit. It orphans every queued skb and
// never stops its queue, so neither TCP small queues nor the qdisc hold a
// sender back: a TCP flow in a pod grows its window until the ring
// overflows, and every overflow is a retransmit. With the kernel's defaults
// (1000 frames for a TAP, 500 for a TUN) a 3 s iperf3 flow through taprouter
// lost thousands of segments there. 4096 frames hold the whole window of a
// flow at the default tcp_wmem maximum (4 MiB, about 2900 segments), so
// such a flow is limited by its send buffer instead of losing packets. The
// cost is 32 KiB of ring per device and queueing delay while Read is behind.
const DefaultTxQueueLen = 4096

// Options are the settings Create applies to a new device.
type Options struct {
	// Persist keeps the device after its last file descriptor is closed
	// (TUNSETPERSIST), so that it outlives the process that created it.
	Persist bool
	// MTU, when non-zero, is set on the device; otherwise it keeps the
	// kernel's default of 1500.
	MTU int
	// TxQueueLen, when non-zero, is set as the device's txqueuelen: how many
	// frames the kernel queues for Read before it drops. Zero means
	// DefaultTxQueueLen.
	TxQueueLen int
	// Offload opens a TAP with IFF_VNET_HDR and asks for checksum offload,
	// TSO over IPv4 and USO (TUNSETOFFLOAD), taking what the kernel accepts
	// (Offloads says what). The kernel then hands Read 64 KB TCP
	// super-frames with partial checksums, one read(2) each instead of one
	// per segment; Read completes the checksums and cuts super-frames into
	// segments, so callers see what they would see without it. Not for TUN.
	Offload bool
}

// Device is an open TUN or TAP device. It implements link.Device.
//
// Reads are serialised with each other, and so are writes; one Read and one
// Write may run at the same time.
type Device struct {
	conn *fdio.OneShotConn
	fd   int
	name string
	mode Mode
	mtu  int

	// closed is set by Close before the fd is closed, so that the error a
	// woken Read or Write sees maps to link.ErrClosed (the OneShotConn
	// reports os.ErrClosed).
	closed atomic.Bool

	reader   frameReader
	writer   frameWriter
	vnet     *vnet.Reader    // with Options.Offload: reader
	gro      *vnet.Coalescer // with Options.Offload: writer
	offloads Offloads
}

type frameReader interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
}

type frameWriter interface {
	Write(bufs [][]byte, offset int) (int, error)
}

var (
	_ link.Device         = (*Device)(nil)
	_ link.GSODevice      = (*Device)(nil)
	_ link.OffloadCounter = (*Device)(nil)
)

// Create creates the device name in the calling thread's network namespace
// and opens it. It fails if a device of that name already exists; use Attach
// to open an existing persistent device. A name containing "%d" lets the
// kernel pick a free number; Name returns the result.
func Create(name string, mode Mode, opts Options) (*Device, error) {
	flags, err := mode.flags()
	if err != nil {
		return nil, err
	}
	txQueueLen := opts.TxQueueLen
	switch {
	case txQueueLen == 0:
		txQueueLen = DefaultTxQueueLen
	case txQueueLen < 0:
		return nil, fmt.Errorf("create %s %s: invalid TxQueueLen %d: want 0 (the default) or more", mode, name, txQueueLen)
	}
	if opts.Offload {
		if mode != TAP {
			return nil, fmt.Errorf("create %s %s: Offload is for TAP devices", mode, name)
		}
		flags |= unix.IFF_VNET_HDR
	}
	// IFF_TUN_EXCL makes TUNSETIFF fail with EBUSY instead of silently
	// attaching to an existing device.
	fd, name, err := open(name, flags|unix.IFF_TUN_EXCL)
	if err != nil {
		return nil, fmt.Errorf("create %s %s: %w", mode, name, err)
	}
	if opts.MTU != 0 {
		if err := setMTU(name, opts.MTU); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("create %s %s: set MTU %d: %w", mode, name, opts.MTU, err)
		}
	}
	if err := setTxQueueLen(name, txQueueLen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create %s %s: set txqueuelen %d: %w", mode, name, txQueueLen, err)
	}
	mtu, err := getMTU(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create %s %s: read MTU: %w", mode, name, err)
	}
	var offloads Offloads
	if opts.Offload {
		if offloads, err = offloadsFor(fd, true); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("create %s %s: %w", mode, name, err)
		}
	}
	// Persist last: until here, closing fd deletes the device again.
	if opts.Persist {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("create %s %s: set persist: %w", mode, name, err)
		}
	}
	return newDevice(fd, name, mode, mtu, opts.Offload, offloads)
}

// offloadsFor sets the offloads of a device opened with IFF_VNET_HDR if
// vnet, and says which the kernel took. A device opened without it gets
// none: TUNSETOFFLOAD's flags belong to the device, not to the fd, and a
// persistent TAP adopted without offloads must not keep a previous
// owner's (the kernel would hand super-frames to a reader that cannot
// tell them apart).
func offloadsFor(fd int, withVnet bool) (Offloads, error) {
	if !withVnet {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
			return 0, fmt.Errorf("clear offloads: %w", err)
		}
		return 0, nil
	}
	o, err := setOffloads(fd, OffloadChecksum|OffloadTSO4|OffloadUSO)
	if err != nil {
		return 0, fmt.Errorf("set offloads: %w", err)
	}
	return o, nil
}

// Attach opens the existing persistent device name in the calling thread's
// network namespace, for example after a restart of the process that created
// it. The device must have been created with the same mode and must not be
// open elsewhere. offload is Options.Offload: the device gets the flags and
// offloads this process asks for, whatever its creator set.
func Attach(name string, mode Mode, offload bool) (*Device, error) {
	flags, err := mode.flags()
	if err != nil {
		return nil, err
	}
	if offload {
		if mode != TAP {
			return nil, fmt.Errorf("attach %s %s: Offload is for TAP devices", mode, name)
		}
		flags |= unix.IFF_VNET_HDR
	}
	if err := checkExists(name); err != nil {
		return nil, fmt.Errorf("attach %s %s: %w", mode, name, err)
	}
	fd, name, err := open(name, flags)
	if err != nil {
		return nil, fmt.Errorf("attach %s %s: %w", mode, name, err)
	}
	// If the device vanished between checkExists and open, TUNSETIFF
	// created a fresh, non-persistent one; closing fd deletes it again.
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr)
	}
	if err == nil && ifr.Uint16()&unix.IFF_PERSIST == 0 {
		err = fmt.Errorf("device is not persistent")
	}
	var mtu int
	if err == nil {
		mtu, err = getMTU(name)
	}
	var offloads Offloads
	if err == nil && mode == TAP {
		offloads, err = offloadsFor(fd, offload)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach %s %s: %w", mode, name, err)
	}
	return newDevice(fd, name, mode, mtu, offload, offloads)
}

// open opens /dev/net/tun non-blocking and binds it to the device name with
// TUNSETIFF. It returns the fd and the device's name as the kernel set it.
func open(name string, flags uint16) (int, string, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return -1, name, fmt.Errorf("invalid device name %q: want 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return -1, name, err
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, name, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, name, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return fd, ifr.Name(), nil
}

func newDevice(fd int, name string, mode Mode, mtu int, withVnet bool, offloads Offloads) (*Device, error) {
	conn, err := fdio.NewOneShotConn(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %s: %w", mode, name, err)
	}
	d := &Device{conn: conn, fd: fd, name: name, mode: mode, mtu: mtu, offloads: offloads}
	if withVnet {
		d.vnet = vnet.NewReader(conn, mtu, vnet.Readv)
		d.reader = d.vnet
		d.gro = vnet.NewCoalescer(conn, fdio.StopAtReject)
		d.writer = d.gro
	} else {
		d.reader = fdio.NewReader(conn, readFrame)
		d.writer = fdio.NewWriter(conn, fdio.StopAtReject)
	}
	return d, nil
}

// Offloads returns the offloads the kernel accepted for d: none without
// Options.Offload.
func (d *Device) Offloads() Offloads { return d.offloads }

// OffloadStats returns what Read did with offloaded frames; zero without
// Options.Offload.
func (d *Device) OffloadStats() link.OffloadStats {
	if d.vnet == nil {
		return link.OffloadStats{}
	}
	s := d.vnet.Stats()
	s.Coalesced, s.CoalescedFrames, s.CoalesceRefused = d.gro.Coalesced()
	s.WrittenWhole, s.WriteCut = d.gro.Whole()
	return s
}

// SetPersist sets or clears the device's persist flag (TUNSETPERSIST). A
// device that is not persistent is deleted when it is closed.
func (d *Device) SetPersist(persist bool) error {
	v := 0
	if persist {
		v = 1
	}
	var err error
	if cerr := d.conn.Control(func(fd uintptr) {
		err = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, v)
	}); cerr != nil {
		return d.ioError("set persist", cerr)
	}
	if err != nil {
		return fmt.Errorf("%s %s: set persist: %w", d.mode, d.name, err)
	}
	return nil
}

// Fd returns the device's file descriptor, for ioctls this package does not
// wrap. It stays owned by d: do not close it or make it blocking.
func (d *Device) Fd() int { return d.fd }

// Name returns the name the device had when it was created or attached. It
// does not follow renames: podnet renames every pod's TAP to eth0 inside the
// pod, and the creation name is the one that tells them apart in logs.
func (d *Device) Name() string { return d.name }

// Mode returns whether d is a TAP or a TUN device.
func (d *Device) Mode() Mode { return d.mode }

// MTU returns the MTU the device had when it was created or attached.
func (d *Device) MTU() int { return d.mtu }

// BatchSize returns the batch size Read and Write are tuned for.
func (d *Device) BatchSize() int { return batchSize }

// Close closes the device. A Read or Write blocked on it returns
// link.ErrClosed. A device that is not persistent is deleted.
func (d *Device) Close() error {
	d.closed.Store(true)
	if err := d.conn.Close(); err != nil {
		return d.ioError("close", err)
	}
	return nil
}
