package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/udp"
	"github.com/taprouter/taprouter/masq"
	"github.com/taprouter/taprouter/peers"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/router"
	"github.com/taprouter/taprouter/tunnel"
)

// GatewayMAC is the MAC a node's router answers ARP with for the gateway:
// 0e:58 and the node's four underlay address bytes, so that it is stable
// across restarts and tells in a capture which node answered.
func GatewayMAC(node netip.Addr) link.HardwareAddr { return link.DerivedMAC(0x0e, 0x58, node) }

// Daemon is a running taprouterd.
type Daemon struct {
	cfg      *config.Config
	opts     Options
	log      *zap.Logger
	router   *router.Router
	nodeAddr netip.Addr
	podMTU   int
	hostPort bool
	peers    *peers.Reconciler

	running atomic.Bool // set up and started, not closing: see Ready

	masq     *masq.Rules   // nil: no masquerade; set before the API serves
	stopMasq func()        // ends masq's repair loop
	masqDone chan struct{} // closed when it has ended

	mu      sync.Mutex       // serializes port changes and the state file
	ports   map[string]*port // by router port name
	closing bool             // Close has begun: port changes are refused

	srv *http.Server
	ln  net.Listener

	openNS  func(path string) (*os.File, error) // podnet.OpenNetNS; tests replace it
	nsOpens netnsOpens                          // openNS calls in flight
}

// Options are the daemon's settings that are not part of the node's config.
type Options struct {
	// StateDir holds the state file of the ports added through the API, so
	// that a restarted daemon re-adopts them; DefaultStateDir if empty.
	StateDir string
	// NetNSTimeout bounds opening a pod's network namespace;
	// DefaultNetNSTimeout if zero.
	NetNSTimeout time.Duration
	// MasqueradeInterval is how often the masquerade rules are checked
	// and repaired; masq.DefaultInterval if zero.
	MasqueradeInterval time.Duration
	// NoTAPOffload gives pods plain TAPs: without IFF_VNET_HDR, checksum
	// offload and TSO (tap.Options.Offload).
	NoTAPOffload bool
}

// DefaultStateDir is where taprouterd keeps its state unless told otherwise.
const DefaultStateDir = "/var/lib/taprouter"

