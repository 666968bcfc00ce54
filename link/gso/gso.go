package gso

import (
	"encoding/binary"
	"errors"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// The header fields it touches, by offset: the package parses IPv4 and TCP
// itself so that it (and link/tap, which uses it) depends only on gVisor's
// checksum package, not on its header views and their buffer and logging
// packages.
const (
	ipv4MinSize = 20
	tcpMinSize  = 20
	udpHdrSize  = 8
	tcpFlagFIN  = 0x01
	tcpFlagPSH  = 0x08
	tcpFlagCWR  = 0x80
)

// Reasons Reset refuses a packet.
var (
	ErrMalformed = errors.New("gso: not a well-formed IPv4 packet")
	ErrFragment  = errors.New("gso: an IPv4 fragment")
	ErrNotTCP    = errors.New("gso: not TCP")
	ErrNotUDP    = errors.New("gso: not UDP")
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
	udp  bool   // a UDP super-datagram (ResetUDP)
}

// Reset starts s on pkt, an IPv4 TCP packet of exactly its total length,
// to be cut into segments of at most mtu bytes. s keeps pkt (read only)
// until it is done. It checks the IPv4 header, including its checksum,
// and the TCP header's length.
func (s *Segmenter) Reset(pkt []byte, mtu int) error {
	*s = Segmenter{}
	ihl, err := checkIPv4(pkt)
	if err != nil {
		return err
	}
	if pkt[9] != protoTCP {
		return ErrNotTCP
	}
	if len(pkt) < ihl+tcpMinSize {
		return ErrMalformed
	}
	thl := int(pkt[ihl+12]>>4) * 4
	if thl < tcpMinSize || ihl+thl > len(pkt) {
		return ErrMalformed
	}
	if mtu <= ihl+thl {
		return ErrMTU
	}
	*s = Segmenter{pkt: pkt, ihl: ihl, hdr: ihl + thl, mss: mtu - ihl - thl}
	return nil
}

// maxUDPSegments is the most datagrams a UDP super-datagram is cut into:
// the kernel's UDP_MAX_SEGMENTS, which a sender's UDP_SEGMENT cannot pass.
const maxUDPSegments = 128

// ResetUDP starts s on pkt, an IPv4 UDP super-datagram (UDP GSO) of
// exactly its total length, to be cut into datagrams of size payload bytes
// each (the last one shorter), as the sender's UDP_SEGMENT asked. It
// checks the IPv4 header, including its checksum, the UDP length, and
// that the datagrams are at most maxUDPSegments (128, the kernel's limit).
func (s *Segmenter) ResetUDP(pkt []byte, size int) error {
	*s = Segmenter{}
	ihl, err := checkIPv4(pkt)
	if err != nil {
		return err
	}
	if pkt[9] != protoUDP {
		return ErrNotUDP
	}
	if len(pkt) < ihl+udpHdrSize || int(binary.BigEndian.Uint16(pkt[ihl+4:])) != len(pkt)-ihl {
		return ErrMalformed
	}
	payload := len(pkt) - ihl - udpHdrSize
	if size <= 0 || payload > size*maxUDPSegments {
		return ErrMTU
	}
	*s = Segmenter{pkt: pkt, ihl: ihl, hdr: ihl + udpHdrSize, mss: size, udp: true}
	return nil
}

// checkIPv4 checks that pkt is an IPv4 packet of exactly its total length
// with a valid header checksum, not a fragment, and returns its header
// length.
func checkIPv4(pkt []byte) (int, error) {
	if len(pkt) < ipv4MinSize || pkt[0]>>4 != 4 {
		return 0, ErrMalformed
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < ipv4MinSize || int(binary.BigEndian.Uint16(pkt[2:4])) != len(pkt) || ihl > len(pkt) || checksum.Checksum(pkt[:ihl], 0) != 0xffff {
		return 0, ErrMalformed
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return 0, ErrFragment // MF, or a fragment offset
	}
	return ihl, nil
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
// dst has no room for a byte of payload behind the headers (for a UDP
// super-datagram: for the whole next datagram). A packet with no payload
// makes one segment, a copy with the checksums computed. A UDP datagram
// gets its own UDP length and a full checksum.
func (s *Segmenter) Next(dst []byte) int {
	if s.pkt == nil {
		return 0
	}
	rest := len(s.pkt) - s.hdr - s.off
	n := min(s.mss, rest, len(dst)-s.hdr)
	if n <= 0 && (rest > 0 || len(dst) < s.hdr) || s.udp && n < min(s.mss, rest) {
		return 0 // a datagram is never cut short: that would change its boundaries
	}
	last := n == rest
	seg := dst[:s.hdr+n]
	copy(seg, s.pkt[:s.hdr])
	copy(seg[s.hdr:], s.pkt[s.hdr+s.off:][:n])

	binary.BigEndian.PutUint16(seg[2:4], uint16(len(seg)))
	binary.BigEndian.PutUint16(seg[4:6], binary.BigEndian.Uint16(s.pkt[4:6])+uint16(s.segs))
	seg[10], seg[11] = 0, 0
	binary.BigEndian.PutUint16(seg[10:12], ^checksum.Checksum(seg[:s.ihl], 0))

	if s.udp {
		udp := seg[s.ihl:]
		binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
		udp[6], udp[7] = 0, 0
		c := ^checksum.Checksum(udp, PseudoHeaderSum(seg, len(udp)))
		if c == 0 {
			c = 0xffff // 0 means no checksum (RFC 768)
		}
		binary.BigEndian.PutUint16(udp[6:8], c)
		s.advance(n, last)
		return len(seg)
	}
	tcp := seg[s.ihl:]
	binary.BigEndian.PutUint32(tcp[4:8], binary.BigEndian.Uint32(s.pkt[s.ihl+4:])+uint32(s.off))
	if !last {
		tcp[13] &^= tcpFlagFIN | tcpFlagPSH
	}
	if s.segs > 0 {
		tcp[13] &^= tcpFlagCWR
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:18], ^checksum.Checksum(tcp, PseudoHeaderSum(seg, len(tcp))))
	s.advance(n, last)
	return len(seg)
}

// advance moves s past a segment of n payload bytes, the last if last.
func (s *Segmenter) advance(n int, last bool) {
	s.off += n
	s.segs++
	if last {
		s.pkt = nil
	}
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
