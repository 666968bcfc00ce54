package gso

import (
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Reasons Reset refuses a packet.
var (
	ErrMalformed = errors.New("gso: not a well-formed IPv4 packet")
	ErrFragment  = errors.New("gso: an IPv4 fragment")
	ErrNotTCP    = errors.New("gso: not TCP")
	ErrMTU       = errors.New("gso: MTU leaves no room for payload behind the headers")
)

// Segmenter cuts one super-segment into segments, one Next call each. The
// zero value is done; Reset starts it on a packet.
type Segmenter struct {
	pkt  []byte // the super-segment: IPv4 header, TCP header, payload
	ihl  int    // IPv4 header length
	hdr  int    // IPv4 + TCP header length
	mss  int    // payload bytes per segment
	off  int    // next payload byte, from hdr
	segs int    // segments written
}

// Reset starts s on pkt, an IPv4 TCP packet of exactly its total length,
// to be cut into segments of at most mtu bytes. s keeps pkt (read only)
// until it is done. It checks the IPv4 header, including its checksum,
// and the TCP header's length.
func (s *Segmenter) Reset(pkt []byte, mtu int) error {
	*s = Segmenter{}
	if len(pkt) < header.IPv4MinimumSize || pkt[0]>>4 != 4 {
		return ErrMalformed
	}
	ip := header.IPv4(pkt)
	ihl := int(ip.HeaderLength())
	if ihl < header.IPv4MinimumSize || int(ip.TotalLength()) != len(pkt) || ihl > len(pkt) || !ip.IsChecksumValid() {
		return ErrMalformed
	}
	if ip.More() || ip.FragmentOffset() != 0 {
		return ErrFragment
	}
	if ip.Protocol() != uint8(header.TCPProtocolNumber) {
		return ErrNotTCP
	}
	if len(pkt) < ihl+header.TCPMinimumSize {
		return ErrMalformed
	}
	thl := int(header.TCP(pkt[ihl:]).DataOffset())
	if thl < header.TCPMinimumSize || ihl+thl > len(pkt) {
		return ErrMalformed
	}
	if mtu <= ihl+thl {
		return ErrMTU
	}
	*s = Segmenter{pkt: pkt, ihl: ihl, hdr: ihl + thl, mss: mtu - ihl - thl}
	return nil
}

// Done reports whether every segment has been written.
func (s *Segmenter) Done() bool { return s.pkt == nil }

// Segments returns how many segments s has written since Reset.
func (s *Segmenter) Segments() int { return s.segs }

// Count returns how many segments the packet s was reset on makes in all.
func (s *Segmenter) Count() int {
	if s.pkt == nil {
		return s.segs
	}
	return s.segs + (len(s.pkt)-s.hdr-s.off+s.mss-1)/s.mss
}

// Next writes the next segment into dst and returns its length: at most the
// MTU given to Reset and at most len(dst). It returns 0 when s is done or
// dst has no room for a byte of payload behind the headers. A packet with
// no payload makes one segment, a copy with the checksums computed.
func (s *Segmenter) Next(dst []byte) int {
	if s.pkt == nil {
		return 0
	}
	rest := len(s.pkt) - s.hdr - s.off
	n := min(s.mss, rest, len(dst)-s.hdr)
	if n <= 0 && (rest > 0 || len(dst) < s.hdr) {
		return 0
	}
	last := n == rest
	seg := dst[:s.hdr+n]
	copy(seg, s.pkt[:s.hdr])
	copy(seg[s.hdr:], s.pkt[s.hdr+s.off:][:n])

	ip := header.IPv4(seg)
	ip.SetTotalLength(uint16(len(seg)))
	ip.SetID(header.IPv4(s.pkt).ID() + uint16(s.segs))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())

	tcp := header.TCP(seg[s.ihl:])
	tcp.SetSequenceNumber(header.TCP(s.pkt[s.ihl:]).SequenceNumber() + uint32(s.off))
	flags := tcp.Flags()
	if !last {
		flags &^= header.TCPFlagFin | header.TCPFlagPsh
	}
	if s.segs > 0 {
		flags &^= header.TCPFlagCwr
	}
	tcp.SetFlags(uint8(flags))
	tcp.SetChecksum(0)
	pseudo := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
	tcp.SetChecksum(^checksum.Checksum(tcp, pseudo))

	s.off += n
	s.segs++
	if last {
		s.pkt = nil
	}
	return len(seg)
}

// Split cuts pkt (see Reset) into segments of at most mtu bytes, segment i
// into dst[i], its length into sizes[i], and returns how many it wrote. It
// stops early, returning what it wrote, when dst runs out or a buffer of
// dst is too small for a segment.
func Split(pkt []byte, mtu int, dst [][]byte, sizes []int) (int, error) {
	var s Segmenter
	if err := s.Reset(pkt, mtu); err != nil {
		return 0, err
	}
	n := 0
	for ; n < len(dst) && !s.Done(); n++ {
		if sizes[n] = s.Next(dst[n]); sizes[n] == 0 {
			break
		}
	}
	return n, nil
}
