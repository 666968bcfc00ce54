package tap

import "golang.org/x/sys/unix"

// Offloads are the TUNSETOFFLOAD flags a device accepted: what the kernel
// on the other side of the TAP may hand it.
type Offloads uint32

const (
	// OffloadChecksum (TUN_F_CSUM): frames may carry a partial TCP or UDP
	// checksum, completed by Read.
	OffloadChecksum Offloads = unix.TUN_F_CSUM
	// OffloadTSO4 (TUN_F_TSO4): TCP over IPv4 may arrive as super-frames
	// of up to 64 KB, cut by Read into segments.
	OffloadTSO4 Offloads = unix.TUN_F_TSO4
	// OffloadUSO (TUN_F_USO4|TUN_F_USO6, Linux 6.2; the kernel takes both
	// or neither): a sender's UDP_SEGMENT (QUIC stacks use it) may arrive
	// as one super-datagram, cut by Read into the sender's datagrams.
	// IPv6 ones are dropped, as all IPv6 is.
	OffloadUSO Offloads = unix.TUN_F_USO4 | unix.TUN_F_USO6
)

func (o Offloads) String() string {
	switch o {
	case 0:
		return "none"
	case OffloadChecksum:
		return "csum"
	case OffloadChecksum | OffloadTSO4:
		return "csum,tso4"
	case OffloadChecksum | OffloadTSO4 | OffloadUSO:
		return "csum,tso4,uso"
	}
	return "unknown"
}

// setOffloads asks the kernel for the offloads in want, dropping USO, then
// TSO, then checksum offload when it refuses (EINVAL on a kernel or device
// that lacks them), and returns what it accepted.
func setOffloads(fd int, want Offloads) (Offloads, error) {
	var err error
	for _, o := range []Offloads{want, want &^ OffloadUSO, want &^ (OffloadUSO | OffloadTSO4), 0} {
		if o&^want != 0 {
			continue
		}
		if err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(o)); err == nil {
			return o, nil
		}
	}
	return 0, err
}
