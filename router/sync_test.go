package router

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/tunnel"
)

// A syncNode is a router that is not started: tests feed its ingress
// workers directly and read what its fake devices were given, so that every
// counter can be asserted exactly, without waiting.

// capDevice is a link.Device that keeps a copy of every frame written to
// it. Read is never called (the router is not started).
type capDevice struct {
	name string
	mtu  int
	mu   sync.Mutex
	out  [][]byte
	fail bool // Write refuses everything
}

func (d *capDevice) Read([][]byte, []int, int) (int, error) { return 0, link.ErrClosed }
func (d *capDevice) Write(bufs [][]byte, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return 0, errors.New("capDevice: refused")
	}
	for _, b := range bufs {
		d.out = append(d.out, append([]byte(nil), b[offset:]...))
	}
	return len(bufs), nil
}
func (d *capDevice) BatchSize() int { return 64 }
func (d *capDevice) MTU() int       { return d.mtu }
func (d *capDevice) Name() string   { return d.name }
func (d *capDevice) Close() error   { return nil }

// take returns and forgets what was written.
func (d *capDevice) take() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.out
	d.out = nil
	return out
}

// capConn is a link.DatagramConn that keeps every datagram written to it.
type capConn struct {
	mu  sync.Mutex
	out []linktest.Datagram
	max int // see limit
}

func (c *capConn) ReadFrom([][]byte, []int, []netip.AddrPort, int) (int, error) {
	return 0, link.ErrClosed
}
func (c *capConn) WriteTo(bufs [][]byte, to []netip.AddrPort, offset int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range bufs {
		if c.max > 0 && i == c.max {
			return i, errors.New("capConn: no buffer space")
		}
		c.out = append(c.out, linktest.Datagram{Addr: to[i], Data: append([]byte(nil), b[offset:]...)})
	}
	return len(bufs), nil
}
func (c *capConn) LocalAddr() netip.AddrPort { return netip.AddrPortFrom(node1, tunnel.DefaultUDPPort) }
func (c *capConn) BatchSize() int            { return 64 }
func (c *capConn) Close() error              { return nil }

