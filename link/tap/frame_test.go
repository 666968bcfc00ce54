package tap_test

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Helpers that build and parse Ethernet/IPv4/ICMP echo frames for the tests.

const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
)

// echoFrame builds an Ethernet frame carrying an ICMP echo of the given type.
func echoFrame(dstMAC, srcMAC [6]byte, src, dst netip.Addr, icmpType uint8, id, seq uint16, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC[:])
	copy(f[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	ip[8] = 64 // TTL
	ip[9] = 1  // ICMP
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:12], ^checksum.Checksum(ip, 0))
	icmp := f[34:]
	icmp[0] = icmpType
	binary.BigEndian.PutUint16(icmp[4:6], id)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	copy(icmp[8:], payload)
	binary.BigEndian.PutUint16(icmp[2:4], ^checksum.Checksum(icmp, 0))
	return f
}

// echo is a parsed ICMP echo frame.
type echo struct {
	dstMAC, srcMAC [6]byte
	src, dst       netip.Addr
	icmpType       uint8
	id, seq        uint16
	payload        []byte
}

// parseEcho parses an Ethernet frame holding an IPv4 ICMP echo; ok is false
// for anything else.
func parseEcho(f []byte) (e echo, ok bool) {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return e, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ip[9] != 1 || len(ip) < ihl+8 {
		return e, false
	}
	icmp := ip[ihl:int(binary.BigEndian.Uint16(ip[2:4]))]
	copy(e.dstMAC[:], f[0:6])
	copy(e.srcMAC[:], f[6:12])
	e.src = netip.AddrFrom4([4]byte(ip[12:16]))
	e.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	e.icmpType = icmp[0]
	e.id = binary.BigEndian.Uint16(icmp[4:6])
	e.seq = binary.BigEndian.Uint16(icmp[6:8])
	e.payload = icmp[8:]
	return e, e.icmpType == icmpEchoRequest || e.icmpType == icmpEchoReply
}

// isUDPTo reports whether f is an Ethernet frame holding an IPv4 UDP
// datagram to dst:port.
func isUDPTo(f []byte, dst netip.Addr, port uint16) bool {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return false
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	if ip[0]>>4 != 4 || ip[9] != 17 || len(ip) < ihl+8 {
		return false
	}
	return netip.AddrFrom4([4]byte(ip[16:20])) == dst && binary.BigEndian.Uint16(ip[ihl+2:ihl+4]) == port
}

// reply turns an echo request frame into the matching reply.
func (e echo) reply() []byte {
	return echoFrame(e.srcMAC, e.dstMAC, e.dst, e.src, icmpEchoReply, e.id, e.seq, e.payload)
}
