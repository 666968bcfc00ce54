package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
)

// VXLAN defaults: flannel's VNI and port. The IANA port is 4789.
const (
	DefaultVXLANVNI  = 1
	DefaultVXLANPort = 8472
)

const (
	vxlanHeaderLen = 8
	vxlanHeadroom  = vxlanHeaderLen + ethHeaderLen // 22
	vxlanFlagI     = 0x08                          // "VNI is valid", RFC 7348 section 5
	vxlanMaxVNI    = 1<<24 - 1
)

// VXLANConfig configures the vxlan backend.
type VXLANConfig struct {
	// VNI is the VXLAN network identifier; 0 means DefaultVXLANVNI.
	VNI uint32
	// Port is the peers' UDP port; 0 means DefaultVXLANPort. The local
	// socket's port is whatever the DatagramConn is bound to.
	Port uint16
	// LocalMAC is this node's VTEP MAC: the source MAC of inner frames and
	// the only unicast inner destination accepted. Usually VTEPMAC(node IP).
	LocalMAC link.HardwareAddr
}

// VXLAN is the RFC 7348 backend. Each inner IPv4 packet travels as
// outer IPv4 | UDP | VXLAN (I flag, VNI) | Ethernet (peer VTEP MAC, LocalMAC,
// 0x0800) | inner packet, which is what a Linux vxlan device (flannel.1)
// sends and expects.
type VXLAN struct {
	conn  link.DatagramConn
	vni   uint32
	port  uint16
	local link.HardwareAddr
	peers atomic.Pointer[vxlanPeers]
	stats counters
}

// vxlanPeers is the peer snapshot plus what Send writes for each peer.
type vxlanPeers struct {
	peerSet
	dst    []netip.AddrPort      // peer address : Port
	header [][vxlanHeadroom]byte // VXLAN header + inner Ethernet header
}

var _ Tunnel = (*VXLAN)(nil)

// NewVXLAN returns a vxlan backend sending and receiving through conn, a UDP
// socket bound to this node's underlay address and VXLAN port. The backend
// owns conn: Close closes it.
func NewVXLAN(conn link.DatagramConn, cfg VXLANConfig) (*VXLAN, error) {
	if cfg.VNI == 0 {
		cfg.VNI = DefaultVXLANVNI
	}
	if cfg.VNI > vxlanMaxVNI {
		return nil, fmt.Errorf("tunnel: vxlan VNI %d does not fit in 24 bits", cfg.VNI)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultVXLANPort
	}
	if cfg.LocalMAC.IsZero() {
		return nil, errors.New("tunnel: vxlan needs LocalMAC, this node's VTEP MAC (see VTEPMAC)")
	}
	v := &VXLAN{conn: conn, vni: cfg.VNI, port: cfg.Port, local: cfg.LocalMAC}
	v.SetPeers(nil)
	return v, nil
}

func (v *VXLAN) Name() string  { return NameVXLAN }
func (v *VXLAN) Overhead() int { return OverheadVXLAN }
func (v *VXLAN) Headroom() int { return vxlanHeadroom }
func (v *VXLAN) Tick()         {}
func (v *VXLAN) Stats() Stats  { return v.stats.snapshot() }
func (v *VXLAN) Close() error  { return v.conn.Close() }

// SetPeers implements Tunnel. A peer with a zero VTEPMAC gets VTEPMAC(Addr).
func (v *VXLAN) SetPeers(peers []Peer) {
	s := &vxlanPeers{
		peerSet: newPeerSet(peers),
		dst:     make([]netip.AddrPort, len(peers)),
		header:  make([][vxlanHeadroom]byte, len(peers)),
	}
	for i, p := range s.peers {
		s.dst[i] = netip.AddrPortFrom(p.Addr, v.port)
		mac := p.VTEPMAC
		if mac.IsZero() {
			mac = VTEPMAC(p.Addr)
		}
		h := &s.header[i]
		h[0] = vxlanFlagI
		binary.BigEndian.PutUint32(h[4:8], v.vni<<8)
		copy(h[8:14], mac[:])
		copy(h[14:20], v.local[:])
		binary.BigEndian.PutUint16(h[20:22], ethTypeIPv4)
	}
	v.peers.Store(s)
}

// Send implements Tunnel.
func (v *VXLAN) Send(bufs [][]byte, peers []uint32, offset int) (int, error) {
	if offset < vxlanHeadroom {
		return 0, errShortHeadroom
	}
	ps := v.peers.Load()
	b := getBatch(len(bufs))
	defer putBatch(b)
	var t Stats
	for i, buf := range bufs {
		p := peers[i]
		if int(p) >= len(ps.peers) {
			t.DropUnknownPeer++
			continue
		}
		copy(buf[offset-vxlanHeadroom:offset], ps.header[p][:])
		b.addrs[len(b.bufs)] = ps.dst[p]
		b.bufs = append(b.bufs, buf)
	}
	n, err := sendBatch(v.conn, b, offset, offset-vxlanHeadroom, &t)
	v.stats.add(&t)
	return n, err
}

// Recv implements Tunnel.
func (v *VXLAN) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	b := getBatch(len(bufs))
	defer putBatch(b)
	n, err := v.conn.ReadFrom(bufs, sizes, b.addrs, offset)
	ps := v.peers.Load()
	var t Stats
	for i := range n {
		sizes[i], peers[i] = v.decap(ps, bufs[i][offset:offset+sizes[i]], b.addrs[i], &t)
		starts[i] = offset + vxlanHeadroom
	}
	v.stats.add(&t)
	return n, err
}

// decap checks one datagram d from src and returns the inner packet's size
// (0 if dropped, counted in t) and its peer index.
func (v *VXLAN) decap(ps *vxlanPeers, d []byte, src netip.AddrPort, t *Stats) (int, uint32) {
	peer, ok := ps.lookup(src.Addr())
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	if len(d) < vxlanHeaderLen {
		t.DropTruncated++
		return 0, 0
	}
	// The reserved bits are ignored on receipt (RFC 7348 section 5).
	if d[0]&vxlanFlagI == 0 || binary.BigEndian.Uint32(d[4:8])>>8 != v.vni {
		t.DropBadVNI++
		return 0, 0
	}
	if len(d) < vxlanHeadroom {
		t.DropTruncated++
		return 0, 0
	}
	if dst := link.HardwareAddr(d[8:14]); dst != v.local && dst != link.Broadcast {
		t.DropBadMAC++
		return 0, 0
	}
	if binary.BigEndian.Uint16(d[20:22]) != ethTypeIPv4 {
		t.DropNotIPv4++
		return 0, 0
	}
	size, reason := checkIPv4(d[vxlanHeadroom:])
	if reason != dropNone {
		t.countDrop(reason)
		return 0, 0
	}
	t.accept(size)
	return size, peer
}
