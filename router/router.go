package router

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// Config is what a Router needs to know about its node.
type Config struct {
	// PodCIDR is this node's pod range; an address in it without a port is
	// answered with ICMP host unreachable.
	PodCIDR netip.Prefix
	// Gateway is the pods' default gateway (10.244.X.1, or Calico's
	// 169.254.1.1); GatewayMAC is the MAC the router answers ARP with on
	// every pod port.
	Gateway    netip.Addr
	GatewayMAC link.HardwareAddr
	// NodeAddr is the node's underlay address: the source of ICMP errors
	// about packets that arrived through the tunnel, as the kernel uses the
	// address of the interface a packet came in on.
	NodeAddr netip.Addr
	// HostPortAddr, if valid, is an address in PodCIDR that the router
	// routes to the host port (a /32): the source the node's namespace
	// uses toward pods of other nodes (the pod range's network address, as
	// flannel gives flannel.1), so that their replies come back through
	// the tunnel and the router. No pod may have it.
	HostPortAddr netip.Addr
	// ClusterCIDRs are the whole cluster's pod ranges: an address in them
	// that neither a pod of this node nor a peer's range holds is answered
	// with ICMP net unreachable (a removed node's pods, a range not yet
	// allocated), as a kernel "unreachable" route does, instead of going
	// to the host port with the rest of the world.
	ClusterCIDRs []netip.Prefix
	// Tunnel carries packets to and from peer nodes; nil for a single node.
	Tunnel tunnel.Tunnel
	// TunnelMTU is the largest inner packet the tunnel carries
	// (underlay MTU - Tunnel.Overhead()).
	TunnelMTU int
	// IngressStages run before routing, EgressStages after it.
	IngressStages, EgressStages []Stage
	// Neighbours configures the pod-side neighbour table; zero means
	// arp.DefaultConfig().
	Neighbours *arp.Config
	// Clock drives the neighbour table; nil means the system clock.
	Clock arp.Clock
	// ICMPRate limits the ICMP errors the router sends per second (burst
	// ICMPRate/10+1); 0 means 1000, like Linux's icmp_msgs_per_sec.
	ICMPRate int
	// ICMPDestInterval limits the ICMP errors sent to any one destination
	// to one per interval, with a burst of 6; 0 means 1s, like Linux's
	// icmp_ratelimit; negative means no per-destination limit. Neither
	// limit applies to "fragmentation needed" (path MTU discovery).
	ICMPDestInterval time.Duration
	// ReturnPathFlows is the capacity of the table of NATed flows whose
	// replies go back through the host port (see returnpath.go); zero
	// means DefaultReturnPathFlows.
	ReturnPathFlows int
	// Log receives the router's events; nil means no logging.
	Log *zap.Logger
}

// Router forwards IPv4 packets between its ports.
type Router struct {
	cfg    Config
	log    *zap.Logger
	fib    *fib.Table
	neigh  *arp.Table
	clock  arp.Clock
	tunnel tunnel.Tunnel
	gsoTun tunnel.GSOTunnel // tunnel, if it moves super-frames whole
	stats  stats
	icmp   *tokenBucket // the global ICMP error limit
	icmpTo *destLimiter // the per-destination one
	ret    *flowTable   // flows whose replies return through the host port

	ingress, egress []Stage
	lastPanicLog    atomic.Int64 // when a stage panic was last logged (UnixNano)

	// peerTab is the peer nodes and their IDs, under mu; peerAddrs, per
	// slot, what the tunnel ingress checks besides the FIB (see peerAddr).
	peerTab   peerTable
	peerMu    sync.Mutex // serialises SetPeers, UpsertPeer, RemovePeer (each reads, then sets)
	peerAddrs atomic.Pointer[[]peerAddr]
	// bcast is the pod subnet's directed broadcast address (invalid for a
	// /31 or /32): a martian destination.
	bcast netip.Addr

	// statsMu guards workers, the live workers whose counts Stats sums
	// (see workerStats), and their retirement into stats.
	statsMu sync.Mutex
	workers map[*worker]struct{}

	mu       sync.Mutex // serializes port changes; readers use ports
	ports    atomic.Pointer[[]*Port]
	freeIDs  []uint32
	byName   map[string]*Port
	hostPort *Port

	running  atomic.Bool
	wg       sync.WaitGroup
	stop     chan struct{}
	tickMu   sync.Mutex
	slow     *worker // Tick's worker, for slow-path output; under tickMu
	failedMu sync.Mutex
	failed   [][]byte // packets whose neighbour failed: answered at the next tick
}

