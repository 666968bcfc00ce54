package tunnel

import "encoding/binary"

const (
	ethHeaderLen  = 14
	ethTypeIPv4   = 0x0800
	ethTypeARP    = 0x0806
	ipv4HeaderLen = 20 // without options
)

// ipv4Verdict is what checkIPv4 found wrong with a packet, if anything.
type ipv4Verdict uint8

const (
	ipv4OK ipv4Verdict = iota
	ipv4Truncated
	ipv4NotIPv4
	ipv4Malformed
)

// checkIPv4 checks that b starts with a complete IPv4 packet and returns its
// total length, which excludes any link-layer padding after it. It checks
// lengths only; the header checksum is the router's to verify.
func checkIPv4(b []byte) (int, ipv4Verdict) {
	if len(b) < ipv4HeaderLen {
		return 0, ipv4Truncated
	}
	if b[0]>>4 != 4 {
		return 0, ipv4NotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	switch {
	case ihl < ipv4HeaderLen || total < ihl:
		return 0, ipv4Malformed
	case total > len(b):
		return 0, ipv4Truncated
	}
	return total, ipv4OK
}

// countIPv4 counts a bad verdict in the tally.
func (t *Stats) countIPv4(v ipv4Verdict) {
	switch v {
	case ipv4Truncated:
		t.DropTruncated++
	case ipv4NotIPv4:
		t.DropNotIPv4++
	case ipv4Malformed:
		t.DropMalformed++
	}
}

// accept counts a delivered inner packet in the tally.
func (t *Stats) accept(size int) {
	t.RxPackets++
	t.RxBytes += uint64(size)
}
