package link

import (
	"errors"
	"net/netip"
)

// ErrClosed is returned by Read and Write after Close.
var ErrClosed = errors.New("link: closed")

// Device is a batch packet device: a TAP (Ethernet frames), a TUN (IP
// packets) or an AF_PACKET socket (Ethernet frames on the underlay).
type Device interface {
	// Read reads a batch; see the package doc for the buffer convention.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write writes a batch; see the package doc for the buffer convention.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the largest batch Read fills and the batch Write prefers.
	BatchSize() int
	// MTU is the device's MTU: the largest L3 packet it carries.
	MTU() int
	// Name is the device's name, for logs.
	Name() string
	// Close releases the device; a blocked Read returns ErrClosed.
	Close() error
}

// RxMeta is what a device knows about a received frame beyond its bytes.
type RxMeta uint8

const (
	// RxVLAN: the frame carried an 802.1Q tag with a non-zero VLAN ID,
	// which the kernel moved out of the frame into metadata: it belongs
	// to a VLAN, not to the untagged network the device is on.
	RxVLAN RxMeta = 1 << iota
	// RxChecksumPartial: the sender left the transport (TCP or UDP)
	// checksum to be completed (the kernel's CHECKSUM_PARTIAL): the field
	// holds the folded pseudo-header sum, not the checksum.
	RxChecksumPartial
)

// MetaReader is a Device that can report per-frame receive metadata. Its
// ReadMeta is Read that also sets meta[i] for every frame read; meta must
// be at least len(bufs) long. The AF_PACKET socket implements it (VLAN
// tags; it completes partial checksums itself); a caller
// type-asserts for it and falls back to Read.
type MetaReader interface {
	ReadMeta(bufs [][]byte, sizes []int, meta []RxMeta, offset int) (int, error)
}

// GSOType is the kind of a super-frame: an IPv4 packet longer than the MTU
// that a sender's segmentation offload left whole, to be cut into segments
// on the way out.
type GSOType uint8

const (
	// GSONone: a packet that goes on the wire as it is.
	GSONone GSOType = iota
	// GSOTCPv4: a TCP super-segment (TSO), cut into TCP segments of
	// GSO.Size payload bytes, the last one shorter.
	GSOTCPv4
	// GSOUDPv4: a UDP super-datagram (a sender's UDP_SEGMENT), cut into
	// datagrams of GSO.Size payload bytes, the last one shorter.
	GSOUDPv4
)

// GSO describes a packet: GSONone, or a super-frame and its segment size.
// A super-frame's IPv4 total length is its length (at most 65535), it is
// not a fragment, and its transport checksum field holds the sum of the
// pseudo-header (addresses, protocol and the whole transport length), not
// the checksum: whoever cuts it computes each segment's checksum, and a
// device that takes it whole tells its kernel the checksum is partial.
type GSO struct {
	Type GSOType
	Size uint16 // payload bytes per segment
}

// GSODevice is a Device that moves super-frames whole, in both directions:
// a TAP with offloads, whose pod's kernel hands over 64 KB TCP
// super-segments and takes them back, and a packet socket with
// PACKET_VNET_HDR on a veth. Devices without it cut super-frames on read
// and take only packets up to the MTU.
type GSODevice interface {
	Device
	// GSO reports whether ReadGSO and WriteGSO carry super-frames at all
	// (the device has its offloads); if not, use Read and Write.
	GSO() bool
	// ReadGSO is Read that leaves a super-frame whole: gso[i] describes
	// frame i, and meta[i] (if meta is not nil) is as MetaReader's. A frame
	// with gso[i].Type != GSONone is not in bufs[i]: it is
	// SuperFrame()[offset:offset+sizes[i]], and the bytes in front of it are
	// free headroom. A call returns at most one super-frame, the last of its
	// batch; it stays valid until the next call. gso (and meta) must be at
	// least len(bufs) long. The device checked that a super-frame is what
	// GSO says (IPv4 of exactly its total length, not a fragment, TCP or
	// UDP, a segment size the sender chose of at least 48 bytes for TCP,
	// capped so that a segment fits the MTU) and that its checksum field
	// holds the pseudo-header sum.
	ReadGSO(bufs [][]byte, sizes []int, meta []RxMeta, gso []GSO, offset int) (int, error)
	// SuperFrame is the buffer holding the super-frame ReadGSO returned.
	SuperFrame() []byte
	// WriteGSO is Write where gso[i] describes bufs[i][offset:]: a
	// super-frame is written whole (or, where the kernel refuses that, cut
	// and written segment by segment) and counts one in the result.
	WriteGSO(bufs [][]byte, gso []GSO, offset int) (int, error)
}

