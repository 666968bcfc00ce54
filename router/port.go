package router

import (
	"net/netip"
	"sync/atomic"

	"github.com/taprouter/taprouter/link"
)

// PortKind is a port's role.
type PortKind uint8

const (
	PodPort  PortKind = iota // a TAP whose other end is a pod's eth0
	HostPort                 // a TUN in the node's own namespace
)

func (k PortKind) String() string {
	if k == HostPort {
		return "host"
	}
	return "pod"
}

// Port is a device attached to the router.
type Port struct {
	ID   uint32
	Name string
	Kind PortKind
	// IP and MAC are the pod's: a frame from this port with another source
	// address is dropped (anti-spoofing). MAC is the pod interface's address
	// as read when the port was attached; frames TO the pod use the MAC the
	// router learned by ARP.
	IP  netip.Addr
	MAC link.HardwareAddr
	MTU int

	dev  link.Device
	gso  link.GSODevice // dev, if it moves super-frames whole
	done chan struct{}  // closed when the port's ingress goroutine ends

	// ingress and egress police the pod's traffic (to it, from it); nil
	// means no limit. See Router.SetBandwidth.
	ingress, egress atomic.Pointer[tokenBucket]

	// closing is set before the router closes the device; down holds why
	// the port's reads stopped when nobody closed it (the TAP was deleted,
	// or its reads failed): the port forwards nothing from the pod.
	closing atomic.Bool
	down    atomic.Pointer[string]

	// The port's counters. Rx is counted once per batch by the port's own
	// ingress goroutine; Tx and Drops by whichever goroutine sends to the
	// pod, once per egress batch. The padding (64 bytes around each group,
	// whatever the struct's alignment) keeps the two groups, and the
	// fields above, on cache lines of their own, so that the port's reader
	// and the goroutines writing to it do not dirty each other's.
	_                  [64]byte
	RxPackets, RxBytes atomic.Uint64
	_                  [64]byte
	TxPackets, TxBytes atomic.Uint64
	Drops              atomic.Uint64
	_                  [64]byte
}

// gsoDevice returns dev as a link.GSODevice if it moves super-frames whole.
func gsoDevice(dev link.Device) link.GSODevice {
	if g, ok := dev.(link.GSODevice); ok && g.GSO() {
		return g
	}
	return nil
}

// Device is the port's device.
func (p *Port) Device() link.Device { return p.dev }

// PortInfo is a snapshot of a port for status output.
type PortInfo struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Device    string `json:"device"`
	IP        string `json:"ip,omitempty"`
	MAC       string `json:"mac,omitempty"`
	MTU       int    `json:"mtu"`
	RxPackets uint64 `json:"rxPackets"`
	RxBytes   uint64 `json:"rxBytes"`
	TxPackets uint64 `json:"txPackets"`
	TxBytes   uint64 `json:"txBytes"`
	Drops     uint64 `json:"drops"`
	// Down is set when the port's device failed and its reads stopped
	// (the TAP disappeared); DownReason says why.
	Down       bool   `json:"down,omitempty"`
	DownReason string `json:"downReason,omitempty"`
}

func (p *Port) info() PortInfo {
	pi := PortInfo{ID: p.ID, Name: p.Name, Kind: p.Kind.String(), Device: p.dev.Name(), MTU: p.MTU,
		RxPackets: p.RxPackets.Load(), RxBytes: p.RxBytes.Load(), TxPackets: p.TxPackets.Load(), TxBytes: p.TxBytes.Load(), Drops: p.Drops.Load()}
	if p.IP.IsValid() {
		pi.IP = p.IP.String()
	}
	if !p.MAC.IsZero() {
		pi.MAC = p.MAC.String()
	}
	if why := p.down.Load(); why != nil {
		pi.Down, pi.DownReason = true, *why
	}
	return pi
}

// deviceOffloads is what p's device did with offloaded frames, if it takes
// any.
func (p *Port) deviceOffloads() (link.OffloadStats, bool) {
	if p == nil {
		return link.OffloadStats{}, false
	}
	c, ok := p.dev.(link.OffloadCounter)
	if !ok {
		return link.OffloadStats{}, false
	}
	return c.OffloadStats(), true
}