// HostPortID is the host port's ID; pod ports get IDs from 1.
const HostPortID = 0

// tick is how often neighbour and tunnel timers run.
const tick = 100 * time.Millisecond

// New returns a Router with an empty FIB except for the routes that follow
// from cfg: the gateway (Self) and the pod range (Unreachable: host
// unreachable until a port claims an address).
func New(cfg Config) (*Router, error) {
	if !cfg.PodCIDR.IsValid() || !cfg.Gateway.Is4() {
		return nil, errors.New("router: PodCIDR and an IPv4 Gateway are required")
	}
	if cfg.HostPortAddr.IsValid() && (!cfg.PodCIDR.Contains(cfg.HostPortAddr) || cfg.HostPortAddr == cfg.Gateway) {
		return nil, fmt.Errorf("router: HostPortAddr %s must be in PodCIDR %s and not the gateway", cfg.HostPortAddr, cfg.PodCIDR)
	}
	if cfg.Tunnel != nil && cfg.TunnelMTU <= 0 {
		return nil, errors.New("router: TunnelMTU is required with a Tunnel")
	}
	if cfg.Tunnel != nil && cfg.Tunnel.Headroom() > headroom {
		return nil, fmt.Errorf("router: tunnel %s needs %d bytes of headroom, the router leaves %d", cfg.Tunnel.Name(), cfg.Tunnel.Headroom(), headroom)
	}
	r := &Router{cfg: cfg, log: cfg.Log, fib: fib.New(), tunnel: cfg.Tunnel, byName: map[string]*Port{}, workers: map[*worker]struct{}{}, stop: make(chan struct{})}
	if g, ok := cfg.Tunnel.(tunnel.GSOTunnel); ok && g.GSO() {
		r.gsoTun = g
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	rate := cfg.ICMPRate
	if rate <= 0 {
		rate = 1000
	}
	r.icmp = newTokenBucket(float64(rate), float64(rate/10+1))
	destInterval := cfg.ICMPDestInterval
	if destInterval == 0 {
		destInterval = defaultICMPDestInterval
	}
	r.icmpTo = newDestLimiter(destInterval)
	ncfg := arp.DefaultConfig()
	if cfg.Neighbours != nil {
		ncfg = *cfg.Neighbours
	}
	r.clock = cfg.Clock
	if r.clock == nil {
		r.clock = arp.SystemClock{}
	}
	neigh, err := arp.New(ncfg, (*neighbourHooks)(r), r.clock)
	if err != nil {
		return nil, fmt.Errorf("router: neighbours: %w", err)
	}
	r.neigh = neigh
	r.ret = newFlowTable(cmp.Or(cfg.ReturnPathFlows, DefaultReturnPathFlows), r.clock.Now())
	r.ingress = cfg.IngressStages
	r.egress = cfg.EgressStages
	r.peerAddrs.Store(&[]peerAddr{})
	if b := cfg.PodCIDR.Bits(); cfg.PodCIDR.Addr().Is4() && b <= 30 {
		a := cfg.PodCIDR.Masked().Addr().As4()
		v := binary.BigEndian.Uint32(a[:]) | (1<<(32-b) - 1)
		binary.BigEndian.PutUint32(a[:], v)
		r.bcast = netip.AddrFrom4(a)
	}
	empty := []*Port{nil} // ID 0 is the host port's
	r.ports.Store(&empty)
	r.fib.Update(func(tx *fib.Txn) {
		for _, c := range cfg.ClusterCIDRs {
			tx.Insert(c.Masked(), fib.NextHop{Kind: fib.Unreachable})
		}
		tx.Insert(cfg.PodCIDR, fib.NextHop{Kind: fib.Unreachable})
		tx.Insert(netip.PrefixFrom(cfg.Gateway, 32), fib.NextHop{Kind: fib.Self})
		if cfg.HostPortAddr.IsValid() {
			tx.Insert(netip.PrefixFrom(cfg.HostPortAddr, 32), fib.NextHop{Kind: fib.Host})
		}
	})
	r.slow = r.newWorker(64, 2048)
	return r, nil
}

// FIB is the router's forwarding table. Callers may add routes (e.g. a
// Blackhole); the router manages the routes of ports, peers and the host.
func (r *Router) FIB() *fib.Table { return r.fib }

// Neighbours returns a snapshot of the pod-side neighbour table.
func (r *Router) Neighbours() []arp.Entry { return r.neigh.Entries() }

// Tunnel is the router's tunnel, or nil.
func (r *Router) Tunnel() tunnel.Tunnel { return r.tunnel }

// port returns the port with the given ID, or nil. It takes no lock.
func (r *Router) port(id uint32) *Port {
	ps := *r.ports.Load()
	if int(id) < len(ps) {
		return ps[id]
	}
	return nil
}

// Ports returns a snapshot of every port.
func (r *Router) Ports() []PortInfo {
	var out []PortInfo
	for _, p := range *r.ports.Load() {
		if p != nil {
			out = append(out, p.info())
		}
	}
	return out
}

// SetHostPort attaches the TUN device of the node's namespace and makes it
// the default route. mtu is the largest packet sent to it.
func (r *Router) SetHostPort(dev link.Device, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hostPort != nil {
		return errors.New("router: host port already set")
	}
	p := &Port{ID: HostPortID, Name: name, Kind: HostPort, MTU: dev.MTU(), dev: dev, gso: gsoDevice(dev), done: make(chan struct{})}
	r.hostPort = p
	r.publish(func(ps []*Port) []*Port { ps[HostPortID] = p; return ps })
	r.fib.Insert(netip.MustParsePrefix("0.0.0.0/0"), fib.NextHop{Kind: fib.Host})
	if r.running.Load() {
		r.startPort(p)
	}
	return nil
}

// AddPodPort attaches a pod's TAP device. ip and mac are the pod's
// addresses; mtu the pod interface's MTU. The router announces its gateway
// (gratuitous ARP) and asks for the pod's MAC; it routes ip to the port.
func (r *Router) AddPodPort(name string, dev link.Device, ip netip.Addr, mac link.HardwareAddr, mtu int) (*Port, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.byName[name]; dup {
		return nil, fmt.Errorf("router: port %q exists", name)
	}
	if nh, ok := r.fib.Lookup(ip); ok && nh.Kind == fib.Local {
		return nil, fmt.Errorf("router: %s is already routed to port %d", ip, nh.Port)
	}
	if ip == r.cfg.HostPortAddr {
		return nil, fmt.Errorf("router: %s is the host port's address", ip)
	}
	p := &Port{Name: name, Kind: PodPort, IP: ip, MAC: mac, MTU: mtu, dev: dev, gso: gsoDevice(dev), done: make(chan struct{})}
	r.publish(func(ps []*Port) []*Port {
		if n := len(r.freeIDs); n > 0 {
			p.ID = r.freeIDs[n-1]
			r.freeIDs = r.freeIDs[:n-1]
			ps[p.ID] = p
			return ps
		}
		p.ID = uint32(len(ps))
		return append(ps, p)
	})
	r.byName[name] = p
	r.fib.Insert(netip.PrefixFrom(ip, 32), fib.NextHop{Kind: fib.Local, Port: p.ID})
	if r.running.Load() {
		r.startPort(p)
	}
	r.log.Info("pod port added", zap.String("port", name), zap.Uint32("id", p.ID), zap.Stringer("ip", ip), zap.Stringer("mac", mac), zap.Int("mtu", mtu))
	return p, nil
}

// RemovePort detaches a pod port: its route and neighbour go, its ingress
// goroutine ends and its device is closed (a persistent TAP stays).
func (r *Router) RemovePort(name string) error {
	r.mu.Lock()
	p, ok := r.byName[name]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("router: no port %q", name)
	}
	delete(r.byName, name)
	r.fib.Delete(netip.PrefixFrom(p.IP, 32))
	r.publish(func(ps []*Port) []*Port { ps[p.ID] = nil; return ps })
	started := r.running.Load()
	r.mu.Unlock()
	p.closing.Store(true)
	err := p.dev.Close()
	if started {
		<-p.done
	}
	// Only now, with the port's goroutine gone (it may have learned an ARP
	// entry until the end), may its ID and neighbours be forgotten.
	r.mu.Lock()
	r.neigh.RemovePort(p.ID)
	r.freeIDs = append(r.freeIDs, p.ID)
	r.mu.Unlock()
	r.log.Info("pod port removed", zap.String("port", name))
	return err
}

