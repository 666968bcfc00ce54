package tunnel

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/taprouter/taprouter/link/gso"
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
// checksum field (gso.CompleteChecksum). With completeIfPartial it does so
// only for a packet whose field holds the folded pseudo-header sum and does
// not verify. See the package doc for why this is sound.
func completeChecksum(pkt []byte, mode completion) bool {
	if mode == completeIfPartial {
		off, ok := gso.ChecksumOffset(pkt)
		if !ok {
			return false
		}
		seg := pkt[int(pkt[0]&0x0f)*4:]
		// The cheap test first: the field equals the pseudo-header sum in
		// 1 of 65536 complete packets, so almost every packet costs only
		// the 12 bytes of the pseudo header.
		pseudo := pseudoHeaderSum(pkt, len(seg))
		if binary.BigEndian.Uint16(seg[off:]) != pseudo || checksum.Checksum(seg, pseudo) == 0xffff {
			return false
		}
	}
	return gso.CompleteChecksum(pkt)
}

// pseudoHeaderSum is gso.PseudoHeaderSum.
func pseudoHeaderSum(pkt []byte, n int) uint16 { return gso.PseudoHeaderSum(pkt, n) }
