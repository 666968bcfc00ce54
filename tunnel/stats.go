package tunnel

import "sync/atomic"

// Stats is a snapshot of a tunnel's counters. Backends leave the counters
// that do not apply to them at zero.
type Stats struct {
	RxPackets uint64 // inner packets delivered by Recv
	RxBytes   uint64 // inner bytes delivered by Recv
	TxPackets uint64 // packets handed to the underlay by Send (and ARP resolution)
	TxBytes   uint64 // inner bytes of those packets
	TxErrors  uint64 // packets the underlay refused to send
	// TxResolved: direct: packets Send queued for their peer's ARP reply
	// (not in its return value) and sent when it came (also in TxPackets).
	TxResolved uint64

	DropUnknownPeer uint64 // sent: no live peer has the ID, or that peer does not own the destination; received: from a non-peer
	DropBadVNI      uint64 // vxlan: I flag clear or VNI not ours
	DropTruncated   uint64 // shorter than its headers or its IPv4 total length
	DropNotIPv4     uint64 // inner ethertype or IP version is not IPv4
	DropMalformed   uint64 // inner IPv4 header inconsistent (IHL < 5, total length < header)
	DropBadMAC      uint64 // vxlan: inner destination MAC neither ours nor broadcast
	DropNoNeighbour uint64 // direct: peer MAC unresolved (ARP failed or queue full)
	DropOversize    uint64 // larger than the receive buffer and not split: by the transport (see transportDrops; direct: super-frames the socket could not cut), or not TCP, a fragment, or no room to split into
	DropVLAN        uint64 // direct: the frame carried an 802.1Q tag: a VLAN, not the untagged underlay

	Ignored      uint64 // direct: the kernel's own traffic on the underlay, left alone
	ARPRequests  uint64 // direct: ARP requests sent for peer addresses
	ARPLearned   uint64 // direct: ARP packets from peers, learned from
	ARPConflicts uint64 // direct: ARP packets claiming a peer's address from a MAC other than its known one (arp.Table.Learn)
	// direct: ARP replies (and requests not for LocalAddr) from a peer
	// address the table was not resolving, which change nothing
	// (arp.Unsolicited): an impostor's, or a late answer.
	ARPUnsolicited uint64

	// Delivered packets whose inner TCP or UDP checksum Recv completed (see
	// the package doc); they are also in RxPackets.
	ChecksumsCompleted uint64

	// Super-packets (a kernel sender's segmentation offload, larger than
	// the receive buffer) that Recv split, and the segments it delivered
	// from them (also in RxPackets); see the package doc. direct: those
	// the AF_PACKET socket cut.
	GSOSplit    uint64
	GSOSegments uint64

	// vxlan/udp: the socket's UDP GSO (link/udp.WriteStats): sendmmsg
	// messages, of them GSO messages (several datagrams, one UDP_SEGMENT
	// cmsg) carrying TxGSODatagrams, and GSO messages the kernel refused
	// (GSO off since) or found too long for the route's MTU (sent one by
	// one). direct: the socket's super-frames (link.OffloadStats):
	// TxGSOMessages written, made of TxGSODatagrams frames, TxGSORefused
	// if the kernel refused one (each frame alone since).
	TxMessages, TxGSOMessages, TxGSODatagrams, TxGSORefused, TxGSOOversize uint64
	// vxlan/udp: the socket's UDP GRO (link/udp.ReadStats): recvmmsg
	// messages, of them GRO trains (several datagrams of one sender the
	// kernel coalesced) carrying RxGRODatagrams.
	RxMessages, RxGROMessages, RxGRODatagrams uint64

	// direct: super-frames the device moved whole (link.OffloadStats):
	// read and handed out whole by RecvGSO, written whole by SendGSO, and
	// cut by the device because the kernel refused them whole.
	RxWhole, TxWhole, TxWholeCut uint64
	// direct: frames the kernel dropped because the packet socket's
	// receive queue was full (the daemon fell behind a burst).
	RxQueueDrops uint64

	// The direct backend's underlay ARP table (arp.Stats).
	ARPSendErrors uint64 // ARP requests the underlay refused to send (not in TxErrors)
	ARPFailures   uint64 // peers that stopped answering ARP (arp.Stats.Failures)
	ARPTableFull  uint64 // new neighbours refused, table full (arp.Stats.TableFull)
	ARPMACChanges uint64 // peer MACs replaced after a conflict and a failed re-probe (arp.Stats.MACChanges)
}

