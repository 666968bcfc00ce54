package tunnel

import "encoding/binary"

const (
	ethHeaderLen  = 14
	ethTypeIPv4   = 0x0800
	ethTypeARP    = 0x0806
	ipv4HeaderLen = 20 // without options
)

// checkIPv4 checks that b starts with a complete IPv4 packet and returns its
// total length, which excludes any link-layer padding after it, or why it is
// dropped. It checks lengths only; the header checksum is the router's to
// verify.
func checkIPv4(b []byte) (int, drop) {
	if len(b) < ipv4HeaderLen {
		return 0, dropTruncated
	}
	if b[0]>>4 != 4 {
		return 0, dropNotIPv4
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	switch {
	case ihl < ipv4HeaderLen || total < ihl:
		return 0, dropMalformed
	case total > len(b):
		return 0, dropTruncated
	}
	return total, dropNone
}
