package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/taprouter/taprouter/link"
)

// VXLAN defaults: flannel's VNI and port. The IANA port is 4789.
const (
	DefaultVXLANVNI  = 1
	DefaultVXLANPort = 8472
)

const (
	vxlanHeaderLen = 8
	vxlanHeadroom  = vxlanHeaderLen + ethHeaderLen // 22
	vxlanFlagI     = 0x08                          // "VNI is valid", RFC 7348 section 5
	vxlanMaxVNI    = 1<<24 - 1
)

// VXLANConfig configures the vxlan backend.
type VXLANConfig struct {
	// VNI is the VXLAN network identifier; 0 means DefaultVXLANVNI.
	VNI uint32
	// Port is the peers' UDP port; 0 means DefaultVXLANPort. The local
	// socket's port is whatever the DatagramConn is bound to.
	Port uint16
	// LocalMAC is this node's VTEP MAC: the source MAC of inner frames and
	// the only unicast inner destination accepted. Usually VTEPMAC(node IP).
	LocalMAC link.HardwareAddr
	// MTU is the inner MTU (the pod MTU): Recv splits a super-packet (a
	// kernel sender's segmentation offload) into segments of at most MTU
	// bytes. 0 means as large as Recv's buffers allow.
	MTU int
	// Senders, if not empty, are the sockets Send sends through, at most
	// MaxSenders: UDP sockets bound to this node's underlay address, each
	// on a port of its own (udp.ListenSenders), one chosen per packet by a
	// hash of its inner flow, so that the outer source port follows the
	// flow as with Linux vxlan (see the package doc). Empty: Send sends
	// through conn, from the VXLAN port. The backend owns them: Close
	// closes them.
	Senders []link.DatagramConn
}

// VXLAN is the RFC 7348 backend. Each inner IPv4 packet travels as
// outer IPv4 | UDP | VXLAN (I flag, VNI) | Ethernet (peer VTEP MAC, LocalMAC,
// 0x0800) | inner packet, which is what a Linux vxlan device (flannel.1)
// sends and expects. A peer with a zero VTEPMAC gets VTEPMAC(Addr).
type VXLAN struct {
	datagramBackend
}

var _ Tunnel = (*VXLAN)(nil)

// NewVXLAN returns a vxlan backend receiving through conn, a UDP socket
// bound to this node's underlay address and VXLAN port, and sending through
// it or cfg.Senders. The backend owns conn: Close closes it.
func NewVXLAN(conn link.DatagramConn, cfg VXLANConfig) (*VXLAN, error) {
	if cfg.VNI == 0 {
		cfg.VNI = DefaultVXLANVNI
	}
	if cfg.VNI > vxlanMaxVNI {
		return nil, fmt.Errorf("tunnel: vxlan VNI %d does not fit in 24 bits", cfg.VNI)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultVXLANPort
	}
	if cfg.LocalMAC.IsZero() {
		return nil, errors.New("tunnel: vxlan needs LocalMAC, this node's VTEP MAC (see VTEPMAC)")
	}
	v := &VXLAN{}
	if err := v.init(conn, cfg.Senders, cfg.Port, vxlanEncap{vni: cfg.VNI, local: cfg.LocalMAC}, cfg.MTU); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *VXLAN) Name() string  { return NameVXLAN }
func (v *VXLAN) Overhead() int { return OverheadVXLAN }

// vxlanEncap is the VXLAN header and the inner Ethernet header.
type vxlanEncap struct {
	vni   uint32
	local link.HardwareAddr
}

func (vxlanEncap) headerLen() int { return vxlanHeadroom }

// writeHeader writes the VXLAN header with the VNI and an Ethernet header
// from this node's VTEP MAC to p's.
func (e vxlanEncap) writeHeader(h []byte, p Peer) {
	mac := p.VTEPMAC
	if mac.IsZero() {
		mac = VTEPMAC(p.Addr)
	}
	h[0] = vxlanFlagI
	binary.BigEndian.PutUint32(h[4:8], e.vni<<8)
	copy(h[8:14], mac[:])
	copy(h[14:20], e.local[:])
	binary.BigEndian.PutUint16(h[20:22], ethTypeIPv4)
}

// checkHeader accepts a VXLAN header with our VNI and an inner Ethernet
// header of an IPv4 packet to this node's VTEP MAC or to broadcast.
func (e vxlanEncap) checkHeader(d []byte) drop {
	if len(d) < vxlanHeaderLen {
		return dropTruncated
	}
	// The reserved bits are ignored on receipt (RFC 7348 section 5).
	if d[0]&vxlanFlagI == 0 || binary.BigEndian.Uint32(d[4:8])>>8 != e.vni {
		return dropBadVNI
	}
	if len(d) < vxlanHeadroom {
		return dropTruncated
	}
	if dst := link.HardwareAddr(d[8:14]); dst != e.local && dst != link.Broadcast {
		return dropBadMAC
	}
	if binary.BigEndian.Uint16(d[20:22]) != ethTypeIPv4 {
		return dropNotIPv4
	}
	return dropNone
}
