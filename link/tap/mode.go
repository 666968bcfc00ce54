package tap

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Mode selects the kind of device.
type Mode uint8

const (
	// TAP devices carry Ethernet frames.
	TAP Mode = iota + 1
	// TUN devices carry IP packets.
	TUN
)

func (m Mode) String() string {
	switch m {
	case TAP:
		return "tap"
	case TUN:
		return "tun"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// flags returns the TUNSETIFF flags for m.
//
// IFF_NO_PI drops the 4-byte packet-information header, so that a read
// returns exactly one frame or packet.
//
// IFF_VNET_HDR (a virtio_net_hdr in front of every packet, which enables TSO
// and checksum offload) is added by Create and Attach for Options.Offload
// (see vnet.go). IFF_MULTI_QUEUE (one fd per queue) is not used yet.
func (m Mode) flags() (uint16, error) {
	switch m {
	case TAP:
		return unix.IFF_TAP | unix.IFF_NO_PI, nil
	case TUN:
		return unix.IFF_TUN | unix.IFF_NO_PI, nil
	}
	return 0, fmt.Errorf("invalid tap mode %d: want tap.TAP or tap.TUN", uint8(m))
}
