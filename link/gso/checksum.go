package gso

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

const (
	protoTCP = 6
	protoUDP = 17
)

// CompleteChecksum completes the TCP or UDP checksum of pkt, an IPv4 packet
// of exactly its total length with a valid header length, as a NIC does for
// a CHECKSUM_PARTIAL packet: it computes the whole checksum over the
// pseudo header and the segment (the field's old value, whatever it is, is
// not used), and reports whether it wrote the field. It changes nothing
// else. Fragments, other protocols, a UDP datagram without checksum (field
// 0) and segments too short for their checksum field are left alone.
//
// The transport that delivered pkt said it is partial (a virtio_net_hdr's
// NEEDS_CSUM, AF_PACKET's TP_STATUS_CSUMNOTREADY). Where the sender chose
// the checksum's start and offset, they are not trusted: IPv4 says where
// the segment starts and the protocol where its checksum is.
func CompleteChecksum(pkt []byte) bool {
	off, ok := ChecksumOffset(pkt)
	if !ok {
		return false
	}
	seg := pkt[int(pkt[0]&0x0f)*4:]
	if pkt[9] == protoUDP && binary.BigEndian.Uint16(seg[off:]) == 0 {
		return false
	}
	seg[off], seg[off+1] = 0, 0
	c := ^checksum.Checksum(seg, PseudoHeaderSum(pkt, len(seg)))
	if c == 0 && pkt[9] == protoUDP {
		c = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return true
}

// ChecksumOffset is where the checksum field of pkt's TCP or UDP segment is,
// from the segment's start, and whether pkt has one to complete: not a
// fragment, TCP or UDP, long enough to hold the field.
func ChecksumOffset(pkt []byte) (int, bool) {
	ihl := int(pkt[0]&0x0f) * 4
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return 0, false // a fragment: its checksum covers the whole datagram
	}
	var off int
	switch pkt[9] {
	case protoTCP:
		off = 16
	case protoUDP:
		off = 6
	default:
		return 0, false
	}
	if n := len(pkt) - ihl; n < off+2 || n > 0xffff {
		return 0, false
	}
	return off, true
}

// PseudoHeaderSum is the folded ones' complement sum of the IPv4 pseudo
// header of pkt's transport segment of length n: source, destination,
// protocol and n (its low 16 bits). The addresses are summed 32 bits at a
// time (RFC 1071 2(C)), as every received packet needs this sum.
func PseudoHeaderSum(pkt []byte, n int) uint16 {
	s := uint64(binary.BigEndian.Uint32(pkt[12:16])) + uint64(binary.BigEndian.Uint32(pkt[16:20])) +
		uint64(pkt[9]) + uint64(uint16(n))
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s>>16 + s&0xffff)
}