// Map returns the counters under stable snake_case names, for metrics and
// taprouterctl.
func (s Stats) Map() map[string]uint64 {
	return map[string]uint64{
		"rx_packets":        s.RxPackets,
		"rx_bytes":          s.RxBytes,
		"tx_packets":        s.TxPackets,
		"tx_bytes":          s.TxBytes,
		"tx_errors":         s.TxErrors,
		"tx_resolved":       s.TxResolved,
		"drop_unknown_peer": s.DropUnknownPeer,
		"drop_bad_vni":      s.DropBadVNI,
		"drop_truncated":    s.DropTruncated,
		"drop_not_ipv4":     s.DropNotIPv4,
		"drop_malformed":    s.DropMalformed,
		"drop_bad_mac":      s.DropBadMAC,
		"drop_no_neighbour": s.DropNoNeighbour,
		"drop_oversize":     s.DropOversize,
		"drop_vlan":         s.DropVLAN,
		"ignored":           s.Ignored,
		"arp_requests":      s.ARPRequests,
		"arp_learned":       s.ARPLearned,
		"arp_conflicts":     s.ARPConflicts,
		"arp_unsolicited":   s.ARPUnsolicited,
		"csum_completed":    s.ChecksumsCompleted,
		"gso_split":         s.GSOSplit,
		"gso_segments":      s.GSOSegments,
		"arp_send_errors":   s.ARPSendErrors,
		"arp_failures":      s.ARPFailures,
		"arp_table_full":    s.ARPTableFull,
		"arp_mac_changes":   s.ARPMACChanges,
		"tx_messages":       s.TxMessages,
		"tx_gso_messages":   s.TxGSOMessages,
		"tx_gso_datagrams":  s.TxGSODatagrams,
		"tx_gso_refused":    s.TxGSORefused,
		"tx_gso_oversize":   s.TxGSOOversize,
		"rx_messages":       s.RxMessages,
		"rx_gro_messages":   s.RxGROMessages,
		"rx_gro_datagrams":  s.RxGRODatagrams,
		"rx_whole":          s.RxWhole,
		"tx_whole":          s.TxWhole,
		"tx_whole_cut":      s.TxWholeCut,
		"rx_queue_drops":    s.RxQueueDrops,
	}
}

// oversizeCounter is a transport that counts the datagrams or frames it
// received but dropped because they did not fit the caller's buffer, as
// link/udp.Conn and link/afpacket.Socket do.
type oversizeCounter interface {
	Dropped() uint64
}

// transportDrops returns the oversize drops of transport (a
// link.DatagramConn or link.Device), or 0 if it does not count them.
// Without it those drops would be invisible: on a real NIC with GRO or LRO
// on, merged frames are exactly this.
func transportDrops(transport any) uint64 {
	if c, ok := transport.(oversizeCounter); ok {
		return c.Dropped()
	}
	return 0
}

// drop is why a check rejects a received packet: the counter it goes to.
type drop uint8

const (
	dropNone drop = iota // not dropped
	dropTruncated
	dropNotIPv4
	dropMalformed
	dropBadVNI
	dropBadMAC
)

// countDrop counts a dropped packet in the tally.
func (t *Stats) countDrop(d drop) {
	switch d {
	case dropTruncated:
		t.DropTruncated++
	case dropNotIPv4:
		t.DropNotIPv4++
	case dropMalformed:
		t.DropMalformed++
	case dropBadVNI:
		t.DropBadVNI++
	case dropBadMAC:
		t.DropBadMAC++
	}
}

// accept counts a delivered inner packet in the tally.
func (t *Stats) accept(size int) {
	t.RxPackets++
	t.RxBytes += uint64(size)
}

