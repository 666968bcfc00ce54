package tunnel

import (
	"net/netip"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
)

// encapsulation is what a backend over UDP puts around an inner packet: a
// fixed-length header, the same for every packet to one peer.
type encapsulation interface {
	// headerLen is the length of the header, in front of the inner packet.
	headerLen() int
	// writeHeader writes the header of packets to peer p into h.
	writeHeader(h []byte, p Peer)
	// checkHeader checks the header at the start of datagram d, from a
	// known peer, and returns why d is dropped, or dropNone: then d is at
	// least headerLen long.
	checkHeader(d []byte) drop
}

// datagramBackend is the part of the vxlan and udp backends that does not
// depend on the wire format: the UDP socket, the peer snapshot with each
// peer's socket address and header, and Send and Recv. The encapsulation
// supplies the header; datagramBackend checks the inner packet behind it.
type datagramBackend struct {
	conn   link.DatagramConn
	port   uint16 // the peers' UDP port
	encap  encapsulation
	hdrLen int // encap.headerLen(), kept for the hot path
	peers  atomic.Pointer[datagramPeers]
	stats  counters
}

// datagramPeers is the peer snapshot plus what Send writes for each peer.
type datagramPeers struct {
	peerSet
	dst    []netip.AddrPort // peer address : port
	header []byte           // peer i's header is header[i*hdrLen:][:hdrLen]
}

// init sets b up with no peers.
func (b *datagramBackend) init(conn link.DatagramConn, port uint16, encap encapsulation) {
	b.conn, b.port, b.encap, b.hdrLen = conn, port, encap, encap.headerLen()
	b.SetPeers(nil)
}

// Headroom implements Tunnel: the encapsulation's header length.
func (b *datagramBackend) Headroom() int { return b.hdrLen }

func (b *datagramBackend) Tick()        {}
func (b *datagramBackend) Close() error { return b.conn.Close() }

// Stats implements Tunnel. DropOversize is the socket's count.
func (b *datagramBackend) Stats() Stats {
	s := b.stats.snapshot()
	s.DropOversize = transportDrops(b.conn)
	return s
}

// SetPeers implements Tunnel.
func (b *datagramBackend) SetPeers(peers []Peer) {
	hl := b.hdrLen
	s := &datagramPeers{
		peerSet: newPeerSet(peers),
		dst:     make([]netip.AddrPort, len(peers)),
		header:  make([]byte, len(peers)*hl),
	}
	for i, p := range s.peers {
		s.dst[i] = netip.AddrPortFrom(p.Addr, b.port)
		b.encap.writeHeader(s.header[i*hl:][:hl], p)
	}
	b.peers.Store(s)
}

// Send implements Tunnel.
func (b *datagramBackend) Send(bufs [][]byte, peers []uint32, offset int) (int, error) {
	hl := b.hdrLen
	if offset < hl {
		return 0, errShortHeadroom
	}
	ps := b.peers.Load()
	kept := getBatch(len(bufs))
	defer putBatch(kept)
	var t Stats
	for i, buf := range bufs {
		p := int(peers[i])
		if p >= len(ps.peers) {
			t.DropUnknownPeer++
			continue
		}
		copy(buf[offset-hl:offset], ps.header[p*hl:])
		kept.addrs[len(kept.bufs)] = ps.dst[p]
		kept.bufs = append(kept.bufs, buf)
	}
	n, err := sendBatch(b.conn, kept, offset, offset-hl, &t)
	b.stats.add(&t)
	return n, err
}

// Recv implements Tunnel.
func (b *datagramBackend) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	from := getBatch(len(bufs))
	defer putBatch(from)
	n, err := b.conn.ReadFrom(bufs, sizes, from.addrs, offset)
	ps := b.peers.Load()
	hl := b.hdrLen
	var t Stats
	for i := range n {
		sizes[i], peers[i] = b.decap(ps, bufs[i][offset:offset+sizes[i]], from.addrs[i], &t)
		starts[i] = offset + hl
	}
	b.stats.add(&t)
	return n, err
}

// decap checks one datagram d from src and returns the inner packet's size
// (0 if dropped, counted in t) and its peer index.
func (b *datagramBackend) decap(ps *datagramPeers, d []byte, src netip.AddrPort, t *Stats) (int, uint32) {
	peer, ok := ps.lookup(src.Addr())
	if !ok {
		t.DropUnknownPeer++
		return 0, 0
	}
	if reason := b.encap.checkHeader(d); reason != dropNone {
		t.countDrop(reason)
		return 0, 0
	}
	size, reason := checkIPv4(d[b.hdrLen:])
	if reason != dropNone {
		t.countDrop(reason)
		return 0, 0
	}
	if completeChecksum(d[b.hdrLen:b.hdrLen+size], completeIfPartial) {
		t.ChecksumsCompleted++
	}
	t.accept(size)
	return size, peer
}