// Segments returns how many packets the IPv4 packet pkt, described by g,
// makes on the wire: 1 for GSONone, else its payload over g.Size, rounded
// up (at least 1). pkt must be what GSODevice.ReadGSO checked.
func Segments(pkt []byte, g GSO) int {
	if g.Type == GSONone || g.Size == 0 || len(pkt) < 20 {
		return 1
	}
	hdr := int(pkt[0]&0x0f) * 4
	if g.Type == GSOTCPv4 {
		if len(pkt) < hdr+20 {
			return 1
		}
		hdr += int(pkt[hdr+12]>>4) * 4
	} else {
		hdr += 8
	}
	payload := len(pkt) - hdr
	if payload <= 0 {
		return 1
	}
	return (payload + int(g.Size) - 1) / int(g.Size)
}

// OffloadStats counts what a device that takes offloaded frames from its
// kernel (a TAP with tap.Options.Offload) did with them.
type OffloadStats struct {
	// Checksums completed (partial-checksum frames, and every segment
	// cut from a super-frame).
	Checksums uint64
	// SuperFrames cut into Segments.
	SuperFrames, Segments uint64
	// Dropped: frames whose offload request could not be honoured (a GSO
	// type not offered, not IPv4 TCP, a segment size of 0, a malformed
	// packet, a caller buffer too small for a segment).
	Dropped uint64
	// Coalesced super-frames written, made of CoalescedFrames frames
	// (the write side's GRO).
	Coalesced, CoalescedFrames uint64
	// CoalesceRefused: the kernel refused a super-frame write (EINVAL),
	// TCP's or UDP's, and the device writes no more of that kind (2 at
	// most): it writes every frame of that kind alone since, and cuts
	// super-frames of it.
	CoalesceRefused uint64
	// ReadWhole: super-frames ReadGSO handed on whole, not cut.
	// WrittenWhole: super-frames WriteGSO wrote whole. WriteCut: those it
	// cut and wrote segment by segment, the kernel refusing them whole.
	ReadWhole, WrittenWhole, WriteCut uint64
}

// OffloadCounter is a Device that reports OffloadStats.
type OffloadCounter interface {
	OffloadStats() OffloadStats
}

// MaxLarge is the longest datagram or frame a LargeReader keeps: a 64 KB
// IPv4 packet with its link-layer header.
const MaxLarge = 65536 + 64

// LargeReader is a transport (a DatagramConn or a Device) that keeps a
// datagram or frame longer than the caller's buffer, up to MaxLarge bytes,
// instead of dropping it. Such come from a local sender's segmentation
// offload that a veth passes on unsplit (see package link/gso). After a
// read, sizes[i] > len(bufs[i])-offset marks one: bufs[i][offset:] holds
// its start and Large(i) all of it, in the transport's own buffer, valid
// until the next read. Longer ones are dropped and counted as before.
type LargeReader interface {
	Large(i int) []byte
}

// DatagramConn is a batch UDP socket on the underlay: vxlan and udp
// encapsulations send and receive through it.
type DatagramConn interface {
	// ReadFrom reads a batch of datagrams like Device.Read and records each
	// datagram's source in from[i].
	ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error)
	// WriteTo sends bufs[i][offset:] to to[i] for every i.
	WriteTo(bufs [][]byte, to []netip.AddrPort, offset int) (int, error)
	// LocalAddr is the bound address.
	LocalAddr() netip.AddrPort
	// BatchSize is the largest batch ReadFrom fills.
	BatchSize() int
	Close() error
}

// HardwareAddr is a 6-byte MAC address held by value so that it can be
// compared and copied without allocating.
type HardwareAddr [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (a HardwareAddr) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, c := range a {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[c>>4], hex[c&0xf])
	}
	return string(b)
}

// IsZero reports whether a is 00:00:00:00:00:00.
func (a HardwareAddr) IsZero() bool { return a == HardwareAddr{} }

// ParseMAC parses "aa:bb:cc:dd:ee:ff".
func ParseMAC(s string) (HardwareAddr, error) {
	var a HardwareAddr
	if len(s) != 17 {
		return a, errors.New("invalid MAC address " + quote(s) + ": want aa:bb:cc:dd:ee:ff")
	}
	for i := 0; i < 6; i++ {
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 || (i < 5 && s[3*i+2] != ':' && s[3*i+2] != '-') {
			return HardwareAddr{}, errors.New("invalid MAC address " + quote(s) + ": want aa:bb:cc:dd:ee:ff")
		}
		a[i] = hi<<4 | lo
	}
	return a, nil
}

// DerivedMAC returns a locally administered unicast MAC built from an IPv4
// address: prefix, prefix2, then the four address bytes. taprouter derives its
// VTEP and gateway MACs this way so that peers need no MAC in their config.
func DerivedMAC(prefix, prefix2 byte, a netip.Addr) HardwareAddr {
	b := a.As4()
	return HardwareAddr{(prefix | 0x02) &^ 0x01, prefix2, b[0], b[1], b[2], b[3]}
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func quote(s string) string { return "\"" + s + "\"" }