// publish installs a modified copy of the port table. Callers hold r.mu.
func (r *Router) publish(change func([]*Port) []*Port) {
	old := *r.ports.Load()
	ps := change(append([]*Port(nil), old...))
	r.ports.Store(&ps)
}

// Start runs the ingress goroutines of every port and of the tunnel, and the
// timers.
func (r *Router) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running.Swap(true) {
		return
	}
	for _, p := range *r.ports.Load() {
		if p != nil {
			r.startPort(p)
		}
	}
	if r.tunnel != nil {
		w := r.newWorker(64, r.cfg.TunnelMTU+256)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.retire(w)
			w.runTunnel()
		}()
	}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.runTimers() }()
}

func (r *Router) startPort(p *Port) {
	batch := min(p.dev.BatchSize(), 64)
	w := r.newWorker(batch, p.MTU+ethHeaderLen+64)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(p.done)
		defer r.retire(w)
		w.runPort(p)
	}()
	if p.Kind == PodPort {
		r.announce(p)
	}
}

// Close stops the router and closes every device and the tunnel. Persistent
// TAP devices stay in their pods' namespaces.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.running.Swap(false) {
		close(r.stop)
	}
	ports := *r.ports.Load()
	r.mu.Unlock()
	var errs []error
	for _, p := range ports {
		if p != nil {
			p.closing.Store(true)
			errs = append(errs, p.dev.Close())
		}
	}
	if r.tunnel != nil {
		errs = append(errs, r.tunnel.Close())
	}
	r.wg.Wait()
	return errors.Join(errs...)
}