func (c *capConn) take() []linktest.Datagram {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

type syncPod struct {
	ip   netip.Addr
	mac  link.HardwareAddr
	port *Port
	dev  *capDevice
}

type syncNode struct {
	r     *Router
	clk   *fakeClock
	w, tw *worker // the pods' and the tunnel's ingress workers
	host  *capDevice
	conn  *capConn
	pods  []*syncPod
}

var node3 = netip.MustParseAddr("192.168.49.4")
var podCIDR2 = netip.MustParsePrefix("10.244.2.0/24")

// newSyncNode builds an unstarted router for 10.244.0.0/24 with a host port,
// a udp tunnel to two peers (node2 with 10.244.1.0/24 as peer 0, node3 with
// 10.244.2.0/24 as peer 1) and pods 10.244.0.4, .5, ... of the given MTUs,
// whose MACs the router knows (static neighbours).
func newSyncNode(t testing.TB, cfg Config, mtus ...int) *syncNode {
	t.Helper()
	n := &syncNode{clk: &fakeClock{now: time.Unix(1e9, 0)}, host: &capDevice{name: "taprouter0", mtu: 1450}, conn: &capConn{}}
	cfg.PodCIDR, cfg.Gateway, cfg.GatewayMAC, cfg.NodeAddr = podCIDR0, gateway, gwMAC, node1
	if cfg.Clock == nil {
		cfg.Clock = n.clk
	}
	if cfg.Tunnel == nil {
		u, err := tunnel.NewUDP(n.conn, tunnel.UDPConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Tunnel, cfg.TunnelMTU = u, 1450
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.r = r
	if err := r.SetHostPort(n.host, "taprouter0"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetPeers([]tunnel.Peer{{Node: "node2", Addr: node2, PodCIDRs: []netip.Prefix{podCIDR1}}, {Node: "node3", Addr: node3, PodCIDRs: []netip.Prefix{podCIDR2}}}); err != nil {
		t.Fatal(err)
	}
	maxMTU := 1450
	for i, mtu := range mtus {
		last := byte(4 + i)
		sp := &syncPod{ip: netip.AddrFrom4([4]byte{10, 244, 0, last}), mac: link.HardwareAddr{2, 0, 0, 0, 0, last}, dev: &capDevice{name: fmt.Sprintf("p%d", i), mtu: mtu}}
		p, err := r.AddPodPort(sp.dev.name, sp.dev, sp.ip, sp.mac, mtu)
		if err != nil {
			t.Fatal(err)
		}
		sp.port = p
		r.SetStaticNeighbour(sp.dev.name, sp.ip, sp.mac)
		n.pods = append(n.pods, sp)
		maxMTU = max(maxMTU, mtu)
	}
	n.w = r.newWorker(64, maxMTU+ethHeaderLen+64)
	n.tw = r.newWorker(64, cfg.TunnelMTU+256)
	t.Cleanup(func() { r.Close() })
	return n
}

// fromPod feeds IPv4 packets to the router as one batch from pod i, each in
// an Ethernet frame to the gateway MAC.
func (n *syncNode) fromPod(i int, pkts ...[]byte) {
	frames := make([][]byte, len(pkts))
	for k, p := range pkts {
		frames[k] = ethernet(gwMAC, n.pods[i].mac, etherTypeIP, p)
	}
	n.framesFromPod(i, frames...)
}

// framesFromPod feeds raw frames as one batch from pod i.
func (n *syncNode) framesFromPod(i int, frames ...[]byte) {
	for k, f := range frames {
		n.w.sizes[k] = copy(n.w.bufs[k][headroom:], f)
	}
	n.w.receivePort(n.pods[i].port, len(frames))
}

// peerID returns the ID of the router's i-th peer in node-name order
// (node2 is 0, node3 is 1), or i itself past the last one: an ID no peer
// has.
func (n *syncNode) peerID(i uint32) uint32 {
	if ps := n.r.Peers(); int(i) < len(ps) {
		return ps[i].ID
	}
	return i
}

// fromPeer feeds inner IPv4 packets as one batch decapsulated from the
// router's i-th peer (see peerID).
func (n *syncNode) fromPeer(i uint32, pkts ...[]byte) {
	peer := n.peerID(i)
	for k, p := range pkts {
		n.tw.sizes[k] = copy(n.tw.bufs[k][headroom:], p)
		n.tw.starts[k] = headroom
		n.tw.peers[k] = peer
	}
	n.tw.receiveTunnel(len(pkts))
}

// arpFrom builds an ARP frame from pod i to the gateway.
func (n *syncNode) arpFrom(i int, op uint16) []byte {
	p := n.pods[i]
	a := arp.Packet{Op: op, SenderMAC: p.mac, SenderIP: p.ip, TargetMAC: gwMAC, TargetIP: gateway}
	b := make([]byte, arp.FrameLen)
	arp.EncodeFrame(b, gwMAC, p.mac, &a)
	return b
}

// wantDelta asserts that the router's counters moved from before by exactly
// want: every counter named in want by that much, every other one not at all.
func wantDelta(t testing.TB, r *Router, before map[string]uint64, want map[string]uint64) {
	t.Helper()
	after := r.Stats()
	var bad []string
	for k, v := range after {
		if d := v - before[k]; d != want[k] {
			bad = append(bad, fmt.Sprintf("%s moved by %d, want %d", k, d, want[k]))
		}
	}
	for k := range want {
		if _, ok := after[k]; !ok {
			bad = append(bad, fmt.Sprintf("no counter %s", k))
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// capConn takes at most max datagrams of a batch when max > 0, and fails
// for the rest, as a socket whose buffer filled up mid-batch does.
func (c *capConn) limit(max int) { c.mu.Lock(); c.max = max; c.mu.Unlock() }
