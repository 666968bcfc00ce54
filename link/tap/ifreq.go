package tap

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// ifreqIoctl runs an SIOC* ioctl about the interface in ifr on a throwaway
// socket of the calling thread's network namespace.
func ifreqIoctl(req uint, ifr *unix.Ifreq) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(s)
	return unix.IoctlIfreq(s, req, ifr)
}

func setMTU(name string, mtu int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	return ifreqIoctl(unix.SIOCSIFMTU, ifr)
}

// setTxQueueLen sets the device's txqueuelen; for TUN/TAP the driver resizes
// the ring of frames waiting for Read to match.
func setTxQueueLen(name string, n int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(n))
	return ifreqIoctl(unix.SIOCSIFTXQLEN, ifr)
}

func getMTU(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := ifreqIoctl(unix.SIOCGIFMTU, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// checkExists reports an error unless an interface called name exists in the
// calling thread's network namespace.
func checkExists(name string) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := ifreqIoctl(unix.SIOCGIFINDEX, ifr); err != nil {
		if err == unix.ENODEV {
			return fmt.Errorf("no such device in this network namespace")
		}
		return err
	}
	return nil
}
