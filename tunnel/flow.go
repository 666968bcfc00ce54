package tunnel

import (
	"encoding/binary"
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// MaxSenders is the most sockets a vxlan or udp backend spreads its flows
// over (VXLANConfig.Senders, UDPConfig.Senders).
const MaxSenders = 64

// flowHash returns a hash of the inner flow of IPv4 packet pkt: its source
// and destination addresses and protocol, and for TCP and UDP its source
// and destination ports. A fragment (MF set or a fragment offset, first
// fragments included, as they must go with the rest of their datagram), a
// packet of another protocol, and one too short for the ports hash without
// ports; a packet shorter than an IPv4 header hashes to 0. Nothing else
// (TTL, ID, length, checksums, payload) counts, so every packet of a flow
// hashes alike. It reads only pkt and never panics.
//
// The hash is fixed, not seeded per process: which flows share a sender is
// the same on every node and run, which the tests rely on. Sharing a sender
// costs nothing but spread, so a sender that chose flows to collide gains
// nothing.
func flowHash(pkt []byte) uint32 {
	if len(pkt) < ipv4HeaderLen {
		return 0
	}
	addrs := binary.BigEndian.Uint64(pkt[12:20])
	proto := pkt[9]
	var ports uint32
	ihl := int(pkt[0]&0x0f) * 4
	fragment := binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 // MF, offset
	if (proto == protoTCP || proto == protoUDP) && !fragment && ihl >= ipv4HeaderLen && len(pkt) >= ihl+4 {
		ports = binary.BigEndian.Uint32(pkt[ihl:])
	}
	return flowKeyHash(addrs, ports, proto)
}

// flowKeyHash mixes a flow's fields: addrs is the source address in the
// high 32 bits and the destination in the low, ports the source port in
// the high 16 and the destination in the low (0 if none). The multiplier
// is odd, so flows of one address pair differ in the 64 bits mix64 takes;
// mix64 spreads each such difference over the 32 bits kept.
func flowKeyHash(addrs uint64, ports uint32, proto byte) uint32 {
	h := addrs ^ (uint64(ports)<<8|uint64(proto))*0x9e3779b97f4a7c15
	return uint32(mix64(h) >> 32)
}

// mix64 is MurmurHash3's 64-bit finaliser: every input bit affects every
// output bit.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// senderOf returns which of n senders the flow of pkt goes through: its
// hash scaled to [0, n), as Linux's udp_flow_src_port scales a flow hash
// to the local port range.
func senderOf(pkt []byte, n int) int {
	return int(uint64(flowHash(pkt)) * uint64(n) >> 32)
}

// spread is Send's scratch for spreading a batch over the senders: the
// sender of each kept packet, and the packets and addresses sorted by
// sender.
type spread struct {
	sender []uint8
	bufs   [][]byte
	addrs  []netip.AddrPort
}

// spreadFor returns b's spread scratch with room for n packets.
func (b *batch) spreadFor(n int) *spread {
	if b.spread == nil {
		b.spread = new(spread)
	}
	s := b.spread
	if cap(s.sender) < n {
		s.sender = make([]uint8, n)
		s.bufs = make([][]byte, n)
		s.addrs = make([]netip.AddrPort, n)
	}
	s.sender, s.bufs, s.addrs = s.sender[:n], s.bufs[:n], s.addrs[:n]
	return s
}

// sendSpread writes the kept buffers of b (inner packets at innerOffset,
// written from writeOffset) through senders, each through the sender its
// inner flow hashes to, and counts the result in t. The packets of one
// sender go in one WriteTo, in their order in b (a stable counting sort),
// so a flow keeps its order and a sender's GSO runs stay whole; a batch of
// one sender's flows (the common case: one flow) is written as it is. It
// returns the number sent and the first error.
func sendSpread(senders []link.DatagramConn, b *batch, innerOffset, writeOffset int, t *Stats) (int, error) {
	n := len(b.bufs)
	if n == 0 {
		return 0, nil
	}
	s := b.spreadFor(n)
	var start [MaxSenders + 1]int // start[k]: where sender k's packets begin in s
	for i, buf := range b.bufs {
		k := senderOf(buf[innerOffset:], len(senders))
		s.sender[i] = uint8(k)
		start[k+1]++
	}
	if k := s.sender[0]; start[k+1] == n { // one sender
		return sendBatch(senders[k], b, innerOffset, writeOffset, t)
	}
	for k := range senders {
		start[k+1] += start[k]
	}
	next := start
	for i, buf := range b.bufs {
		j := &next[s.sender[i]]
		s.bufs[*j], s.addrs[*j] = buf, b.addrs[i]
		*j++
	}
	sent := 0
	var firstErr error
	for k, c := range senders {
		lo, hi := start[k], start[k+1]
		if lo == hi {
			continue
		}
		m, err := c.WriteTo(s.bufs[lo:hi], s.addrs[lo:hi], writeOffset)
		countSent(s.bufs[lo:hi], m, innerOffset, t)
		sent += m
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	clear(s.bufs) // do not pin the caller's buffers
	return sent, firstErr
}
