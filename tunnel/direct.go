package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
)

// arpPort is the port number of the underlay in the backend's own ARP table.
const arpPort = 0

// DirectConfig configures the direct backend.
type DirectConfig struct {
	LocalAddr    netip.Addr        // this node's underlay IPv4 address
	LocalMAC     link.HardwareAddr // the underlay interface's MAC
	LocalPodCIDR netip.Prefix      // this node's pod range: what peers send us
	ARP          arp.Config        // zero means arp.DefaultConfig()
	Clock        arp.Clock         // nil means arp.SystemClock{}
	// OnConflict, if set, is called (from Recv, without locks held) when
	// an ARP packet claims a peer's address from a MAC other than the one
	// the table knows, once per re-probe the claim starts (see
	// arp.Table.Learn), for the daemon to log. Every such packet is
	// counted in Stats.ARPConflicts.
	OnConflict func(peer netip.Addr, known, claimed link.HardwareAddr)
	// MTU is the inner MTU (the pod MTU): Recv splits a TSO super-frame
	// that a device kept whole beyond its buffer (link.LargeReader) into
	// segments of at most MTU bytes; 0 means as large as Recv's buffers
	// allow. The AF_PACKET socket cuts super-frames itself (by their
	// segment size, at most the underlay MTU), so with it this is unused.
	MTU int
}

// Direct is the flannel host-gw backend: each inner IPv4 packet leaves as an
// Ethernet frame from LocalMAC to the peer node's underlay MAC, unchanged. It
// needs the peers on the same L2 segment. Peer MACs come from the backend's
// own ARP table on the underlay, not from the kernel's.
//
// The device (an AF_PACKET socket) also sees the kernel's own traffic on the
// interface. Recv takes only untagged IPv4 frames to LocalMAC for an address
// in LocalPodCIDR; everything else is the kernel's business and is ignored
// (counted as ignored), except ARP from peers, which feeds the table, and
// frames with an 802.1Q tag, which belong to a VLAN and are dropped
// (drop_vlan). A frame belongs to the peer whose pod range (or node
// address) holds its inner source, whatever source MAC it came from, as the
// kernel's host-gw routes accept it: an impostor answering ARP for a peer
// cannot make the real peer's frames unknown. A frame whose inner source is
// in no peer's range is recognised by its source MAC, a peer's as the ARP
// table knows it. A source MAC other than the table's for that peer does
// not confirm the peer's ARP entry.
type Direct struct {
	dev        link.Device
	metaDev    link.MetaReader // dev, if it reports VLAN tags and partial checksums
	gsoDev     link.GSODevice  // dev, if it moves super-frames whole
	addr       netip.Addr
	mac        link.HardwareAddr
	podCIDR    netip.Prefix
	table      *arp.Table
	onConflict func(peer netip.Addr, known, claimed link.HardwareAddr)
	peers      atomic.Pointer[directPeers]
	stats      counters

	large  link.LargeReader // dev, if it keeps frames longer than the buffer
	recvMu sync.Mutex       // serialises Recv: the queue, and dev's large buffer until split
	queue  recvQueue

	mu   sync.Mutex                       // serializes peer snapshot writers
	macs map[netip.Addr]link.HardwareAddr // under mu: peer MACs seen in ARP
}

// directPeers is the peer snapshot plus the reverse maps Recv needs: which
// peer's pod range holds a frame's inner source, and, for peers without a
// pod range, which peer a frame's source MAC belongs to.
type directPeers struct {
	peerSet
	mac    []link.HardwareAddr          // per slot: the peer's MAC in the ARP table, or zero
	byMAC  map[link.HardwareAddr]uint32 // MAC → peer ID
	byCIDR map[netip.Prefix]uint32      // masked pod range → peer ID (first wins)
	bits   []int                        // the distinct prefix lengths in byCIDR, longest first
}

// source returns the ID of the peer that sent an inner packet from src: the peer
// whose pod range holds src (longest prefix first), or whose node address
// src is.
func (s *directPeers) source(src netip.Addr) (uint32, bool) {
	for _, bits := range s.bits {
		p, _ := src.Prefix(bits)
		if i, ok := s.byCIDR[p]; ok {
			return i, true
		}
	}
	return s.lookup(src)
}

var _ GSOTunnel = (*Direct)(nil)