// counters are the live counters behind Stats. Hot paths count into a local
// Stats (a tally) and publish it once per batch with add, which adds only
// the counters the batch moved. Send's (the pods' goroutines) and Recv's
// (the tunnel's) are on cache lines of their own, so that the two sides do
// not dirty each other's lines.
type counters struct {
	_                                                 [64]byte
	txPackets, txBytes, txErrors, txResolved          atomic.Uint64
	dropUnknownPeer, dropNoNeighbour                  atomic.Uint64
	_                                                 [64]byte
	rxPackets, rxBytes, checksumsCompleted            atomic.Uint64
	dropBadVNI, dropTruncated, dropNotIPv4            atomic.Uint64
	dropMalformed, dropBadMAC, dropVLAN, dropOversize atomic.Uint64
	gsoSplit, gsoSegments                             atomic.Uint64
	ignored, arpRequests, arpLearned, arpConflicts    atomic.Uint64
	arpSendErrors, arpUnsolicited                     atomic.Uint64
	_                                                 [64]byte
}

// add publishes a tally.
func (c *counters) add(t *Stats) {
	addNonZero(&c.rxPackets, t.RxPackets)
	addNonZero(&c.rxBytes, t.RxBytes)
	addNonZero(&c.txPackets, t.TxPackets)
	addNonZero(&c.txBytes, t.TxBytes)
	addNonZero(&c.txErrors, t.TxErrors)
	addNonZero(&c.txResolved, t.TxResolved)
	addNonZero(&c.dropUnknownPeer, t.DropUnknownPeer)
	addNonZero(&c.dropBadVNI, t.DropBadVNI)
	addNonZero(&c.dropTruncated, t.DropTruncated)
	addNonZero(&c.dropNotIPv4, t.DropNotIPv4)
	addNonZero(&c.dropMalformed, t.DropMalformed)
	addNonZero(&c.dropBadMAC, t.DropBadMAC)
	addNonZero(&c.dropNoNeighbour, t.DropNoNeighbour)
	addNonZero(&c.ignored, t.Ignored)
	addNonZero(&c.arpRequests, t.ARPRequests)
	addNonZero(&c.arpLearned, t.ARPLearned)
	addNonZero(&c.dropVLAN, t.DropVLAN)
	addNonZero(&c.arpConflicts, t.ARPConflicts)
	addNonZero(&c.checksumsCompleted, t.ChecksumsCompleted)
	addNonZero(&c.arpSendErrors, t.ARPSendErrors)
	addNonZero(&c.arpUnsolicited, t.ARPUnsolicited)
	addNonZero(&c.dropOversize, t.DropOversize)
	addNonZero(&c.gsoSplit, t.GSOSplit)
	addNonZero(&c.gsoSegments, t.GSOSegments)
}

func addNonZero(c *atomic.Uint64, v uint64) {
	if v != 0 {
		c.Add(v)
	}
}

func (c *counters) snapshot() Stats {
	return Stats{
		RxPackets:       c.rxPackets.Load(),
		RxBytes:         c.rxBytes.Load(),
		TxPackets:       c.txPackets.Load(),
		TxBytes:         c.txBytes.Load(),
		TxErrors:        c.txErrors.Load(),
		TxResolved:      c.txResolved.Load(),
		DropUnknownPeer: c.dropUnknownPeer.Load(),
		DropBadVNI:      c.dropBadVNI.Load(),
		DropTruncated:   c.dropTruncated.Load(),
		DropNotIPv4:     c.dropNotIPv4.Load(),
		DropMalformed:   c.dropMalformed.Load(),
		DropBadMAC:      c.dropBadMAC.Load(),
		DropNoNeighbour: c.dropNoNeighbour.Load(),
		Ignored:         c.ignored.Load(),
		ARPRequests:     c.arpRequests.Load(),
		ARPLearned:      c.arpLearned.Load(),
		DropVLAN:        c.dropVLAN.Load(),
		ARPConflicts:    c.arpConflicts.Load(),
		ARPSendErrors:   c.arpSendErrors.Load(),
		ARPUnsolicited:  c.arpUnsolicited.Load(),

		ChecksumsCompleted: c.checksumsCompleted.Load(),
		DropOversize:       c.dropOversize.Load(),
		GSOSplit:           c.gsoSplit.Load(),
		GSOSegments:        c.gsoSegments.Load(),
	}
}
