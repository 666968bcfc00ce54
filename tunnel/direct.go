package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
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
}

// Direct is the flannel host-gw backend: each inner IPv4 packet leaves as an
// Ethernet frame from LocalMAC to the peer node's underlay MAC, unchanged. It
// needs the peers on the same L2 segment. Peer MACs come from the backend's
// own ARP table on the underlay, not from the kernel's.
//
// The device (an AF_PACKET socket) also sees the kernel's own traffic on the
// interface. Recv takes only frames to LocalMAC, for an address in
// LocalPodCIDR, from a peer's MAC; everything else is the kernel's business
// and is ignored (counted as ignored), except ARP from peers, which feeds the
// table.
type Direct struct {
	dev     link.Device
	addr    netip.Addr
	mac     link.HardwareAddr
	podCIDR netip.Prefix
	table   *arp.Table
	peers   atomic.Pointer[directPeers]
	stats   counters

	mu   sync.Mutex                       // serializes peer snapshot writers
	macs map[netip.Addr]link.HardwareAddr // under mu: peer MACs seen in ARP
}

// directPeers is the peer snapshot plus the reverse map Recv needs: which
// peer a frame's source MAC belongs to.
type directPeers struct {
	peerSet
	mac   []link.HardwareAddr // per peer: its MAC as last seen in ARP, or zero
	byMAC map[link.HardwareAddr]uint32
}

var _ Tunnel = (*Direct)(nil)

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
		dev:     dev,
		addr:    cfg.LocalAddr,
		mac:     cfg.LocalMAC,
		podCIDR: cfg.LocalPodCIDR.Masked(),
		macs:    make(map[netip.Addr]link.HardwareAddr),
	}
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

// Tick implements Tunnel: it drives the underlay ARP table's timers.
func (d *Direct) Tick() { d.table.Tick() }

// Stats implements Tunnel. DropNoNeighbour includes the packets the ARP
// table dropped from full queues; DropOversize is the device's count.
func (d *Direct) Stats() Stats {
	s := d.stats.snapshot()
	s.DropNoNeighbour += d.table.Stats().QueueDrops
	s.DropOversize = transportDrops(d.dev)
	return s
}

// Neighbours returns the underlay ARP table, for taprouterctl.
func (d *Direct) Neighbours() []arp.Entry { return d.table.Entries() }

// SetPeers implements Tunnel. Removed peers' ARP entries are deleted.
//
// Every peer whose MAC is not known yet is sent an ARP request at once, so
// that its reply resolves it: Recv accepts a peer's frames only from a MAC
// learned by ARP, and a peer that only sends to this node (after a restart,
// with this node still in its neighbour cache) would otherwise be refused
// as drop_unknown_peer until it happens to ARP.
func (d *Direct) SetPeers(peers []Peer) {
	for _, a := range d.replacePeers(peers) {
		(*underlayARP)(d).SendRequest(arpPort, a, link.Broadcast)
	}
}

// replacePeers publishes the new peer set and returns the addresses of the
// peers whose MAC is unknown. The requests are sent after mu is released:
// a device write must not hold up Recv's learning.
func (d *Direct) replacePeers(peers []Peer) (unresolved []netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := newPeerSet(peers)
	for a := range d.macs {
		if _, ok := ps.byAddr[a]; !ok {
			delete(d.macs, a)
		}
	}
	if old := d.peers.Load(); old != nil {
		for a := range old.byAddr {
			if _, ok := ps.byAddr[a]; !ok {
				d.table.Remove(arpPort, a)
			}
		}
	}
	d.publish(ps)
	for i, p := range ps.peers {
		if first, ok := ps.byAddr[p.Addr]; !ok || first != uint32(i) || !p.Addr.Is4() {
			continue // no address, a duplicate, or not IPv4
		}
		if _, known := d.macs[p.Addr]; !known {
			unresolved = append(unresolved, p.Addr)
		}
	}
	return unresolved
}

// publish stores a snapshot of ps with the MACs known now. The caller holds mu.
func (d *Direct) publish(ps peerSet) {
	s := &directPeers{peerSet: ps, mac: make([]link.HardwareAddr, len(ps.peers)), byMAC: make(map[link.HardwareAddr]uint32)}
	for i, p := range s.peers {
		mac, ok := d.macs[p.Addr]
		if !ok {
			continue
		}
		s.mac[i] = mac
		if _, dup := s.byMAC[mac]; !dup {
			s.byMAC[mac] = uint32(i)
		}
	}
	d.peers.Store(s)
}

// Send implements Tunnel. A packet whose peer MAC is not resolved yet is
// queued in the ARP table and sent when the peer answers, or dropped and
// counted as drop_no_neighbour when it does not.
func (d *Direct) Send(bufs [][]byte, peers []uint32, offset int) (int, error) {
	if offset < ethHeaderLen {
		return 0, errShortHeadroom
	}
	ps := d.peers.Load()
	b := getBatch(len(bufs))
	defer putBatch(b)
	var t Stats
	for i, buf := range bufs {
		p := peers[i]
		if int(p) >= len(ps.peers) {
			t.DropUnknownPeer++
			continue
		}
		frame := buf[offset-ethHeaderLen:]
		copy(frame[6:12], d.mac[:])
		binary.BigEndian.PutUint16(frame[12:14], ethTypeIPv4)
		mac, ok := d.table.Lookup(arpPort, ps.peers[p].Addr)
		if !ok {
			d.table.Enqueue(arpPort, ps.peers[p].Addr, frame) // copies; Resolved sets the destination
			continue
		}
		copy(frame[0:6], mac[:])
		b.bufs = append(b.bufs, buf)
	}
	var n int
	var err error
	if len(b.bufs) > 0 {
		n, err = d.dev.Write(b.bufs, offset-ethHeaderLen)
		countSent(b.bufs, n, offset, &t)
	}
	d.stats.add(&t)
	return n, err
}

// Recv implements Tunnel.
func (d *Direct) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	n, err := d.dev.Read(bufs, sizes, offset)
	var t Stats
	for i := range n {
		// Loaded per frame: an ARP frame earlier in the batch may have
		// taught us the MAC of the peer that sent the next one.
		ps := d.peers.Load()
		sizes[i], peers[i] = d.decap(ps, bufs[i][offset:offset+sizes[i]], &t)
		starts[i] = offset + ethHeaderLen
	}
	d.stats.add(&t)
	return n, err
}

// decap checks one underlay frame f and returns the inner packet's size (0
// if dropped, ignored or consumed, counted in t) and its peer index.
func (d *Direct) decap(ps *directPeers, f []byte, t *Stats) (int, uint32) {
	if len(f) < ethHeaderLen {
		t.DropTruncated++
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
	peer, ok := ps.byMAC[link.HardwareAddr(f[6:12])]
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	d.table.Confirm(arpPort, ps.peers[peer].Addr)
	t.accept(size)
	return size, peer
}
