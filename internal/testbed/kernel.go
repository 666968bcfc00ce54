package testbed

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/taprouter/taprouter/link"
)

// The kernel reference topologies wire the same cluster with the Linux
// kernel's own forwarding, the way two common CNI setups do. They are what
// taprouter is compared against (bench/compare) and what it must interoperate
// with (the flannel topology).

// flannelDevice is the name flannel gives its vxlan device.
const flannelDevice = "flannel.1"

// WireKernelPTP wires nodes (all when none are given) as kindnet does with the
// ptp CNI plugin: a veth per pod whose host end holds the gateway as /32, a
// /32 route per pod, ip_forward=1 in the node, and a route to every other
// node's podCIDR via that node's underlay address. Pod MTU defaults to 1500.
func (c *Cluster) WireKernelPTP(nodes ...*ClusterNode) error {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	for _, n := range nodes {
		if err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
			return err
		}
		for _, p := range n.Pods {
			if err := attachKernelPod(n, p, UnderlayMTU); err != nil {
				return err
			}
		}
		for _, peer := range c.Nodes {
			if peer == n {
				continue
			}
			if _, err := n.IP("route", "replace", peer.Spec.PodCIDR.String(), "via", peer.Addr.String(), "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	return nil
}

// WireKernelFlannel wires nodes (all when none are given) as flannel's vxlan
// backend does: a vxlan device flannel.1 (VNI 1, UDP 8472, nolearning, MTU
// 1450, address <podCIDR network>/32) and, for every other node of the
// cluster, a static FDB entry, a permanent neighbour and an onlink route to
// its podCIDR. Other nodes' VTEP MACs are their VTEPMAC: flannel.1's random
// MAC for kernel nodes, the derived MAC for taprouter nodes. Pods are wired
// as in WireKernelPTP with MTU 1450 by default.
func (c *Cluster) WireKernelFlannel(nodes ...*ClusterNode) error {
	if len(nodes) == 0 {
		nodes = c.Nodes
	}
	// Create every device first: each node's peers need the others' MACs.
	for _, n := range nodes {
		if err := n.WireKernelFlannelNode(); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		for _, peer := range c.Nodes {
			if peer == n {
				continue
			}
			if err := n.AddFlannelPeer(peer.VTEPMAC(), peer.Addr, peer.Spec.PodCIDR); err != nil {
				return err
			}
		}
	}
	return nil
}

// WireKernelFlannelNode wires n as flanneld's vxlan backend does before it
// has any other node's lease: ip_forward=1, the vxlan device flannel.1 (VNI
// 1, UDP 8472, nolearning, MTU 1450, address <podCIDR network>/32) and n's
// pods on veths (MTU 1450 by default). AddFlannelPeer then adds each other
// node as flannel does from that node's annotations.
func (n *ClusterNode) WireKernelFlannelNode() error {
	if err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return err
	}
	steps := [][]string{
		{"link", "add", flannelDevice, "type", "vxlan", "id", "1", "local", n.Addr.String(), "dev", "eth0", "dstport", "8472", "nolearning"},
		{"link", "set", flannelDevice, "mtu", strconv.Itoa(UnderlayMTU - 50), "up"},
		{"addr", "add", n.Spec.PodCIDR.Addr().String() + "/32", "dev", flannelDevice},
	}
	for _, s := range steps {
		if _, err := n.IP(s...); err != nil {
			return err
		}
	}
	l, err := n.Link(flannelDevice)
	if err != nil {
		return err
	}
	n.flannelMAC = l.MAC
	for _, p := range n.Pods {
		if err := attachKernelPod(n, p, UnderlayMTU-50); err != nil {
			return err
		}
	}
	return nil
}

// AddFlannelPeer programs n's flannel.1 for another node as flanneld's vxlan
// backend does for a lease (VtepMAC from backend-data, public-ip, the
// node's podCIDR): a static FDB entry vtepMAC → publicIP, a permanent
// neighbour <podCIDR network> → vtepMAC, and an onlink route to podCIDR via
// that address.
func (n *ClusterNode) AddFlannelPeer(vtepMAC link.HardwareAddr, publicIP netip.Addr, podCIDR netip.Prefix) error {
	mac := vtepMAC.String()
	vtepIP := podCIDR.Masked().Addr().String()
	if _, err := n.Run("bridge", "fdb", "append", mac, "dev", flannelDevice, "dst", publicIP.String()); err != nil {
		return err
	}
	steps := [][]string{
		{"neigh", "replace", vtepIP, "lladdr", mac, "dev", flannelDevice, "nud", "permanent"},
		{"route", "replace", podCIDR.Masked().String(), "via", vtepIP, "dev", flannelDevice, "onlink"},
	}
	for _, s := range steps {
		if _, err := n.IP(s...); err != nil {
			return err
		}
	}
	return nil
}

// FlannelMAC is flannel.1's MAC on a node wired by WireKernelFlannel, zero
// otherwise.
func (n *ClusterNode) FlannelMAC() link.HardwareAddr { return n.flannelMAC }

// attachKernelPod connects pod p to node n with a veth pair as the ptp CNI
// plugin does. A PodSpec MTU overrides defaultMTU.
func attachKernelPod(n *ClusterNode, p *Pod, defaultMTU int) error {
	hostEnd := "veth" + p.Spec.Name
	if len(hostEnd) > 15 {
		return fmt.Errorf("testbed: pod name %q is longer than 11 characters", p.Spec.Name)
	}
	mtu := strconv.Itoa(defaultMTU)
	if p.Spec.MTU != 0 {
		mtu = strconv.Itoa(p.Spec.MTU)
	}
	gw, ip := n.Spec.Gateway.String(), p.Spec.IP.String()
	steps := []struct {
		ns   *Netns
		args []string
	}{
		{n.Netns, []string{"link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", p.Name}},
		{n.Netns, []string{"link", "set", hostEnd, "mtu", mtu, "up"}},
		{n.Netns, []string{"addr", "add", gw + "/32", "dev", hostEnd}},
		{n.Netns, []string{"route", "add", ip + "/32", "dev", hostEnd, "scope", "link"}},
		{p.Netns, []string{"link", "set", "eth0", "mtu", mtu, "up"}},
		{p.Netns, []string{"addr", "add", ip + "/32", "dev", "eth0"}},
		{p.Netns, []string{"route", "add", gw, "dev", "eth0", "scope", "link"}},
		{p.Netns, []string{"route", "add", "default", "via", gw, "dev", "eth0"}},
	}
	for _, s := range steps {
		if _, err := s.ns.IP(s.args...); err != nil {
			return err
		}
	}
	return nil
}