func (r *Router) runTimers() {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.Tick()
		}
	}
}

// Tick runs the timers once: neighbour state, the tunnel's timers, and the
// ICMP host-unreachable answers for packets whose neighbour failed. Start
// calls it every 100ms; tests with a fake clock call it directly.
func (r *Router) Tick() {
	r.tickMu.Lock()
	defer r.tickMu.Unlock()
	r.neigh.Tick()
	r.ret.tick(r.clock.Now())
	if r.tunnel != nil {
		r.tunnel.Tick()
	}
	r.failedMu.Lock()
	failed := r.failed
	r.failed = nil
	r.failedMu.Unlock()
	if len(failed) > 0 {
		r.slow.unreachableAll(failed)
	}
}

// Port returns the port called name.
func (r *Router) Port(name string) (*Port, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.byName[name]
	return p, ok
}

// Bandwidth limits a pod port, in the CNI bandwidth capability's units:
// rates in bits per second, bursts in bits; ingress is traffic to the pod,
// egress from it. A zero rate means no limit in that direction.
type Bandwidth struct {
	IngressRate, IngressBurst, EgressRate, EgressBurst uint64
}

// SetBandwidth limits the pod port called name. Packets over the limit are
// dropped (a policer) and counted as drop_rate_limited.
func (r *Router) SetBandwidth(name string, bw Bandwidth) error {
	p, ok := r.Port(name)
	if !ok {
		return fmt.Errorf("router: no port %q", name)
	}
	p.ingress.Store(policer(bw.IngressRate, bw.IngressBurst))
	p.egress.Store(policer(bw.EgressRate, bw.EgressBurst))
	r.log.Info("pod port bandwidth", zap.String("port", name), zap.Uint64("ingressRate", bw.IngressRate), zap.Uint64("egressRate", bw.EgressRate))
	return nil
}

// policer turns a rate in bits/s and a burst in bits into a byte bucket, or
// nil for no limit.
func policer(rate, burst uint64) *tokenBucket {
	if rate == 0 {
		return nil
	}
	return newTokenBucket(float64(rate)/8, float64(max(burst, 1))/8)
}

// SetStaticNeighbour fixes the MAC of ip on the pod port called name: the
// router then never ARPs for it. (Benchmarks and tools use it; pods are
// normally learned by ARP.)
func (r *Router) SetStaticNeighbour(name string, ip netip.Addr, mac link.HardwareAddr) error {
	p, ok := r.Port(name)
	if !ok {
		return fmt.Errorf("router: no port %q", name)
	}
	r.neigh.SetStatic(p.ID, ip, mac)
	return nil
}
