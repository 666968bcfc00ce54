package podnet_test

import (
	"encoding/binary"
	"net/netip"
)

// Just enough ARP and ICMP to answer a pod's or the node's ping.

// arpReply answers the ARP request frame f on behalf of mac, or returns nil
// if f is not an ARP request.
func arpReply(f []byte, mac [6]byte) []byte {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != 0x0806 || binary.BigEndian.Uint16(f[20:22]) != 1 {
		return nil
	}
	r := make([]byte, 42)
	copy(r[0:6], f[6:12]) // to the requester
	copy(r[6:12], mac[:])
	copy(r[12:22], f[12:22]) // EtherType, htype, ptype, hlen, plen
	binary.BigEndian.PutUint16(r[20:22], 2)
	copy(r[22:28], mac[:])   // sender MAC
	copy(r[28:32], f[38:42]) // sender IP: the address asked for
	copy(r[32:42], f[22:32]) // target: the requester
	return r
}

// ipEchoReply turns an IPv4 packet holding an ICMP echo request into the
// reply, or returns nil if it is anything else.
func ipEchoReply(p []byte) []byte {
	if len(p) < 28 || p[0]>>4 != 4 || p[9] != 1 {
		return nil
	}
	ihl := int(p[0]&0xf) * 4
	if p[ihl] != 8 {
		return nil
	}
	r := append([]byte(nil), p[:binary.BigEndian.Uint16(p[2:4])]...)
	copy(r[12:16], p[16:20])
	copy(r[16:20], p[12:16])
	r[ihl] = 0 // echo reply
	binary.BigEndian.PutUint16(r[ihl+2:], 0)
	binary.BigEndian.PutUint16(r[ihl+2:], checksum(r[ihl:]))
	binary.BigEndian.PutUint16(r[10:12], 0)
	binary.BigEndian.PutUint16(r[10:12], checksum(r[:ihl]))
	return r
}

// ethEchoReply does the same for an Ethernet frame, from mac.
func ethEchoReply(f []byte, mac [6]byte) []byte {
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return nil
	}
	p := ipEchoReply(f[14:])
	if p == nil {
		return nil
	}
	r := make([]byte, 14, 14+len(p))
	copy(r[0:6], f[6:12])
	copy(r[6:12], mac[:])
	copy(r[12:14], f[12:14])
	return append(r, p...)
}

// ipAddrs returns the source and destination of an IPv4 packet.
func ipAddrs(p []byte) (src, dst netip.Addr) {
	return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