// New sets the node up as cfg says and re-adopts the pods a previous run
// attached through the API. On error, what it had set up is undone.
func New(cfg *config.Config, opts Options, log *zap.Logger) (*Daemon, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.NetNSTimeout == 0 {
		opts.NetNSTimeout = DefaultNetNSTimeout
	}
	d := &Daemon{cfg: cfg, opts: opts, log: log, ports: map[string]*port{}, openNS: podnet.OpenNetNS}
	if err := d.setup(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) setup() error {
	cfg, log := d.cfg, d.log
	// The config's pod namespaces first, so that one that is not a pod's
	// is refused before anything is set up (and logged).
	paths := make([]string, len(cfg.Ports))
	for i, p := range cfg.Ports {
		paths[i] = p.NetNS
	}
	podNS, errs := d.openAll(paths)
	defer closeAll(podNS)
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("ports[%d].netns: %w", i, err)
		}
	}
	addr, mac, mtu, err := podnet.Underlay(cfg.Underlay.Interface)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return fmt.Errorf("underlay.interface: %s: no such interface in this network namespace", cfg.Underlay.Interface)
	}
	if err != nil {
		return fmt.Errorf("underlay.interface: %w", err)
	}
	if cfg.Underlay.Address.IsValid() {
		addr = cfg.Underlay.Address
	}
	if !addr.IsValid() {
		return fmt.Errorf("underlay.interface: %s has no IPv4 address; set underlay.address", cfg.Underlay.Interface)
	}
	for i, p := range cfg.Peers {
		if p.Address == addr {
			return fmt.Errorf("peers[%d].address: %s is this node's own underlay address", i, addr)
		}
	}
	d.nodeAddr = addr
	overhead, err := tunnel.Overhead(cfg.Backend)
	if err != nil {
		return fmt.Errorf("backend: %w", err)
	}
	d.podMTU = mtu - overhead
	log.Info("underlay", zap.String("interface", cfg.Underlay.Interface), zap.Stringer("address", addr),
		zap.Stringer("mac", mac), zap.Int("mtu", mtu), zap.String("backend", cfg.Backend), zap.Int("podMTU", d.podMTU))

	tun, err := openTunnel(cfg, addr, mac, d.podMTU, log)
	if err != nil {
		return fmt.Errorf("backend %s: %w", cfg.Backend, err)
	}
	d.router, err = router.New(router.Config{
		PodCIDR:      cfg.PodCIDR,
		Gateway:      cfg.Gateway,
		GatewayMAC:   GatewayMAC(addr),
		NodeAddr:     addr,
		HostPortAddr: hostPortAddr(cfg.PodCIDR),
		ClusterCIDRs: cfg.Masquerade.ClusterCIDRs,
		Tunnel:       tun,
		TunnelMTU:    d.podMTU,
		Log:          log,
	})
	if err != nil {
		tun.Close()
		return err
	}
	hp, err := podnet.CreateHostPort(cfg.HostPort.Name, d.podMTU, []netip.Prefix{cfg.PodCIDR}, addr)
	if err != nil {
		return fmt.Errorf("hostPort.name: creating %s: %w", cfg.HostPort.Name, err)
	}
	d.hostPort = true
	if err := d.router.SetHostPort(hp, cfg.HostPort.Name); err != nil {
		hp.Close()
		return err
	}
	hpAddr := hostPortAddr(cfg.PodCIDR)
	if hpAddr.IsValid() {
		if err := addHostPortAddr(cfg.HostPort.Name, hpAddr); err != nil {
			return fmt.Errorf("hostPort.name: %w", err)
		}
	}
	log.Info("host port", zap.String("device", cfg.HostPort.Name), zap.Stringer("route", cfg.PodCIDR), zap.Stringer("address", hpAddr))

	// The static config is a peer source: its peers go through the
	// reconciler, with a node route to each pod range.
	reserved, err := underlayReserved(cfg.Underlay.Interface, cfg.PodCIDR)
	if err != nil {
		return fmt.Errorf("underlay.interface: %w", err)
	}
	d.peers = peers.NewReconciler(peers.Local{Node: cfg.Node, Addr: addr, PodCIDRs: []netip.Prefix{cfg.PodCIDR}, Backend: cfg.Backend, Reserved: reserved},
		d.router, &nodeRoutes{dev: cfg.HostPort.Name, src: hpAddr}, log)
	res, err := d.ApplyPeers("config", configPeers(cfg))
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	if len(res.Invalid) > 0 {
		return fmt.Errorf("peers: %w", res.Invalid[0])
	}
	if err := d.startMasquerade(); err != nil {
		return err
	}

	for i, p := range cfg.Ports {
		if err := d.attach(&port{Name: p.Name, IfName: p.IfName, NetNS: p.NetNS, IP: p.IP, MTU: p.MTU}, podNS[i]); err != nil {
			return fmt.Errorf("ports[%d] (%s): %w", i, p.Name, err)
		}
	}
	if err := d.restore(); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	d.router.Start()
	d.running.Store(true)
	return nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// openTunnel opens the backend's underlay transport and the tunnel; podMTU
// is the inner MTU its Recv splits super-packets to.
func openTunnel(cfg *config.Config, addr netip.Addr, mac link.HardwareAddr, podMTU int, log *zap.Logger) (tunnel.Tunnel, error) {
	switch cfg.Backend {
	case config.BackendVXLAN:
		conn, senders, err := listenDatagram(addr, cfg.VXLAN.Port, cfg.VXLAN.SourcePorts, log)
		if err != nil {
			return nil, err
		}
		vtep := cfg.VXLAN.MAC
		if vtep.IsZero() {
			vtep = tunnel.VTEPMAC(addr)
		}
		t, err := tunnel.NewVXLAN(conn, tunnel.VXLANConfig{VNI: cfg.VXLAN.VNI, Port: cfg.VXLAN.Port, LocalMAC: vtep, MTU: podMTU, Senders: senders})
		if err != nil {
			closeConns(conn, senders)
		}
		return t, err
	case config.BackendUDP:
		conn, senders, err := listenDatagram(addr, cfg.UDP.Port, cfg.UDP.SourcePorts, log)
		if err != nil {
			return nil, err
		}
		t, err := tunnel.NewUDP(conn, tunnel.UDPConfig{Port: cfg.UDP.Port, MTU: podMTU, Senders: senders})
		if err != nil {
			closeConns(conn, senders)
		}
		return t, err
	case config.BackendDirect:
		// The socket reads GRO-merged frames with their segment size
		// (PACKET_VNET_HDR) and cuts them: the underlay's GRO stays as
		// it is. (Earlier versions turned it off and did not restore it;
		// "ethtool -K <underlay> gro on" does.)
		// The kernel sees the peers' frames too. Strict reverse-path
		// filtering on the underlay makes it drop those from a pod range
		// (their route is through the host port), so that a node with
		// ip_forward=1, or a reply to the host port's address, is not
		// delivered twice.
		if err := strictRPFilter(cfg.Underlay.Interface, log); err != nil {
			return nil, fmt.Errorf("rp_filter on the underlay: %w", err)
		}
		// Only ARP and frames for this node's pods reach the socket
		// (tunnel.DirectFilter): the node's own traffic is not copied.
		sock, err := afpacket.OpenFiltered(cfg.Underlay.Interface, tunnel.DirectFilter(mac, cfg.PodCIDR))
		if err != nil {
			return nil, err
		}
		t, err := tunnel.NewDirect(sock, tunnel.DirectConfig{LocalAddr: addr, LocalMAC: mac, LocalPodCIDR: cfg.PodCIDR, MTU: podMTU,
			OnConflict: func(peer netip.Addr, known, claimed link.HardwareAddr) {
				log.Warn("underlay ARP conflict: another MAC claims a peer's address; keeping the known MAC and re-probing it",
					zap.Stringer("peer", peer), zap.Stringer("known", known), zap.Stringer("claimed", claimed))
			}})
		if err != nil {
			sock.Close()
		}
		return t, err
	}
	return nil, fmt.Errorf("unknown backend %q", cfg.Backend)
}

