package podnet

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethFlagLRO is ETH_FLAG_LRO of linux/ethtool.h, the LRO bit of
// ETHTOOL_GFLAGS/SFLAGS; golang.org/x/sys/unix does not define it.
const ethFlagLRO = 1 << 15

// DisableGRO turns generic receive offload (GRO) and large receive offload
// (LRO) off on the interface ifname in the calling thread's namespace and
// reports whether either was on.
//
// The direct backend calls it for the underlay interface. With GRO or LRO
// on, the kernel merges consecutive TCP segments from the wire into frames
// of up to 64 KB before the AF_PACKET socket sees them. taprouter forwards
// packets as it receives them and does not re-segment, so such a frame does
// not fit its MTU-sized buffers: the socket drops it (drop_oversize) and
// cross-node TCP stalls. The node's own traffic on the interface loses
// GRO's CPU savings; nothing else changes.
//
// It uses the ethtool ioctl (SIOCETHTOOL with ETHTOOL_GGRO/SGRO and, for
// LRO, ETHTOOL_GFLAGS/SFLAGS) through golang.org/x/sys/unix, as
// "ethtool -K ifname gro off lro off" does. The setting lasts until someone
// changes it or the device goes away. Hardware GRO (rx-gro-hw), which only
// the ethtool features bitmap controls, is left alone.
func DisableGRO(ifname string) (changed bool, err error) {
	if ifname == "" || len(ifname) >= unix.IFNAMSIZ {
		return false, fmt.Errorf("disable GRO: invalid interface name %q", ifname)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("disable GRO on %s: socket for ethtool: %w", ifname, err)
	}
	defer unix.Close(fd)
	e := ethtool{fd: fd, ifname: ifname}

	gro, err := e.get(unix.ETHTOOL_GGRO)
	if err != nil {
		return false, fmt.Errorf("disable GRO on %s: read GRO: %w", ifname, err)
	}
	if gro != 0 {
		if err := e.set(unix.ETHTOOL_SGRO, 0); err != nil {
			return false, fmt.Errorf("disable GRO on %s: turn GRO off: %w", ifname, err)
		}
		changed = true
	}

	flags, err := e.get(unix.ETHTOOL_GFLAGS)
	if err != nil {
		return changed, fmt.Errorf("disable GRO on %s: read LRO: %w", ifname, err)
	}
	if flags&ethFlagLRO != 0 {
		if err := e.set(unix.ETHTOOL_SFLAGS, flags&^ethFlagLRO); err != nil {
			return changed, fmt.Errorf("disable GRO on %s: turn LRO off: %w", ifname, err)
		}
		changed = true
	}
	return changed, nil
}

// ethtool issues SIOCETHTOOL requests that carry a struct ethtool_value for
// one interface.
type ethtool struct {
	fd     int
	ifname string
}

// ethtoolValue is struct ethtool_value of linux/ethtool.h.
type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with ifr_data set: the layout SIOCETHTOOL reads.
// The pointer is a real pointer, not bytes of unix.Ifreq's union, so that
// the unsafe.Pointer rules keep what it points to alive.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(unsafe.Pointer(nil))]byte // rest of the union (24 bytes on 64-bit, less elsewhere)
}

func (e ethtool) get(cmd uint32) (uint32, error) {
	v := ethtoolValue{cmd: cmd}
	err := e.ioctl(&v)
	return v.data, err
}

func (e ethtool) set(cmd, data uint32) error {
	return e.ioctl(&ethtoolValue{cmd: cmd, data: data})
}

func (e ethtool) ioctl(v *ethtoolValue) error {
	ifr := ifreqData{data: unsafe.Pointer(v)}
	copy(ifr.name[:], e.ifname)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		if errno == unix.ENODEV {
			return fmt.Errorf("no interface %q in this network namespace: %w", e.ifname, errno)
		}
		return errno
	}
	return nil
}
