package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// pcap link types tcpdump writes for the devices of a test bed.
const (
	linkTypeEthernet = 1   // veth, bridge, TAP, vxlan
	linkTypeRaw      = 101 // TUN
	linkTypeLinuxSLL = 113 // "-i any"
)

// Packet is a decoded IPv4 packet from a capture.
type Packet struct {
	// SrcMAC and DstMAC are the Ethernet addresses when the packet was
	// captured (or encapsulated) in an Ethernet frame.
	SrcMAC, DstMAC   link.HardwareAddr
	Src, Dst         netip.Addr
	TTL              uint8
	Protocol         uint8 // 1 ICMP, 6 TCP, 17 UDP
	DontFragment     bool
	Length           int    // the IPv4 total length
	SrcPort, DstPort uint16 // TCP and UDP
	ICMPType         uint8
	ICMPCode         uint8
	// Payload is what follows the UDP header (UDP packets only).
	Payload []byte
}

// ReadPcap decodes the IPv4 packets of a pcap file; frames that do not carry
// IPv4 (ARP, for example) are skipped.
func ReadPcap(r io.Reader) ([]Packet, error) {
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("testbed: pcap header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, errors.New("testbed: not a pcap file")
	}
	linkType := order.Uint32(hdr[20:24]) & 0x0fffffff
	var packets []Packet
	for {
		var rec [16]byte
		if _, err := io.ReadFull(r, rec[:]); err == io.EOF {
			return packets, nil
		} else if err != nil {
			return packets, fmt.Errorf("testbed: pcap record: %w", err)
		}
		data := make([]byte, order.Uint32(rec[8:12]))
		if _, err := io.ReadFull(r, data); err != nil {
			return packets, fmt.Errorf("testbed: pcap record: %w", err)
		}
		if p, ok := decodeLinkLayer(linkType, data); ok {
			packets = append(packets, p)
		}
	}
}

func decodeLinkLayer(linkType uint32, b []byte) (Packet, bool) {
	switch linkType {
	case linkTypeEthernet:
		return DecodeEthernet(b)
	case linkTypeRaw:
		return DecodeIPv4(b)
	case linkTypeLinuxSLL:
		if len(b) < 16 || binary.BigEndian.Uint16(b[14:16]) != 0x0800 {
			return Packet{}, false
		}
		return DecodeIPv4(b[16:])
	}
	return Packet{}, false
}

// DecodeEthernet decodes an Ethernet frame carrying IPv4.
func DecodeEthernet(b []byte) (Packet, bool) {
	if len(b) < 14 || binary.BigEndian.Uint16(b[12:14]) != 0x0800 {
		return Packet{}, false
	}
	p, ok := DecodeIPv4(b[14:])
	copy(p.DstMAC[:], b[0:6])
	copy(p.SrcMAC[:], b[6:12])
	return p, ok
}

// DecodeIPv4 decodes an IPv4 packet and its TCP, UDP or ICMP header.
func DecodeIPv4(b []byte) (Packet, bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return Packet{}, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl {
		return Packet{}, false
	}
	p := Packet{
		Src:          netip.AddrFrom4([4]byte(b[12:16])),
		Dst:          netip.AddrFrom4([4]byte(b[16:20])),
		TTL:          b[8],
		Protocol:     b[9],
		DontFragment: b[6]&0x40 != 0,
		Length:       int(binary.BigEndian.Uint16(b[2:4])),
	}
	l4 := b[ihl:]
	switch p.Protocol {
	case 1:
		if len(l4) >= 2 {
			p.ICMPType, p.ICMPCode = l4[0], l4[1]
		}
	case 6, 17:
		if len(l4) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
			p.DstPort = binary.BigEndian.Uint16(l4[2:4])
		}
		if p.Protocol == 17 && len(l4) >= 8 {
			p.Payload = l4[8:]
		}
	}
	return p, true
}

// VXLAN decodes p's UDP payload as a VXLAN header followed by an Ethernet
// frame carrying IPv4.
func (p Packet) VXLAN() (vni uint32, inner Packet, ok bool) {
	if p.Protocol != 17 || len(p.Payload) < 8 || p.Payload[0]&0x08 == 0 {
		return 0, Packet{}, false
	}
	vni = binary.BigEndian.Uint32(p.Payload[4:8]) >> 8
	inner, ok = DecodeEthernet(p.Payload[8:])
	return vni, inner, ok
}

// IPinUDP decodes p's UDP payload as an IPv4 packet (taprouter's and
// flannel's "udp" backend).
func (p Packet) IPinUDP() (Packet, bool) {
	if p.Protocol != 17 {
		return Packet{}, false
	}
	return DecodeIPv4(p.Payload)
}
