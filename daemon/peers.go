package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/peers"
)

// hostPortAddr is the address the host port holds and the node's namespace
// uses as source toward pods of other nodes: the pod range's network
// address, as flannel gives flannel.1 (the router routes it back to the host
// port). Invalid for a pod range too small to spare it.
func hostPortAddr(podCIDR netip.Prefix) netip.Addr {
	if podCIDR.Bits() > 30 {
		return netip.Addr{}
	}
	return podCIDR.Masked().Addr()
}

// nodeRoutes is peers.NodeRoutes in the daemon's namespace: a route
// "<podCIDR> dev <host port> scope link src <hostPortAddr>" per peer pod
// range. They go with the host port when the daemon exits.
type nodeRoutes struct {
	dev string
	src netip.Addr

	mu      sync.Mutex
	foreign map[netip.Prefix]string // routes of others in the main table, from one dump
	dumped  time.Time               // when foreign was read
}

// foreignRoutesMaxAge bounds how old the dump AddRoute checks against may
// be: a batch of 5,000 peers costs one dump, not one each (a dump per
// route made Apply O(n²): half a minute at 5,000 Nodes).
const foreignRoutesMaxAge = time.Second

func (n *nodeRoutes) route(prefix netip.Prefix) (*netlink.Route, error) {
	l, err := netlink.LinkByName(n.dev)
	if err != nil {
		return nil, err
	}
	r := &netlink.Route{
		LinkIndex: l.Attrs().Index,
		Dst:       &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), 32)},
		Scope:     netlink.SCOPE_LINK,
	}
	if n.src.IsValid() {
		r.Src = n.src.AsSlice()
	}
	return r, nil
}

// AddRoute routes prefix to the host port, replacing a route of its own
// to it but never another device's (or a gateway's, a blackhole's) to the
// same prefix, at any metric: that one stays, and AddRoute fails naming
// it. Replacing it would take the node's traffic to, say, its underlay or
// docker0's subnet into the tunnel (found by attack review).
func (n *nodeRoutes) AddRoute(prefix netip.Prefix) error {
	r, err := n.route(prefix)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.foreign == nil || time.Since(n.dumped) > foreignRoutesMaxAge {
		if err := n.dumpForeign(r.LinkIndex); err != nil {
			return err
		}
	}
	if desc, ok := n.foreign[prefix.Masked()]; ok {
		return fmt.Errorf("the node has a route to %s (%s): not replaced", prefix, desc)
	}
	return netlink.RouteReplace(r)
}

// dumpForeign reads the main table once and keeps every route that is not
// one of ours (a unicast route through the host port without gateway).
func (n *nodeRoutes) dumpForeign(ours int) error {
	var all []netlink.Route
	var err error
	for range 3 {
		all, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("list the node's routes: %w", err)
	}
	foreign := make(map[netip.Prefix]string)
	for _, h := range all {
		if h.Dst == nil || h.LinkIndex == ours && h.Gw == nil && h.Type == unix.RTN_UNICAST {
			continue
		}
		a, ok := netip.AddrFromSlice(h.Dst.IP.To4())
		if !ok {
			continue
		}
		bits, _ := h.Dst.Mask.Size()
		dev := "no device"
		if l, err := netlink.LinkByIndex(h.LinkIndex); err == nil {
			dev = "dev " + l.Attrs().Name
		}
		foreign[netip.PrefixFrom(a, bits).Masked()] = dev + ", " + h.String()
	}
	n.foreign, n.dumped = foreign, time.Now()
	return nil
}

func (n *nodeRoutes) DelRoute(prefix netip.Prefix) error {
	r, err := n.route(prefix)
	if err != nil {
		return err
	}
	if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// addHostPortAddr gives the host port its address, a /32.
func addHostPortAddr(dev string, a netip.Addr) error {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add address %s/32 to %s: %w", a, dev, err)
	}
	return nil
}

// underlayReserved returns the IPv4 subnets of the underlay interface
// ifname that no peer's pod range may overlap (peers.Local.Reserved): a
// node route to such a range would shadow the node's route to its own
// underlay (its gateway, the API server). A subnet that holds this node's
// own pod range is left out: that cluster's layout overlaps on purpose.
func underlayReserved(ifname string, podCIDR netip.Prefix) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range as {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		if !ok || ones == 0 || ones >= 32 {
			continue
		}
		p := netip.PrefixFrom(ip, ones).Masked()
		if podCIDR.IsValid() && p.Overlaps(podCIDR) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// configPeers is the static config's peer set, the file as a peer source.
func configPeers(cfg *config.Config) []peers.Peer {
	out := make([]peers.Peer, len(cfg.Peers))
	for i, p := range cfg.Peers {
		out[i] = peers.Peer{Node: p.Node, Addr: p.Address, PodCIDRs: []netip.Prefix{p.PodCIDR}, VTEPMAC: p.VTEPMAC}
	}
	return out
}

// ApplyPeers makes desired the peer set through the reconciler (a source
// calls it with the whole set, again on every change) and logs what
// changed and what was refused.
func (d *Daemon) ApplyPeers(source string, desired []peers.Peer) (peers.Result, error) {
	res, err := d.peers.Apply(desired)
	d.log.Info("peers applied", zap.String("source", source), zap.Int("peers", len(desired)), zap.Strings("added", res.Added),
		zap.Strings("changed", res.Changed), zap.Strings("removed", res.Removed), zap.Int("invalid", len(res.Invalid)), zap.Strings("kept", res.Kept), zap.Error(err))
	return res, err
}

// ReloadPeers reads the config file at path again and applies its peers
// (taprouterd does it on SIGHUP). Other changes in the file need a restart
// and are not applied.
func (d *Daemon) ReloadPeers(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		d.log.Warn("config reload refused; peers unchanged", zap.String("config", path), zap.Error(err))
		return err
	}
	if cfg.Node != d.cfg.Node || cfg.PodCIDR != d.cfg.PodCIDR || cfg.Backend != d.cfg.Backend {
		d.log.Warn("config reload: only peers are applied; node, podCIDR and backend changes need a restart", zap.String("config", path))
	}
	_, err = d.ApplyPeers("config "+path, configPeers(cfg))
	return err
}

// Peers implements api.Backend.
func (d *Daemon) Peers() []api.Peer {
	ps := d.peers.Peers()
	out := make([]api.Peer, len(ps))
	for i, p := range ps {
		ap := api.Peer{Node: p.Node, Address: p.Addr.String(), Backend: p.Backend, ID: p.ID, PodCIDRs: make([]string, len(p.PodCIDRs))}
		for j, c := range p.PodCIDRs {
			ap.PodCIDRs[j] = c.String()
		}
		if !p.VTEPMAC.IsZero() {
			ap.VTEPMAC = p.VTEPMAC.String()
		}
		out[i] = ap
	}
	return out
}
