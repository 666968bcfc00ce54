package kube

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taprouter/taprouter/peers"
)

// Self is this node as its own Node object describes it.
type Self struct {
	// Node is the Node's name.
	Node string
	// Addr is the first IPv4 InternalIP: the underlay address, and so the
	// underlay interface (the one that holds it).
	Addr netip.Addr
	// PodCIDRs are this node's IPv4 pod ranges (spec.podCIDRs, else
	// spec.podCIDR).
	PodCIDRs []netip.Prefix
}

// nodeInfo is what one Node object says, parsed once per resourceVersion.
type nodeInfo struct {
	resourceVersion string
	self            Self // Addr is the InternalIP alone
	peer            peers.Peer
	// wait says why the node is not usable yet (no podCIDR, no address);
	// "" when it is.
	wait string
	// problems are the annotation values that were skipped.
	problems []string
}

// parseNode reads n. Only IPv4 pod ranges are kept: the router forwards
// IPv4.
func parseNode(n *corev1.Node) nodeInfo {
	info := nodeInfo{resourceVersion: n.ResourceVersion}
	info.self.Node = n.Name
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if addr, why := parseUnderlay(a.Address); why == "" {
			info.self.Addr = addr
			break
		}
	}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			info.problems = append(info.problems, "podCIDR "+quoteShort(c)+": not a CIDR")
			continue
		}
		if p.Addr().Is4() {
			info.self.PodCIDRs = append(info.self.PodCIDRs, p.Masked())
		}
	}
	ann, problems := parseAnnotations(n.Annotations)
	info.problems = append(info.problems, problems...)
	info.peer = peers.Peer{
		Node:     n.Name,
		Addr:     ann.Addr,
		PodCIDRs: info.self.PodCIDRs,
		Backend:  ann.Backend,
		VTEPMAC:  ann.VTEPMAC,
	}
	if !info.peer.Addr.IsValid() {
		info.peer.Addr = info.self.Addr
	}
	switch {
	case len(info.self.PodCIDRs) == 0:
		info.wait = "no IPv4 podCIDR yet"
	case !info.self.Addr.IsValid() && !info.peer.Addr.IsValid():
		info.wait = "no IPv4 InternalIP yet"
	}
	return info
}

// slimNode is the informer's transform: the cache keeps only what
// parseNode and the publisher read, not a Node's images, conditions and
// managed fields (most of its size).
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	var ann map[string]string
	for k, v := range n.Annotations {
		if ours(k) {
			if ann == nil {
				ann = make(map[string]string)
			}
			ann[k] = v
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Annotations:     ann,
		},
		Spec:   corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
		Status: corev1.NodeStatus{Addresses: slices.Clone(n.Status.Addresses)},
	}, nil
}

func sameSelf(a, b Self) bool {
	return a.Node == b.Node && a.Addr == b.Addr && slices.Equal(a.PodCIDRs, b.PodCIDRs)
}

func samePeers(a, b []peers.Peer) bool {
	return slices.EqualFunc(a, b, func(x, y peers.Peer) bool {
		return x.Node == y.Node && x.Addr == y.Addr && x.Backend == y.Backend &&
			x.VTEPMAC == y.VTEPMAC && slices.Equal(x.PodCIDRs, y.PodCIDRs)
	})
}