// NewDirect returns a direct backend sending and receiving Ethernet frames
// through dev, an AF_PACKET device on the underlay interface. The backend
// owns dev: Close closes it.
func NewDirect(dev link.Device, cfg DirectConfig) (*Direct, error) {
	if !cfg.LocalAddr.Is4() {
		return nil, fmt.Errorf("tunnel: direct needs LocalAddr, this node's underlay IPv4 address (got %v)", cfg.LocalAddr)
	}
	if cfg.LocalMAC.IsZero() {
		return nil, errors.New("tunnel: direct needs LocalMAC, the underlay interface's MAC")
	}
	if !cfg.LocalPodCIDR.IsValid() || !cfg.LocalPodCIDR.Addr().Is4() {
		return nil, fmt.Errorf("tunnel: direct needs LocalPodCIDR, this node's IPv4 pod range (got %v)", cfg.LocalPodCIDR)
	}
	if cfg.ARP == (arp.Config{}) {
		cfg.ARP = arp.DefaultConfig()
	}
	if cfg.Clock == nil {
		cfg.Clock = arp.SystemClock{}
	}
	d := &Direct{
		dev:        dev,
		addr:       cfg.LocalAddr,
		mac:        cfg.LocalMAC,
		podCIDR:    cfg.LocalPodCIDR.Masked(),
		onConflict: cfg.OnConflict,
		macs:       make(map[netip.Addr]link.HardwareAddr),
	}
	d.metaDev, _ = dev.(link.MetaReader)
	if g, ok := dev.(link.GSODevice); ok && g.GSO() {
		d.gsoDev = g
	}
	d.large, _ = dev.(link.LargeReader)
	d.queue.mtu = cfg.MTU
	table, err := arp.New(cfg.ARP, (*underlayARP)(d), cfg.Clock)
	if err != nil {
		return nil, fmt.Errorf("tunnel: direct: %w", err)
	}
	d.table = table
	d.SetPeers(nil)
	return d, nil
}

func (d *Direct) Name() string  { return NameDirect }
func (d *Direct) Overhead() int { return OverheadDirect }
func (d *Direct) Headroom() int { return ethHeaderLen }
func (d *Direct) Close() error  { return d.dev.Close() }

// Tick implements Tunnel: it drives the underlay ARP table's timers, and
// follows a peer MAC the table replaced (after a conflict whose known MAC
// stopped answering).
func (d *Direct) Tick() {
	d.table.Tick()
	ps := d.peers.Load()
	for i, p := range ps.peers {
		if !ps.live[i] {
			continue
		}
		if mac, state, ok := d.table.Peek(arpPort, p.Addr); ok && state.Valid() && mac != ps.mac[i] {
			d.notePeerMAC(p.Addr, mac)
		}
	}
}

// Stats implements Tunnel. DropNoNeighbour includes the packets the ARP
// table dropped from full queues; DropOversize includes the device's count; the
// ARP table's own counters are the ARP* ones named after arp.Stats; the
// device's super-frames (link.OffloadCounter) are in TxGSO* (coalesced and
// written), in GSOSplit and GSOSegments (cut on read), in RxWhole, TxWhole
// and TxWholeCut (moved whole), the partial checksums it completed in
// ChecksumsCompleted.
func (d *Direct) Stats() Stats {
	s := d.stats.snapshot()
	a := d.table.Stats()
	s.DropNoNeighbour += a.QueueDrops
	s.ARPFailures = a.Failures
	s.ARPTableFull = a.TableFull
	s.ARPMACChanges = a.MACChanges
	s.DropOversize += transportDrops(d.dev)
	if q, ok := d.dev.(interface{ QueueDrops() uint64 }); ok {
		s.RxQueueDrops = q.QueueDrops()
	}
	if c, ok := d.dev.(link.OffloadCounter); ok {
		o := c.OffloadStats()
		s.TxGSOMessages, s.TxGSODatagrams, s.TxGSORefused = o.Coalesced, o.CoalescedFrames, o.CoalesceRefused
		s.RxWhole, s.TxWhole, s.TxWholeCut = o.ReadWhole, o.WrittenWhole, o.WriteCut
		s.GSOSplit += o.SuperFrames
		s.GSOSegments += o.Segments
		s.ChecksumsCompleted += o.Checksums - o.Segments // every segment's is counted too
	}
	return s
}

// Neighbours returns the underlay ARP table, for taprouterctl.
func (d *Direct) Neighbours() []arp.Entry { return d.table.Entries() }

