package tunnel

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

const (
	protoTCP = 6
	protoUDP = 17
)

// completion says how far completeChecksum may trust the packet to need a
// checksum completed.
type completion uint8

const (
	// completeIfPartial completes the checksum only if it does not verify
	// and the field holds exactly what a CHECKSUM_PARTIAL sender leaves in
	// it: the folded pseudo-header sum. Used where nothing says whether the
	// packet is partial (a UDP socket).
	completeIfPartial completion = iota
	// completeAlways completes the checksum: the transport said the packet
	// is partial (AF_PACKET's TP_STATUS_CSUMNOTREADY).
	completeAlways
)

// completeChecksum completes the TCP or UDP checksum of pkt, an IPv4 packet
// already checked by checkIPv4 (pkt is exactly its total length), as a NIC
// would for a CHECKSUM_PARTIAL packet, and reports whether it wrote the
// checksum field. It changes nothing else. Fragments, other protocols, a
// UDP datagram without checksum (field 0) and segments too short for their
// checksum field are left alone. See the package doc for why this is sound.
func completeChecksum(pkt []byte, mode completion) bool {
	ihl := int(pkt[0]&0x0f) * 4
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return false // a fragment: its checksum covers the whole datagram
	}
	var off int
	switch pkt[9] {
	case protoTCP:
		off = 16
	case protoUDP:
		off = 6
	default:
		return false
	}
	seg := pkt[ihl:]
	if len(seg) < off+2 || len(seg) > 0xffff {
		return false
	}
	field := binary.BigEndian.Uint16(seg[off:])
	pseudo := pseudoHeaderSum(pkt, len(seg))
	if mode == completeIfPartial {
		// The cheap test first: the field equals the pseudo-header sum in
		// 1 of 65536 complete packets, so almost every packet costs only
		// the 12 bytes of the pseudo header.
		if field != pseudo || checksum.Checksum(seg, pseudo) == 0xffff {
			return false
		}
	} else if pkt[9] == protoUDP && field == 0 {
		return false
	}
	seg[off], seg[off+1] = 0, 0
	c := ^checksum.Checksum(seg, pseudo)
	if c == 0 && pkt[9] == protoUDP {
		c = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return true
}

// pseudoHeaderSum is the folded ones' complement sum of the IPv4 pseudo
// header of pkt's transport segment of length n: source, destination,
// protocol and n.
func pseudoHeaderSum(pkt []byte, n int) uint16 {
	s := checksum.Checksum(pkt[12:20], 0)
	s = checksum.Combine(s, uint16(pkt[9]))
	return checksum.Combine(s, uint16(n))
}
