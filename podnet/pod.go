package podnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/taprouter/taprouter/internal/inns"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/ifname"
	"github.com/taprouter/taprouter/link/tap"
)

// Pod describes one pod's port.
type Pod struct {
	NetNS   string     // path of the pod's network namespace, e.g. /var/run/netns/pa
	IfName  string     // name of the port inside the pod, e.g. "eth0"
	IP      netip.Addr // the pod's IPv4 address, configured as a /32
	Gateway netip.Addr // the pod's default gateway, which taprouter answers ARP for
	MTU     int        // the port's MTU: the underlay MTU minus the encapsulation overhead
	Offload bool       // offer the pod checksum offload and TSO (tap.Options.Offload)
	// NS, if set, is the pod's namespace, opened by the caller with
	// OpenNetNS (the daemon opens it before it takes its lock, with a
	// timeout); it stays the caller's to close, and NetNS only names it.
	// If nil, NetNS is opened with OpenNetNS.
	NS *os.File
}

func (p Pod) String() string { return fmt.Sprintf("%s %s in %s", p.IfName, p.IP, p.NetNS) }

func (p Pod) validate() error {
	if p.NetNS == "" {
		return errors.New("no network namespace path")
	}
	if err := ifname.Check(p.IfName); err != nil {
		return fmt.Errorf("invalid interface name: %w", err)
	}
	switch {
	case !p.IP.Is4():
		return fmt.Errorf("pod IP %v is not an IPv4 address", p.IP)
	case !p.Gateway.Is4():
		return fmt.Errorf("gateway %v is not an IPv4 address", p.Gateway)
	case p.MTU < 68 || p.MTU > 65535:
		return fmt.Errorf("invalid MTU %d: want 68 to 65535", p.MTU)
	}
	return nil
}

// Iface is a pod's TAP as AttachPod or AdoptPod left it: its index in the
// pod's namespace, which names the device for DetachPod whatever the pod
// calls it (the pod cannot change it), and the MAC the pod uses on it.
type Iface struct {
	Index int
	MAC   link.HardwareAddr
}

// AttachPod gives the pod its port: a TAP device created in the caller's
// namespace under a temporary name, moved into p.NetNS, renamed to p.IfName
// and configured with p.IP/32, a link-scope route to p.Gateway and a default
// route via p.Gateway; the pod's loopback is brought up too. It returns the
// open device (persistent, so that the pod keeps its port across a daemon
// restart) and its Iface.
//
// On failure nothing is left behind, wherever the device had got to, and the
// error names the step that failed.
func AttachPod(p Pod) (*tap.Device, Iface, error) {
	if err := p.validate(); err != nil {
		return nil, Iface{}, fmt.Errorf("attach pod %v: %w", p, err)
	}
	ns, done, err := p.openNS()
	if err != nil {
		return nil, Iface{}, fmt.Errorf("attach pod %v: open netns: %w", p, err)
	}
	defer done()
	h, err := newHandleIn(ns)
	if err != nil {
		return nil, Iface{}, fmt.Errorf("attach pod %v: netlink in pod netns: %w", p, err)
	}
	defer h.Close()

	// The device is not persistent until it is fully configured: until
	// then, closing it deletes it in whichever namespace it is.
	dev, err := tap.Create(tempName(), tap.TAP, tap.Options{MTU: p.MTU, Offload: p.Offload})
	if err != nil {
		return nil, Iface{}, fmt.Errorf("attach pod %v: %w", p, err)
	}
	iface, err := configurePod(h, ns, dev.Name(), p)
	if err == nil {
		err = dev.SetPersist(true)
	}
	if err != nil {
		dev.Close()
		return nil, Iface{}, fmt.Errorf("attach pod %v: %w", p, err)
	}
	return dev, iface, nil
}

// tempName returns a name, unique in practice, for a pod's TAP before it is
// moved and renamed: "trp" and 12 random hex digits, 15 bytes in all.
func tempName() string {
	var b [6]byte
	rand.Read(b[:])
	return "trp" + hex.EncodeToString(b[:])
}