// SetPeers implements Tunnel. Removed peers' ARP entries are deleted.
//
// Every peer is kept in the underlay ARP table (arp.Table.Keep): a new
// peer gets an Incomplete entry and a broadcast request at once, and an
// idle peer's entry is re-probed instead of collected. The table creates
// no entry from a reply nobody asked for, so the peer's reply must be to
// a request of ours; and a peer's entry that stays keeps a known MAC for
// the conflict defence, where a collected one would let the first
// unsolicited claim for its address win. Resolving at once also matters
// because a peer without a pod range is recognised only by a MAC learned
// by ARP, and one that only sends to this node (after a restart, with this
// node still in its neighbour cache) would otherwise be refused as
// drop_unknown_peer until it happens to ARP; and Recv confirms a peer's
// entry only from its known MAC.
func (d *Direct) SetPeers(peers []Peer) {
	for _, a := range d.replacePeers(peers) {
		d.table.Keep(arpPort, a)
	}
}

// replacePeers publishes the new peer set and returns the peers' IPv4
// addresses. The table is told to keep them after mu is released: the
// request for a new peer is a device write, which must not hold up Recv's
// learning.
func (d *Direct) replacePeers(peers []Peer) (addrs []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := newPeerSet(peers)
	for a := range d.macs {
		if _, ok := ps.byAddr[a]; !ok {
			delete(d.macs, a)
		}
	}
	if old := d.peers.Load(); old != nil {
		// An address gone, or now another peer's (another ID): its entry
		// goes, with the packets queued for its resolution, which are
		// for the old peer's pods (found by attack review).
		for a, oldID := range old.byAddr {
			if id, ok := ps.byAddr[a]; !ok || id != oldID {
				delete(d.macs, a)
				d.table.Remove(arpPort, a)
			}
		}
	}
	d.publish(ps)
	for i, p := range ps.peers {
		if first, ok := ps.byAddr[p.Addr]; ok && ps.live[i] && first == p.ID && p.Addr.Is4() {
			addrs = append(addrs, p.Addr)
		}
	}
	return addrs
}

// publish stores a snapshot of ps with the MACs known now. The caller holds mu.
func (d *Direct) publish(ps peerSet) {
	s := &directPeers{peerSet: ps, mac: make([]link.HardwareAddr, len(ps.peers)), byMAC: make(map[link.HardwareAddr]uint32), byCIDR: make(map[netip.Prefix]uint32)}
	for i, p := range s.peers {
		if !s.live[i] {
			continue
		}
		for _, c := range p.PodCIDRs {
			if c = c.Masked(); !c.IsValid() || !c.Addr().Is4() {
				continue
			}
			if _, dup := s.byCIDR[c]; !dup {
				s.byCIDR[c] = p.ID
				if !slices.Contains(s.bits, c.Bits()) {
					s.bits = append(s.bits, c.Bits())
				}
			}
		}
		mac, ok := d.macs[p.Addr]
		if !ok {
			continue
		}
		s.mac[i] = mac
		if _, dup := s.byMAC[mac]; !dup {
			s.byMAC[mac] = p.ID
		}
	}
	slices.SortFunc(s.bits, func(a, b int) int { return b - a })
	d.peers.Store(s)
}

// Send implements Tunnel. A packet whose peer MAC is not resolved yet is
// queued in the ARP table and sent when the peer answers, or dropped and
// counted as drop_no_neighbour when it does not.
func (d *Direct) Send(bufs [][]byte, peers []uint32, offset int) (int, error) {
	return d.send(bufs, nil, peers, offset)
}

// GSO implements GSOTunnel: the device moves super-frames whole.
func (d *Direct) GSO() bool { return d.gsoDev != nil }

// SendsWhole implements GSOTunnel: the peer is known and its MAC resolved.
func (d *Direct) SendsWhole(peer uint32) bool {
	ps := d.peers.Load()
	p, ok := ps.slot(peer)
	if !ok || d.gsoDev == nil {
		return false
	}
	_, ok = d.table.Lookup(arpPort, ps.peers[p].Addr)
	return ok
}

