package tunnel

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/udp"
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
// depend on the wire format: the UDP sockets, the peer snapshot with each
// peer's socket address and header, and Send and Recv. The encapsulation
// supplies the header; datagramBackend checks the inner packet behind it.
type datagramBackend struct {
	conn    link.DatagramConn   // receives, and sends if senders is empty
	senders []link.DatagramConn // if not empty: Send spreads flows over them
	port    uint16              // the peers' UDP port
	encap   encapsulation
	hdrLen  int // encap.headerLen(), kept for the hot path
	peers   atomic.Pointer[datagramPeers]
	stats   counters

	large  link.LargeReader // conn, if it keeps datagrams longer than the buffer
	recvMu sync.Mutex       // serialises Recv: the queue, and conn's large buffers until split
	queue  recvQueue
}

// datagramPeers is the peer snapshot plus what Send writes for each peer.
type datagramPeers struct {
	peerSet
	dst    []netip.AddrPort // per slot: the peer's address : port
	header []byte           // slot i's header is header[i*hdrLen:][:hdrLen]
}

// init sets b up with no peers; super-packets are split to mtu (0: to
// Recv's buffers). Send goes through senders, or conn if there are none
// (see the package doc).
func (b *datagramBackend) init(conn link.DatagramConn, senders []link.DatagramConn, port uint16, encap encapsulation, mtu int) error {
	if len(senders) > MaxSenders {
		return fmt.Errorf("tunnel: %d senders, at most %d", len(senders), MaxSenders)
	}
	b.conn, b.port, b.encap, b.hdrLen = conn, port, encap, encap.headerLen()
	b.senders = slices.Clone(senders)
	b.large, _ = conn.(link.LargeReader)
	b.queue.mtu = mtu
	b.SetPeers(nil)
	return nil
}

// Headroom implements Tunnel: the encapsulation's header length.
func (b *datagramBackend) Headroom() int { return b.hdrLen }

func (b *datagramBackend) Tick() {}

// Close implements Tunnel: it closes the receiving socket and the senders
// and returns the first error.
func (b *datagramBackend) Close() error {
	err := b.conn.Close()
	for _, c := range b.senders {
		if e := c.Close(); err == nil {
			err = e
		}
	}
	return err
}

// Stats implements Tunnel. DropOversize includes the socket's count; the
// tx_messages and tx_gso counters are the sums over the receiving socket
// and the senders.
func (b *datagramBackend) Stats() Stats {
	s := b.stats.snapshot()
	s.DropOversize += transportDrops(b.conn)
	addWriteStats(&s, b.conn)
	for _, c := range b.senders {
		addWriteStats(&s, c)
	}
	if c, ok := b.conn.(interface{ ReadStats() udp.ReadStats }); ok {
		r := c.ReadStats()
		s.RxMessages, s.RxGROMessages, s.RxGRODatagrams = r.Messages, r.GROMessages, r.GRODatagrams
	}
	return s
}

// addWriteStats adds what conn, if it counts them (a udp.Conn), handed the
// kernel to s's tx_messages and tx_gso counters.
func addWriteStats(s *Stats, conn link.DatagramConn) {
	c, ok := conn.(interface{ WriteStats() udp.WriteStats })
	if !ok {
		return
	}
	w := c.WriteStats()
	s.TxMessages += w.Messages
	s.TxGSOMessages += w.GSOMessages
	s.TxGSODatagrams += w.GSODatagrams
	s.TxGSORefused += w.GSORefused
	s.TxGSOOversize += w.GSOOversize
}

// SetPeers implements Tunnel.
func (b *datagramBackend) SetPeers(peers []Peer) {
	hl := b.hdrLen
	s := &datagramPeers{peerSet: newPeerSet(peers)}
	s.dst = make([]netip.AddrPort, len(s.peers))
	s.header = make([]byte, len(s.peers)*hl)
	for i, p := range s.peers {
		if !s.live[i] {
			continue
		}
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
		p, ok := ps.slot(peers[i])
		if !ok || !ps.owns(p, buf[offset:]) {
			t.DropUnknownPeer++
			continue
		}
		copy(buf[offset-hl:offset], ps.header[p*hl:])
		kept.addrs[len(kept.bufs)] = ps.dst[p]
		kept.bufs = append(kept.bufs, buf)
	}
	var n int
	var err error
	switch len(b.senders) {
	case 0:
		n, err = sendBatch(b.conn, kept, offset, offset-hl, &t)
	case 1:
		n, err = sendBatch(b.senders[0], kept, offset, offset-hl, &t)
	default:
		n, err = sendSpread(b.senders, kept, offset, offset-hl, &t)
	}
	b.stats.add(&t)
	return n, err
}

// Recv implements Tunnel. A datagram longer than its buffer (kept whole by
// a link.LargeReader socket) carries a super-packet: it is split into
// segments of the inner MTU, which this and the following Recv calls hand
// out, in order with the packets read behind it, before the socket is read
// again (see recvQueue). Recv calls are serialised.
func (b *datagramBackend) Recv(bufs [][]byte, sizes, starts []int, peers []uint32, offset int) (int, error) {
	b.recvMu.Lock()
	defer b.recvMu.Unlock()
	hl := b.hdrLen
	var t Stats
	if b.queue.active() {
		n := b.queue.drain(bufs, sizes, starts, peers, offset+hl, &t)
		b.stats.add(&t)
		return n, nil
	}
	from := getBatch(len(bufs))
	defer putBatch(from)
	n, err := b.conn.ReadFrom(bufs, sizes, from.addrs, offset)
	ps := b.peers.Load()
	first := -1 // the first slot queued
	for i := range n {
		room := len(bufs[i]) - offset - hl
		d, large := received(bufs[i][offset:], sizes[i], b.large, i, &t)
		var size int
		var peer uint32
		if d != nil {
			size, peer = b.decap(ps, d, from.addrs[i], &t)
		}
		sizes[i], peers[i], starts[i] = 0, peer, offset+hl
		if size == 0 {
			continue
		}
		pkt := d[hl : hl+size]
		if !large && completeChecksum(pkt, completeIfPartial) {
			t.ChecksumsCompleted++
		}
		if b.queue.place(pkt, peer, large, room, len(bufs), &t) {
			sizes[i] = size
		} else if first < 0 {
			first = i
		}
	}
	n = b.queue.fill(n, first, bufs, sizes, starts, peers, offset+hl, &t)
	b.stats.add(&t)
	return n, err
}

// decap checks one datagram d from src and returns the inner packet's size
// (0 if dropped, counted in t) and its peer's ID. It does not count a
// packet it accepts: Recv delivers or queues it.
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
	return size, peer
}