// configurePod moves the device called name into the pod and configures it;
// h is a netlink handle in the pod's namespace ns.
func configurePod(h *netlink.Handle, ns netns.NsHandle, name string, p Pod) (Iface, error) {
	var mac Iface
	l, err := netlink.LinkByName(name)
	if err != nil {
		return mac, fmt.Errorf("find %s: %w", name, err)
	}
	if err := netlink.LinkSetNsFd(l, int(ns)); err != nil {
		return mac, fmt.Errorf("move %s into the pod: %w", name, err)
	}
	if l, err = h.LinkByName(name); err != nil {
		return mac, fmt.Errorf("find %s in the pod: %w", name, err)
	}
	if err := h.LinkSetName(l, p.IfName); err != nil {
		return mac, fmt.Errorf("rename %s to %s: %w", name, p.IfName, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.IP.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := h.AddrAdd(l, addr); err != nil {
		return mac, fmt.Errorf("add address %s/32: %w", p.IP, err)
	}
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return mac, fmt.Errorf("bring up lo: %w", err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return mac, fmt.Errorf("bring up %s: %w", p.IfName, err)
	}
	index := l.Attrs().Index
	gw := &net.IPNet{IP: p.Gateway.AsSlice(), Mask: net.CIDRMask(32, 32)}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: index, Dst: gw, Scope: netlink.SCOPE_LINK}); err != nil {
		return mac, fmt.Errorf("add route %s dev %s: %w", p.Gateway, p.IfName, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: index, Gw: p.Gateway.AsSlice()}); err != nil {
		return mac, fmt.Errorf("add route default via %s dev %s: %w", p.Gateway, p.IfName, err)
	}
	if l, err = h.LinkByIndex(index); err != nil {
		return mac, fmt.Errorf("read back %s: %w", p.IfName, err)
	}
	return ifaceOf(l)
}

// ifaceOf returns l's Iface.
func ifaceOf(l netlink.Link) (Iface, error) {
	i := Iface{Index: l.Attrs().Index}
	if copy(i.MAC[:], l.Attrs().HardwareAddr) != len(i.MAC) {
		return Iface{}, fmt.Errorf("%s: MAC %q is not an Ethernet address", l.Attrs().Name, l.Attrs().HardwareAddr)
	}
	return i, nil
}

// ErrNotOwned: DetachPod left the pod's interface alone, because it is not
// the caller's: not a TAP, or a TAP that someone else has open.
var ErrNotOwned = errors.New("the pod's interface is not the caller's")

// DetachPod deletes the pod's TAP in p.NetNS that the caller owns: own is
// the Iface AttachPod or AdoptPod returned, and the device of that index is
// deleted, whatever it is called now. The zero Iface means the caller never
// held the TAP (a port on record that could not be attached): then the TAP
// called p.IfName is deleted only if DetachPod can open it itself, that is,
// if no one else has it open (the live pod that another record is for,
// say). A device that is not the caller's, by either rule, is left alone
// and the error wraps ErrNotOwned. It returns nil if the namespace (nothing,
// or no network namespace at p.NetNS any more) or the device is already
// gone. The daemon should also Close the port's tap.Device; a Read blocked
// on it returns an error wrapping link.ErrClosed once the port is deleted.
func DetachPod(p Pod, own Iface) error {
	ns, done, err := p.openNS()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotNetNS) {
		return nil // the pod's namespace is gone, and its eth0 with it
	}
	if err != nil {
		return fmt.Errorf("detach pod %v: open netns: %w", p, err)
	}
	defer done()
	h, err := newHandleIn(ns)
	if err != nil {
		return fmt.Errorf("detach pod %v: netlink in pod netns: %w", p, err)
	}
	defer h.Close()
	var l netlink.Link
	if own.Index != 0 {
		l, err = h.LinkByIndex(own.Index)
	} else {
		l, err = h.LinkByName(p.IfName)
	}
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach pod %v: find %s: %w", p, p.IfName, err)
	}
	name := l.Attrs().Name
	if l.Type() != "tuntap" {
		return fmt.Errorf("detach pod %v: %s is a %s device: %w", p, name, l.Type(), ErrNotOwned)
	}
	if own.Index == 0 {
		// Taking the TAP proves no one else has it: a TAP has one
		// queue, and TUNSETIFF on one that is open elsewhere is EBUSY.
		var dev *tap.Device
		if err := inns.Do(ns, func() (err error) {
			dev, err = tap.Attach(name, tap.TAP, false)
			return err
		}); err != nil {
			return fmt.Errorf("detach pod %v: %s: %v: %w", p, name, err, ErrNotOwned)
		}
		defer dev.Close()
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("detach pod %v: delete %s: %w", p, name, err)
	}
	return nil
}
