package podnet

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/taprouter/taprouter/internal/inns"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/tap"
)

// Errors of AdoptPod.
var (
	// ErrNoPort: the pod has no interface called p.IfName; there is
	// nothing to adopt, AttachPod creates it.
	ErrNoPort = errors.New("no such interface in the pod")
	// ErrNotTAP: the pod's interface of that name is not a TAP, so it is
	// not taprouter's; it is left alone.
	ErrNotTAP = errors.New("the pod's interface is not a TAP")
)

// AdoptPod takes over the persistent TAP a previous taprouterd left in the
// pod as p.IfName: it opens the device again from inside the pod's
// namespace and makes sure its MTU, address and routes are as p says (a
// pod keeps its MAC and its address across a daemon restart). It returns
// the open device and its Iface, or an error wrapping ErrNoPort if the
// interface does not exist.
func AdoptPod(p Pod) (*tap.Device, Iface, error) {
	var mac Iface
	if err := p.validate(); err != nil {
		return nil, mac, fmt.Errorf("adopt pod %v: %w", p, err)
	}
	ns, done, err := p.openNS()
	if err != nil {
		return nil, mac, fmt.Errorf("adopt pod %v: open netns: %w", p, err)
	}
	defer done()
	h, err := newHandleIn(ns)
	if err != nil {
		return nil, mac, fmt.Errorf("adopt pod %v: netlink in pod netns: %w", p, err)
	}
	defer h.Close()
	l, err := h.LinkByName(p.IfName)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil, mac, fmt.Errorf("adopt pod %v: %w", p, ErrNoPort)
	}
	if err != nil {
		return nil, mac, fmt.Errorf("adopt pod %v: find %s: %w", p, p.IfName, err)
	}
	if l.Type() != "tuntap" {
		return nil, mac, fmt.Errorf("adopt pod %v: %s is a %s device: %w", p, p.IfName, l.Type(), ErrNotTAP)
	}
	var dev *tap.Device
	err = inns.Do(ns, func() (err error) {
		dev, err = tap.Attach(p.IfName, tap.TAP, p.Offload)
		return err
	})
	if err != nil {
		return nil, mac, fmt.Errorf("adopt pod %v: %w", p, err)
	}
	if mac, err = ensurePod(h, l, p); err != nil {
		dev.Close()
		return nil, mac, fmt.Errorf("adopt pod %v: %w", p, err)
	}
	return dev, mac, nil
}

// ensurePod sets what configurePod set, leaving what is already right.
func ensurePod(h *netlink.Handle, l netlink.Link, p Pod) (Iface, error) {
	var mac Iface
	if l.Attrs().MTU != p.MTU {
		if err := h.LinkSetMTU(l, p.MTU); err != nil {
			return mac, fmt.Errorf("set MTU %d: %w", p.MTU, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := h.AddrReplace(l, addr); err != nil {
		return mac, fmt.Errorf("set address %s/32: %w", p.IP, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return mac, fmt.Errorf("bring up %s: %w", p.IfName, err)
	}
	index := l.Attrs().Index
	gw := &net.IPNet{IP: p.Gateway.AsSlice(), Mask: net.CIDRMask(32, 32)}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: index, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
		return mac, fmt.Errorf("set route %s dev %s: %w", p.Gateway, p.IfName, err)
	}
	if err := h.RouteReplace(&netlink.Route{LinkIndex: index, Gw: p.Gateway.AsSlice()}); err != nil {
		return mac, fmt.Errorf("set route default via %s dev %s: %w", p.Gateway, p.IfName, err)
	}
	return ifaceOf(l)
}

// CheckPod compares the pod's interface with p and the MAC the router knows
// and returns every difference, one sentence each; none means all is well.
func CheckPod(p Pod, mac link.HardwareAddr) []string {
	ns, done, err := p.openNS()
	if err != nil {
		return []string{fmt.Sprintf("network namespace %s: %v", p.NetNS, err)}
	}
	defer done()
	h, err := newHandleIn(ns)
	if err != nil {
		return []string{fmt.Sprintf("network namespace %s: netlink: %v", p.NetNS, err)}
	}
	defer h.Close()
	l, err := h.LinkByName(p.IfName)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", p.IfName, err)}
	}
	var problems []string
	a := l.Attrs()
	if l.Type() != "tuntap" {
		problems = append(problems, fmt.Sprintf("%s is a %s device, want a TAP", p.IfName, l.Type()))
	}
	if a.Flags&net.FlagUp == 0 {
		problems = append(problems, fmt.Sprintf("%s is down", p.IfName))
	}
	if a.MTU != p.MTU {
		problems = append(problems, fmt.Sprintf("%s MTU is %d, want %d", p.IfName, a.MTU, p.MTU))
	}
	if got := a.HardwareAddr.String(); got != mac.String() {
		problems = append(problems, fmt.Sprintf("%s MAC is %s, want %s (the router's record)", p.IfName, got, mac))
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s addresses: %v", p.IfName, err))
	}
	want := fmt.Sprintf("%s/32", p.IP)
	var have []string
	for _, ad := range addrs {
		have = append(have, ad.IPNet.String())
	}
	if !slices.Contains(have, want) {
		problems = append(problems, fmt.Sprintf("%s has addresses %v, want %s", p.IfName, have, want))
	}
	routes, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s routes: %v", p.IfName, err))
	}
	var linkRoute, defRoute bool
	for _, r := range routes {
		switch {
		case r.Dst != nil && r.Dst.String() == p.Gateway.String()+"/32" && r.Scope == netlink.SCOPE_LINK:
			linkRoute = true
		case (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(p.Gateway.AsSlice()):
			defRoute = true
		}
	}
	if !linkRoute {
		problems = append(problems, fmt.Sprintf("route %s dev %s scope link is missing", p.Gateway, p.IfName))
	}
	if !defRoute {
		problems = append(problems, fmt.Sprintf("route default via %s dev %s is missing", p.Gateway, p.IfName))
	}
	return problems
}
