package testbed

import (
	"encoding/binary"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// ICMPEcho returns an IPv4 packet holding an ICMP echo request from src to
// dst with ttl, id, seq and 8 bytes of payload, checksums filled in.
func ICMPEcho(src, dst netip.Addr, ttl uint8, id, seq uint16) []byte {
	const ipLen, icmpLen = 20, 16
	b := make([]byte, ipLen+icmpLen)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], ipLen+icmpLen)
	b[6] = 0x40 // DF
	b[8] = ttl
	b[9] = 1 // ICMP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:12], checksum(b[:ipLen]))
	icmp := b[ipLen:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:6], id)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	copy(icmp[8:], "testbed!")
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp))
	return b
}

// VXLANFrame returns a VXLAN datagram payload: the VXLAN header with vni and
// an Ethernet frame from srcMAC to dstMAC carrying the IPv4 packet.
func VXLANFrame(vni uint32, dstMAC, srcMAC link.HardwareAddr, ipv4 []byte) []byte {
	b := make([]byte, 8+14+len(ipv4))
	b[0] = 0x08 // I flag: the VNI is valid
	binary.BigEndian.PutUint32(b[4:8], vni<<8)
	copy(b[8:14], dstMAC[:])
	copy(b[14:20], srcMAC[:])
	binary.BigEndian.PutUint16(b[20:22], 0x0800)
	copy(b[22:], ipv4)
	return b
}

// checksum is the Internet checksum of RFC 1071.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
