package arp

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// ARP operations (RFC 826).
const (
	OpRequest = 1
	OpReply   = 2
)

const (
	// EtherType is the Ethernet type of ARP frames.
	EtherType = 0x0806
	// PayloadLen is the length of an ARP payload for IPv4 over Ethernet.
	PayloadLen = 28
	// FrameLen is the length of an Ethernet frame carrying ARP: the 60-byte
	// Ethernet minimum (without FCS) that the 14-byte header and the payload
	// are padded to.
	FrameLen = 60

	ethernetHeaderLen = 14
	hardwareEthernet  = 1
	protocolIPv4      = 0x0800
)

// Errors returned by Parse.
var (
	ErrTruncated   = errors.New("arp: packet shorter than 28 bytes")
	ErrNotEthernet = errors.New("arp: hardware is not Ethernet (want htype 1, hlen 6)")
	ErrNotIPv4     = errors.New("arp: protocol is not IPv4 (want ptype 0x0800, plen 4)")
)

// Packet is an ARP packet for IPv4 over Ethernet.
type Packet struct {
	Op        uint16
	SenderMAC link.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC link.HardwareAddr
	TargetIP  netip.Addr
}

// Parse decodes the ARP payload b, which follows the 14-byte Ethernet
// header. Bytes past the 28-byte payload (Ethernet padding) are ignored. The
// operation is returned as is; callers act on OpRequest and OpReply.
func Parse(b []byte) (Packet, error) {
	if len(b) < PayloadLen {
		return Packet{}, ErrTruncated
	}
	if binary.BigEndian.Uint16(b[0:2]) != hardwareEthernet || b[4] != 6 {
		return Packet{}, ErrNotEthernet
	}
	if binary.BigEndian.Uint16(b[2:4]) != protocolIPv4 || b[5] != 4 {
		return Packet{}, ErrNotIPv4
	}
	return Packet{
		Op:        binary.BigEndian.Uint16(b[6:8]),
		SenderMAC: link.HardwareAddr(b[8:14]),
		SenderIP:  netip.AddrFrom4([4]byte(b[14:18])),
		TargetMAC: link.HardwareAddr(b[18:24]),
		TargetIP:  netip.AddrFrom4([4]byte(b[24:28])),
	}, nil
}

// Encode writes p as a 28-byte ARP payload to b and returns 28. It panics if
// b is shorter, or if SenderIP or TargetIP is not an IPv4 address.
func (p *Packet) Encode(b []byte) int {
	_ = b[PayloadLen-1]
	binary.BigEndian.PutUint16(b[0:2], hardwareEthernet)
	binary.BigEndian.PutUint16(b[2:4], protocolIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], p.Op)
	sender, target := p.SenderIP.As4(), p.TargetIP.As4()
	copy(b[8:14], p.SenderMAC[:])
	copy(b[14:18], sender[:])
	copy(b[18:24], p.TargetMAC[:])
	copy(b[24:28], target[:])
	return PayloadLen
}

// EncodeFrame writes an Ethernet frame from src to dst carrying p, zero
// padded to FrameLen, to b and returns FrameLen. It panics if b is shorter
// than FrameLen, or if p's addresses are not IPv4.
func EncodeFrame(b []byte, dst, src link.HardwareAddr, p *Packet) int {
	_ = b[FrameLen-1]
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], EtherType)
	n := ethernetHeaderLen + p.Encode(b[ethernetHeaderLen:])
	clear(b[n:FrameLen])
	return FrameLen
}

// IsGratuitous reports whether p announces its sender's own address
// (RFC 5227 "ARP announcement", as a request or a reply): the sender and
// target IP are the same, specified address. An ARP probe, whose sender IP is
// 0.0.0.0, is not gratuitous.
func IsGratuitous(p *Packet) bool {
	return p.SenderIP == p.TargetIP && p.SenderIP.IsValid() && !p.SenderIP.IsUnspecified()
}
