package fib

import (
	"encoding/binary"
	"maps"
	"math/bits"
	"net/netip"
)

// hashLPM is the hand-written LPM that BenchmarkLookup compares with bart:
// one hash map per IPv4 prefix length plus a bitmap of the lengths in use.
// Lookup probes the lengths present, longest first. Copy-on-write copies
// the whole map of the changed length. It lost (see doc.go) and is kept
// only for the comparison benchmarks.
type hashLPM struct {
	lengths  uint64                 // bit l set: byLength[l] is not empty
	byLength [33]map[uint32]NextHop // key: masked address
}

func ipv4Key(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func ipv4Mask(length int) uint32 { return uint32(^uint64(0) << (32 - length)) }

func (h *hashLPM) Lookup(a netip.Addr) (NextHop, bool) {
	if !a.Is4() {
		return NextHop{}, false
	}
	key := ipv4Key(a)
	for lengths := h.lengths; lengths != 0; {
		l := 63 - bits.LeadingZeros64(lengths)
		lengths &^= 1 << l
		if nh, ok := h.byLength[l][key&ipv4Mask(l)]; ok {
			return nh, true
		}
	}
	return NextHop{}, false
}

// Insert changes h in place.
func (h *hashLPM) Insert(p netip.Prefix, nh NextHop) {
	l := p.Bits()
	if h.byLength[l] == nil {
		h.byLength[l] = make(map[uint32]NextHop)
	}
	h.byLength[l][ipv4Key(p.Masked().Addr())] = nh
	h.lengths |= 1 << l
}

// InsertPersist returns a copy of h with p added; h is unchanged.
func (h *hashLPM) InsertPersist(p netip.Prefix, nh NextHop) *hashLPM {
	c := *h
	c.byLength[p.Bits()] = maps.Clone(h.byLength[p.Bits()])
	c.Insert(p, nh)
	return &c
}

// DeletePersist returns a copy of h without p; h is unchanged.
func (h *hashLPM) DeletePersist(p netip.Prefix) *hashLPM {
	l := p.Bits()
	c := *h
	c.byLength[l] = maps.Clone(h.byLength[l])
	delete(c.byLength[l], ipv4Key(p.Masked().Addr()))
	if len(c.byLength[l]) == 0 {
		c.lengths &^= 1 << l
	}
	return &c
}