// SendGSO implements GSOTunnel: Send, a super-frame written whole. One
// whose peer's MAC is not resolved (SendsWhole said it was, and it went
// since) is dropped as its segments, in drop_no_neighbour: the ARP queue
// holds segments, not 64 KB frames.
func (d *Direct) SendGSO(bufs [][]byte, gso []link.GSO, peers []uint32, offset int) (int, error) {
	if d.gsoDev == nil {
		return 0, errors.New("tunnel: direct: the device does not move super-frames")
	}
	return d.send(bufs, gso, peers, offset)
}

// send is Send (gso nil: every packet plain, written with Write) and
// SendGSO (written with WriteGSO; counts are segments).
func (d *Direct) send(bufs [][]byte, gso []link.GSO, peers []uint32, offset int) (int, error) {
	if offset < ethHeaderLen {
		return 0, errShortHeadroom
	}
	ps := d.peers.Load()
	b := getBatch(len(bufs))
	defer putBatch(b)
	var t Stats
	for i, buf := range bufs {
		var g link.GSO
		if gso != nil {
			g = gso[i]
		}
		segs := link.Segments(buf[offset:], g)
		p, ok := ps.slot(peers[i])
		if !ok || !ps.owns(p, buf[offset:]) {
			t.DropUnknownPeer += uint64(segs)
			continue
		}
		frame := buf[offset-ethHeaderLen:]
		copy(frame[6:12], d.mac[:])
		binary.BigEndian.PutUint16(frame[12:14], ethTypeIPv4)
		mac, ok := d.table.Lookup(arpPort, ps.peers[p].Addr)
		if !ok {
			if g.Type != link.GSONone {
				t.DropNoNeighbour += uint64(segs)
				continue
			}
			d.table.Enqueue(arpPort, ps.peers[p].Addr, frame) // copies; Resolved sets the destination
			continue
		}
		copy(frame[0:6], mac[:])
		b.bufs = append(b.bufs, buf)
		if gso != nil {
			b.gso = append(b.gso, g)
		}
	}
	if len(b.bufs) == 0 {
		d.stats.add(&t)
		return 0, nil
	}
	var n int
	var err error
	if gso == nil {
		n, err = d.dev.Write(b.bufs, offset-ethHeaderLen)
		countSent(b.bufs, n, offset, &t)
	} else {
		n, err = d.gsoDev.WriteGSO(b.bufs, b.gso, offset-ethHeaderLen)
		n = max(0, min(n, len(b.bufs)))
		sent := countSentGSO(b.bufs[:n], b.gso[:n], offset, &t)
		t.TxErrors += uint64(countSentGSO(b.bufs[n:], b.gso[n:], offset, &Stats{}))
		n = sent
	}
	d.stats.add(&t)
	return n, err
}

// RecvGSO implements GSOTunnel: Recv, a super-frame from the underlay
// handed out whole (its checksum left partial, as the device left it).
// Its segments count in RxPackets.
func (d *Direct) RecvGSO(bufs [][]byte, sizes, starts []int, peers []uint32, gso []link.GSO, offset int) (int, error) {
	if d.gsoDev == nil {
		clear(gso[:len(bufs)])
		return d.Recv(bufs, sizes, starts, peers, offset)
	}
	d.recvMu.Lock()
	defer d.recvMu.Unlock()
	var t Stats
	if d.queue.active() {
		// Left by a Recv before: plain packets.
		n := d.queue.drain(bufs, sizes, starts, peers, offset+ethHeaderLen, &t)
		clear(gso[:n])
		d.stats.add(&t)
		return n, nil
	}
	b := getBatch(0)
	defer putBatch(b)
	meta := b.metaFor(len(bufs))
	n, err := d.gsoDev.ReadGSO(bufs, sizes, meta, gso, offset)
	for i := range n {
		var f []byte
		if gso[i].Type != link.GSONone {
			f = d.gsoDev.SuperFrame()[offset : offset+sizes[i]]
		} else {
			f = bufs[i][offset : offset+min(sizes[i], len(bufs[i])-offset)]
		}
		// Loaded per frame: an ARP frame earlier in the batch may have
		// taught us the MAC of the peer that sent the next one.
		size, peer := d.decap(d.peers.Load(), f, meta[i], gso[i].Type != link.GSONone, &t)
		sizes[i], peers[i], starts[i] = size, peer, offset+ethHeaderLen
		if size > 0 {
			t.RxPackets += uint64(link.Segments(f[ethHeaderLen:ethHeaderLen+size], gso[i]))
			t.RxBytes += uint64(size)
		}
	}
	d.stats.add(&t)
	return n, err
}