// listenDatagram opens the vxlan or udp backend's socket on addr:port and,
// for sourcePorts > 1, that many send-only sockets on ports of their own
// that its Send spreads flows over (tunnel.VXLANConfig.Senders); for 1, none,
// and the backend sends from port.
func listenDatagram(addr netip.Addr, port uint16, sourcePorts int, log *zap.Logger) (*udp.Conn, []link.DatagramConn, error) {
	conn, err := udp.Listen(netip.AddrPortFrom(addr, port))
	if err != nil {
		return nil, nil, err
	}
	if sourcePorts <= 1 {
		return conn, nil, nil
	}
	conns, err := udp.ListenSenders(addr, sourcePorts)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("source ports: %w", err)
	}
	senders := make([]link.DatagramConn, len(conns))
	ports := make([]int, len(conns))
	for i, c := range conns {
		senders[i], ports[i] = c, int(c.LocalAddr().Port())
	}
	log.Info("sending from source ports by inner flow", zap.Uint16("port", port), zap.Ints("sourcePorts", ports))
	return conn, senders, nil
}

func closeConns(conn link.DatagramConn, senders []link.DatagramConn) {
	conn.Close()
	for _, c := range senders {
		c.Close()
	}
}

// Listen opens the API's unix socket at path. Serve then answers on it.
func (d *Daemon) Listen(path string) error {
	ln, err := api.Listen(path)
	if err != nil {
		return fmt.Errorf("--socket: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv, d.ln = api.NewServer(api.NewHandler(d), ln, api.DefaultLimits())
	return nil
}

// Serve answers the API on the socket Listen opened, until Close.
func (d *Daemon) Serve() error {
	d.log.Info("ready", zap.String("socket", d.ln.Addr().String()), zap.String("node", d.cfg.Node),
		zap.Int("ports", len(d.ports)), zap.Int("peers", len(d.cfg.Peers)))
	if err := d.srv.Serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the router, removes the host port and the socket, and leaves
// the pods' TAP devices in place.
func (d *Daemon) Close() error {
	d.running.Store(false)
	d.mu.Lock() // waits for a port change under way; later ones are refused
	d.closing = true
	d.mu.Unlock()
	var errs []error
	if d.srv != nil {
		errs = append(errs, d.srv.Close())
		os.Remove(d.ln.Addr().String())
	}
	if d.router != nil {
		errs = append(errs, d.router.Close())
	}
	errs = append(errs, d.stopMasquerade())
	if d.hostPort {
		errs = append(errs, podnet.RemoveHostPort(d.cfg.HostPort.Name))
		d.hostPort = false
	}
	return errors.Join(errs...)
}

// Ports implements api.Backend.
func (d *Daemon) Ports() []api.RouterPort {
	var out []api.RouterPort
	for _, p := range d.router.Ports() {
		out = append(out, api.RouterPort(p))
	}
	return out
}

// Routes implements api.Backend.
func (d *Daemon) Routes() []api.Route {
	var out []api.Route
	d.router.FIB().Walk(func(r fib.Route) bool {
		out = append(out, api.Route{Prefix: r.Prefix.String(), NextHop: d.describe(r.NextHop)})
		return true
	})
	return out
}

func (d *Daemon) describe(nh fib.NextHop) string {
	switch nh.Kind {
	case fib.Local:
		for _, p := range d.router.Ports() {
			if p.ID == nh.Port {
				return "port " + p.Name
			}
		}
	case fib.Peer:
		for _, p := range d.router.Peers() {
			if p.ID == nh.Peer {
				return "peer " + p.Node
			}
		}
	case fib.Self:
		return "self (gateway)"
	case fib.Host:
		return "host " + d.cfg.HostPort.Name
	}
	return nh.String()
}

// Neighbours implements api.Backend.
func (d *Daemon) Neighbours() []api.Neighbour {
	names := map[uint32]string{}
	for _, p := range d.router.Ports() {
		names[p.ID] = p.Name
	}
	var out []api.Neighbour
	for _, e := range d.router.Neighbours() {
		n := api.Neighbour{Port: names[e.Port], IP: e.IP.String(), State: e.State.String()}
		if !e.MAC.IsZero() {
			n.MAC = e.MAC.String()
		}
		out = append(out, n)
	}
	// The direct backend resolves peer nodes with its own ARP on the underlay.
	if u, ok := d.router.Tunnel().(interface{ Neighbours() []arp.Entry }); ok {
		for _, e := range u.Neighbours() {
			n := api.Neighbour{Port: "underlay " + d.cfg.Underlay.Interface, IP: e.IP.String(), State: e.State.String()}
			if !e.MAC.IsZero() {
				n.MAC = e.MAC.String()
			}
			out = append(out, n)
		}
	}
	return out
}

// strictRPFilter sets net.ipv4.conf.<ifname>.rp_filter to 1 (strict) and
// warns if net.ipv4.conf.all.rp_filter makes it loose (the kernel uses the
// larger of the two).
// It goes through rtnetlink, not /proc/sys, which is read-only in a
// container (the DaemonSet's).
func strictRPFilter(ifname string, log *zap.Logger) error {
	if _, err := podnet.SetRPFilter(ifname, 1); err != nil {
		return err
	}
	if all, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter"); err == nil && len(all) > 0 && all[0] == '2' {
		log.Warn("net.ipv4.conf.all.rp_filter is 2 (loose): the kernel may deliver peers' frames for pods twice; set it to 0 or 1", zap.String("interface", ifname))
	}
	log.Info("strict rp_filter on the underlay: the kernel drops peers' pod frames, the router takes them", zap.String("interface", ifname))
	return nil
}

// startMasquerade sets up the egress masquerade if the config asks for it,
// and keeps repairing it until Close.
func (d *Daemon) startMasquerade() error {
	m := d.cfg.Masquerade
	if !m.Enabled {
		return nil
	}
	rules, err := masq.New(m.ClusterCIDRs, d.log)
	if err != nil {
		return fmt.Errorf("masquerade.enabled: %w", err)
	}
	if _, err := rules.Ensure(); err != nil {
		return fmt.Errorf("masquerade.enabled: %w", err)
	}
	d.masq = rules
	interval := d.opts.MasqueradeInterval
	if interval == 0 {
		interval = masq.DefaultInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.stopMasq, d.masqDone = cancel, make(chan struct{})
	go func() {
		defer close(d.masqDone)
		rules.Run(ctx, interval)
	}()
	d.log.Info("masquerade", zap.String("chain", masq.Chain), zap.Stringers("clusterCIDRs", m.ClusterCIDRs),
		zap.Duration("checkEvery", interval), zap.Bool("removeOnExit", m.RemoveOnExit))
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err == nil && !bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
		d.log.Warn("net.ipv4.ip_forward is off in the node's namespace: pods' traffic to outside the cluster is not forwarded, masqueraded or not")
	}
	return nil
}

// stopMasquerade ends the repair loop and removes the rules if the config
// says so.
func (d *Daemon) stopMasquerade() error {
	if d.masqDone == nil {
		return nil // never started, or stopped already
	}
	d.stopMasq()
	<-d.masqDone
	d.masqDone = nil
	rules := d.masq // stays set: Stats reads it
	if !d.cfg.Masquerade.RemoveOnExit {
		d.log.Info("masquerade rules left in place", zap.String("chain", masq.Chain))
		return nil
	}
	if err := rules.Remove(); err != nil {
		return err
	}
	d.log.Info("masquerade rules removed", zap.String("chain", masq.Chain))
	return nil
}
