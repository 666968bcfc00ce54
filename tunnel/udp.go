package tunnel

import (
	"net/netip"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
)

// DefaultUDPPort is flannel's udp backend port.
const DefaultUDPPort = 8285

// UDPConfig configures the udp backend.
type UDPConfig struct {
	// Port is the peers' UDP port; 0 means DefaultUDPPort.
	Port uint16
}

// UDP is IP-in-UDP, flannel's old udp backend: the datagram payload is the
// inner IPv4 packet, with no header of its own.
type UDP struct {
	conn  link.DatagramConn
	port  uint16
	peers atomic.Pointer[udpPeers]
	stats counters
}

type udpPeers struct {
	peerSet
	dst []netip.AddrPort // peer address : Port
}

var _ Tunnel = (*UDP)(nil)

// NewUDP returns a udp backend sending and receiving through conn, a UDP
// socket bound to this node's underlay address and port. The backend owns
// conn: Close closes it.
func NewUDP(conn link.DatagramConn, cfg UDPConfig) (*UDP, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultUDPPort
	}
	u := &UDP{conn: conn, port: cfg.Port}
	u.SetPeers(nil)
	return u, nil
}

func (u *UDP) Name() string  { return NameUDP }
func (u *UDP) Overhead() int { return OverheadUDP }
func (u *UDP) Headroom() int { return 0 }
func (u *UDP) Tick()         {}
func (u *UDP) Stats() Stats  { return u.stats.snapshot() }
func (u *UDP) Close() error  { return u.conn.Close() }

// SetPeers implements Tunnel.
func (u *UDP) SetPeers(peers []Peer) {
	s := &udpPeers{peerSet: newPeerSet(peers), dst: make([]netip.AddrPort, len(peers))}
	for i, p := range s.peers {
		s.dst[i] = netip.AddrPortFrom(p.Addr, u.port)
	}
	u.peers.Store(s)
}

// Send implements Tunnel.
func (u *UDP) Send(bufs [][]byte, peers []uint32, offset int) (int, error) {
	ps := u.peers.Load()
	b := getBatch(len(bufs))
	defer putBatch(b)
	var t Stats
	for i, buf := range bufs {
		p := peers[i]
		if int(p) >= len(ps.peers) {
			t.DropUnknownPeer++
			continue
		}
		b.addrs[len(b.bufs)] = ps.dst[p]
		b.bufs = append(b.bufs, buf)
	}
	n, err := sendBatch(u.conn, b, offset, offset, &t)
	u.stats.add(&t)
	return n, err
}

// Recv implements Tunnel.
func (u *UDP) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	b := getBatch(len(bufs))
	defer putBatch(b)
	n, err := u.conn.ReadFrom(bufs, sizes, b.addrs, offset)
	ps := u.peers.Load()
	var t Stats
	for i := range n {
		sizes[i], peers[i] = u.decap(ps, bufs[i][offset:offset+sizes[i]], b.addrs[i], &t)
		starts[i] = offset
	}
	u.stats.add(&t)
	return n, err
}

func (u *UDP) decap(ps *udpPeers, d []byte, src netip.AddrPort, t *Stats) (int, uint32) {
	peer, ok := ps.lookup(src.Addr())
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	size, reason := checkIPv4(d)
	if reason != dropNone {
		t.countDrop(reason)
		return 0, 0
	}
	t.accept(size)
	return size, peer
}
