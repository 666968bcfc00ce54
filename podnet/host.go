package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/tap"
)

// CreateHostPort creates the host port: a TUN device called name in the
// calling thread's namespace, with the given MTU, up, and a route
// "prefix dev name scope link src src" for every prefix (without src if src
// is not valid). A route to the same prefix through another device is
// replaced: the host port owns these prefixes.
//
// The device is not persistent: closing it deletes it and its routes.
func CreateHostPort(name string, mtu int, routes []netip.Prefix, src netip.Addr) (*tap.Device, error) {
	dev, err := tap.Create(name, tap.TUN, tap.Options{MTU: mtu})
	if err != nil {
		return nil, fmt.Errorf("create host port: %w", err)
	}
	if err := configureHostPort(name, routes, src); err != nil {
		dev.Close()
		return nil, fmt.Errorf("create host port %s: %w", name, err)
	}
	return dev, nil
}

func configureHostPort(name string, routes []netip.Prefix, src netip.Addr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find: %w", err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up: %w", err)
	}
	for _, prefix := range routes {
		prefix = prefix.Masked()
		r := &netlink.Route{
			LinkIndex: l.Attrs().Index,
			Dst:       &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), prefix.Addr().BitLen())},
			Scope:     netlink.SCOPE_LINK,
		}
		if src.IsValid() {
			r.Src = src.AsSlice()
		}
		if err := netlink.RouteReplace(r); err != nil {
			return fmt.Errorf("add route %s dev %s src %v: %w", prefix, name, src, err)
		}
	}
	return nil
}

// RemoveHostPort deletes the device called name in the calling thread's
// namespace, typically a host port left over by a previous run. It returns
// nil if there is no such device.
func RemoveHostPort(name string) error {
	l, err := netlink.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove host port %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("remove host port %s: %w", name, err)
	}
	return nil
}

// Underlay returns the first primary IPv4 address, the MAC and the MTU of
// the interface ifname in the calling thread's namespace. The MAC is zero if
// the interface is not Ethernet.
func Underlay(ifname string) (addr netip.Addr, mac link.HardwareAddr, mtu int, err error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return addr, mac, 0, fmt.Errorf("underlay %s: %w", ifname, err)
	}
	addrs, err := addrList(l)
	if err != nil {
		return addr, mac, 0, fmt.Errorf("underlay %s: list addresses: %w", ifname, err)
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_SECONDARY != 0 {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			addr = ip
			break
		}
	}
	if !addr.IsValid() {
		return addr, mac, 0, fmt.Errorf("underlay %s: no IPv4 address", ifname)
	}
	if hw := l.Attrs().HardwareAddr; len(hw) == len(mac) {
		copy(mac[:], hw)
	}
	return addr, mac, l.Attrs().MTU, nil
}

// addrList lists l's IPv4 addresses, retrying when a concurrent change
// interrupts the dump.
func addrList(l netlink.Link) ([]netlink.Addr, error) {
	for range 3 {
		addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return addrs, err
		}
	}
	return nil, fmt.Errorf("address dump interrupted three times")
}

// InterfaceWithAddr returns the name of the interface that holds addr in the
// calling thread's namespace: in Kubernetes mode, the underlay is the
// interface with the Node's InternalIP.
func InterfaceWithAddr(addr netip.Addr) (string, error) {
	var addrs []netlink.Addr
	var err error
	for range 3 {
		addrs, err = netlink.AddrList(nil, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == addr.Unmap() {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("interface of %s: %w", addr, err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("no interface in this network namespace has address %s", addr)
}