// SuperFrame implements GSOTunnel.
func (d *Direct) SuperFrame() []byte {
	if d.gsoDev == nil {
		return nil
	}
	return d.gsoDev.SuperFrame()
}

// Recv implements Tunnel. On a device that reports frame metadata (the
// AF_PACKET socket's PACKET_AUXDATA), VLAN-tagged frames are dropped and
// the TCP and UDP checksums of frames marked partial are completed. A frame
// longer than its buffer (a TSO frame, kept whole by a link.LargeReader
// device) is split into segments of the inner MTU, handed out by this and
// the following Recv calls before the device is read again (see
// recvQueue). Recv calls are serialised.
func (d *Direct) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	d.recvMu.Lock()
	defer d.recvMu.Unlock()
	var t Stats
	if d.queue.active() {
		n := d.queue.drain(bufs, sizes, starts, peers, offset+ethHeaderLen, &t)
		d.stats.add(&t)
		return n, nil
	}
	b := getBatch(0)
	defer putBatch(b)
	meta := b.metaFor(len(bufs))
	var n int
	var err error
	if d.metaDev != nil {
		n, err = d.metaDev.ReadMeta(bufs, sizes, meta, offset)
	} else {
		n, err = d.dev.Read(bufs, sizes, offset)
	}
	first := -1 // the first slot queued
	for i := range n {
		room := len(bufs[i]) - offset - ethHeaderLen
		f, large := received(bufs[i][offset:], sizes[i], d.large, i, &t)
		var size int
		var peer uint32
		if f != nil {
			// Loaded per frame: an ARP frame earlier in the batch may
			// have taught us the MAC of the peer that sent the next one.
			size, peer = d.decap(d.peers.Load(), f, meta[i], large, &t)
		}
		sizes[i], peers[i], starts[i] = 0, peer, offset+ethHeaderLen
		if size == 0 {
			continue
		}
		if d.queue.place(f[ethHeaderLen:ethHeaderLen+size], peer, large, room, len(bufs), &t) {
			sizes[i] = size
		} else if first < 0 {
			first = i
		}
	}
	n = d.queue.fill(n, first, bufs, sizes, starts, peers, offset+ethHeaderLen, &t)
	d.stats.add(&t)
	return n, err
}

// decap checks one underlay frame f, received with metadata meta, and
// returns the inner packet's size (0 if dropped, ignored or consumed,
// counted in t) and its peer's ID. It does not count a packet it accepts:
// Recv delivers or queues it. It completes a partial checksum, except in a
// large frame, which Recv splits (the segments get checksums of their own).
func (d *Direct) decap(ps *directPeers, f []byte, meta link.RxMeta, large bool, t *Stats) (int, uint32) {
	if len(f) < ethHeaderLen {
		t.DropTruncated++
		return 0, 0
	}
	if meta&link.RxVLAN != 0 {
		t.DropVLAN++ // another network's, ARP included
		return 0, 0
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case ethTypeIPv4:
	case ethTypeARP:
		d.learn(ps, f[ethHeaderLen:], t)
		return 0, 0
	default:
		t.Ignored++
		return 0, 0
	}
	if link.HardwareAddr(f[0:6]) != d.mac {
		t.Ignored++ // for another host, or broadcast/multicast
		return 0, 0
	}
	size, reason := checkIPv4(f[ethHeaderLen:])
	if reason != dropNone {
		t.countDrop(reason)
		return 0, 0
	}
	if !d.podCIDR.Contains(netip.AddrFrom4([4]byte(f[ethHeaderLen+16 : ethHeaderLen+20]))) {
		t.Ignored++ // for the node itself
		return 0, 0
	}
	src := link.HardwareAddr(f[6:12])
	peer, ok := ps.source(netip.AddrFrom4([4]byte(f[ethHeaderLen+12 : ethHeaderLen+16])))
	if !ok {
		peer, ok = ps.byMAC[src]
	}
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	slot, ok := ps.slot(peer)
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	if src == ps.mac[slot] {
		d.table.Confirm(arpPort, ps.peers[slot].Addr)
	}
	if !large && meta&link.RxChecksumPartial != 0 && completeChecksum(f[ethHeaderLen:ethHeaderLen+size], completeAlways) {
		t.ChecksumsCompleted++
	}
	return size, peer
}
