package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/ifname"
)

// Backend names.
const (
	BackendVXLAN  = "vxlan"
	BackendUDP    = "udp"
	BackendDirect = "direct"
)

// Defaults.
const (
	DefaultVNI       = 1
	DefaultVXLANPort = 8472 // flannel's port; 4789 is IANA's
	DefaultUDPPort   = 8285 // flannel's udp backend port
	// DefaultSourcePorts is how many UDP source ports the vxlan and udp
	// backends spread flows over (package tunnel, VXLANConfig.Senders).
	DefaultSourcePorts  = 8
	maxSourcePorts      = 64 // tunnel.MaxSenders
	DefaultHostPortName = "taprouter0"
	DefaultIfName       = "eth0"
	maxVNI              = 1<<24 - 1
)

// The range of a pod MTU that taprouter accepts, wherever one is given (the
// config file, the API, the CNI plugin's config).
const (
	MinPodMTU = 576
	MaxPodMTU = 9000
)

// CalicoGateway is the link-local gateway Calico gives every pod.
var CalicoGateway = netip.MustParseAddr("169.254.1.1")

// Config is a validated configuration.
type Config struct {
	Node     string
	PodCIDR  netip.Prefix
	Gateway  netip.Addr
	Backend  string
	Underlay Underlay
	VXLAN    VXLAN
	UDP      UDP
	HostPort HostPort
	// Masquerade is the egress NAT of pods' traffic leaving the cluster.
	Masquerade Masquerade
	Peers      []Peer
	Ports      []Port
}

// Masquerade configures the egress masquerade (package masq): pods'
// traffic to destinations outside ClusterCIDRs leaves the node with the
// node's address as source.
type Masquerade struct {
	Enabled bool
	// ClusterCIDRs are the cluster's pod ranges (required when Enabled):
	// traffic to them is never masqueraded.
	ClusterCIDRs []netip.Prefix
	// RemoveOnExit removes the rules when the daemon exits; by default they
	// stay, as kindnet leaves its own, so that a restart does not cut
	// egress.
	RemoveOnExit bool
}

// Underlay is the node's interface toward the other nodes.
type Underlay struct {
	Interface string
	Address   netip.Addr // zero: the interface's first IPv4 address
}

// VXLAN configures the vxlan backend.
type VXLAN struct {
	VNI  uint32
	Port uint16
	MAC  link.HardwareAddr // zero: derived from the underlay address
	// SourcePorts is how many UDP source ports outgoing flows are spread
	// over, each flow always on one (a hash of its addresses, protocol and
	// ports), as Linux vxlan does; 1 sends everything from Port.
	SourcePorts int
}

// UDP configures the udp backend.
type UDP struct {
	Port        uint16
	SourcePorts int // as VXLAN.SourcePorts
}

// HostPort configures the TUN device that connects the node's own namespace.
type HostPort struct {
	Name string
}

// Peer is another node.
type Peer struct {
	Node    string
	Address netip.Addr
	PodCIDR netip.Prefix
	VTEPMAC link.HardwareAddr // vxlan: the peer's VTEP MAC; zero for taprouter peers
}

// Port is a pod attached at start.
type Port struct {
	Name   string
	NetNS  string
	IfName string
	IP     netip.Addr
	MTU    int // zero: derived from the underlay MTU and the backend
}

// file mirrors the YAML document; every field is a string or a number so that
// validation, not the YAML decoder, says what is wrong with a value.
type file struct {
	Node     string `yaml:"node"`
	PodCIDR  string `yaml:"podCIDR"`
	Gateway  string `yaml:"gateway"`
	Backend  string `yaml:"backend"`
	Underlay struct {
		Interface string `yaml:"interface"`
		Address   string `yaml:"address"`
	} `yaml:"underlay"`
	VXLAN struct {
		VNI         *int64 `yaml:"vni"`
		Port        *int64 `yaml:"port"`
		MAC         string `yaml:"mac"`
		SourcePorts *int64 `yaml:"sourcePorts"`
	} `yaml:"vxlan"`
	UDP struct {
		Port        *int64 `yaml:"port"`
		SourcePorts *int64 `yaml:"sourcePorts"`
	} `yaml:"udp"`
	HostPort struct {
		Name string `yaml:"name"`
	} `yaml:"hostPort"`
	Masquerade struct {
		Enabled      bool     `yaml:"enabled"`
		ClusterCIDRs []string `yaml:"clusterCIDRs"`
		RemoveOnExit bool     `yaml:"removeOnExit"`
	} `yaml:"masquerade"`
	Peers []struct {
		Node    string `yaml:"node"`
		Address string `yaml:"address"`
		PodCIDR string `yaml:"podCIDR"`
		VTEPMAC string `yaml:"vtepMAC"`
	} `yaml:"peers"`
	Ports []struct {
		Name   string `yaml:"name"`
		NetNS  string `yaml:"netns"`
		IfName string `yaml:"ifName"`
		IP     string `yaml:"ip"`
		MTU    int    `yaml:"mtu"`
	} `yaml:"ports"`
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse validates a YAML document.
func Parse(b []byte) (*Config, error) {
	f, err := decode(b)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, errors.New("empty configuration")
	}
	return f.validate()
}

// NodeFacts are what the node's Kubernetes Node object says about it: its
// name, its pod range (spec.podCIDRs[0]) and its underlay address
// (InternalIP) with the interface that holds it.
type NodeFacts struct {
	Node              string
	PodCIDR           netip.Prefix
	UnderlayAddress   netip.Addr
	UnderlayInterface string
}

// ParseForNode validates a YAML document for a node whose identity comes
// from Kubernetes: the document may be empty and sets only what the Node
// does not say (backend, VNI, ports, gateway style, host port). The gateway
// may only be Calico's: one file serves nodes with different pod ranges. A field the
// Node does say — node, podCIDR, underlay — must be absent or agree with it;
// peers must be absent (every other Node is a peer). Without a gateway the
// pods' gateway is the pod range's first address (10.244.X.1, as kindnet
// and flannel give it); without a backend it is vxlan.
func ParseForNode(b []byte, facts NodeFacts) (*Config, error) {
	f, err := decode(b)
	if err != nil {
		return nil, err
	}
	if f == nil {
		f = &file{}
	}
	agree := func(field, got, want string) error {
		if got != "" && got != want {
			return fieldError(field, "%s, but the Kubernetes Node says %s", got, want)
		}
		return nil
	}
	for _, c := range []struct{ field, got, want string }{
		{"node", f.Node, facts.Node},
		{"podCIDR", f.PodCIDR, facts.PodCIDR.String()},
		{"underlay.address", f.Underlay.Address, facts.UnderlayAddress.String()},
		{"underlay.interface", f.Underlay.Interface, facts.UnderlayInterface},
	} {
		if err := agree(c.field, c.got, c.want); err != nil {
			return nil, err
		}
	}
	if len(f.Peers) > 0 {
		return nil, fieldError("peers", "not allowed with Kubernetes: every other Node is a peer")
	}
	if f.Gateway != "" && f.Gateway != CalicoGateway.String() {
		// One file serves every node, and each has its own pod range.
		return nil, fieldError("gateway", "%s: with Kubernetes only %s or none (the pod range's first address)", f.Gateway, CalicoGateway)
	}
	f.Node, f.PodCIDR = facts.Node, facts.PodCIDR.String()
	f.Underlay.Address, f.Underlay.Interface = facts.UnderlayAddress.String(), facts.UnderlayInterface
	if f.Gateway == "" && facts.PodCIDR.IsValid() {
		f.Gateway = facts.PodCIDR.Masked().Addr().Next().String()
	}
	if f.Backend == "" {
		f.Backend = BackendVXLAN
	}
	return f.validate()
}

// decode reads the document strictly; an empty one is (nil, nil).
func decode(b []byte) (*file, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, errors.New(oneLine(err.Error()))
	}
	return &f, nil
}

// unknownField matches yaml.v3's strict-mode complaint.
var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

func oneLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:")
	s = unknownField.ReplaceAllString(s, `unknown field "$1"`)
	return strings.Join(strings.Fields(s), " ")
}

// fieldError is the one-line error Load returns: "field: problem".
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

func (f *file) validate() (*Config, error) {
	c := &Config{Node: f.Node, Backend: f.Backend}
	if c.Node == "" {
		return nil, fieldError("node", "missing: the node's name")
	}
	var err error
	if c.PodCIDR, err = parsePrefix("podCIDR", f.PodCIDR); err != nil {
		return nil, err
	}
	if c.Gateway, err = parseAddr("gateway", f.Gateway); err != nil {
		return nil, err
	}
	if c.Gateway != CalicoGateway && !c.PodCIDR.Contains(c.Gateway) {
		return nil, fieldError("gateway", "%s is neither inside podCIDR %s nor %s", c.Gateway, c.PodCIDR, CalicoGateway)
	}
	if c.Gateway == c.PodCIDR.Addr() && c.PodCIDR.Bits() < 31 {
		return nil, fieldError("gateway", "%s is the network address of podCIDR %s", c.Gateway, c.PodCIDR)
	}
	if b, ok := Broadcast(c.PodCIDR); ok && c.Gateway == b {
		return nil, fieldError("gateway", "%s is the broadcast address of podCIDR %s", c.Gateway, c.PodCIDR)
	}
	switch c.Backend {
	case BackendVXLAN, BackendUDP, BackendDirect:
	case "":
		return nil, fieldError("backend", "missing: one of vxlan, udp, direct")
	default:
		return nil, fieldError("backend", "unknown backend %q: want vxlan, udp or direct", c.Backend)
	}

	c.Underlay.Interface = f.Underlay.Interface
	if c.Underlay.Interface == "" {
		return nil, fieldError("underlay.interface", "missing: the node's interface toward the other nodes")
	}
	if err := ifname.Check(c.Underlay.Interface); err != nil {
		return nil, fieldError("underlay.interface", "%v", err)
	}
	if f.Underlay.Address != "" {
		if c.Underlay.Address, err = parseAddr("underlay.address", f.Underlay.Address); err != nil {
			return nil, err
		}
	}

	c.VXLAN = VXLAN{VNI: DefaultVNI, Port: DefaultVXLANPort}
	if v := f.VXLAN.VNI; v != nil {
		if *v < 1 || *v > maxVNI {
			return nil, fieldError("vxlan.vni", "%d out of range 1..%d", *v, maxVNI)
		}
		c.VXLAN.VNI = uint32(*v)
	}
	if c.VXLAN.Port, err = parsePort("vxlan.port", f.VXLAN.Port, DefaultVXLANPort); err != nil {
		return nil, err
	}
	if f.VXLAN.MAC != "" {
		if c.VXLAN.MAC, err = parseMAC("vxlan.mac", f.VXLAN.MAC); err != nil {
			return nil, err
		}
	}
	if c.VXLAN.SourcePorts, err = parseSourcePorts("vxlan.sourcePorts", f.VXLAN.SourcePorts); err != nil {
		return nil, err
	}
	if c.UDP.Port, err = parsePort("udp.port", f.UDP.Port, DefaultUDPPort); err != nil {
		return nil, err
	}
	if c.UDP.SourcePorts, err = parseSourcePorts("udp.sourcePorts", f.UDP.SourcePorts); err != nil {
		return nil, err
	}
	c.HostPort.Name = f.HostPort.Name
	if c.HostPort.Name == "" {
		c.HostPort.Name = DefaultHostPortName
	}
	if err := ifname.Check(c.HostPort.Name); err != nil {
		return nil, fieldError("hostPort.name", "%v", err)
	}

	nodes := map[string]bool{c.Node: true}
	for i, p := range f.Peers {
		field := fmt.Sprintf("peers[%d]", i)
		peer := Peer{Node: p.Node}
		if peer.Node == "" {
			return nil, fieldError(field+".node", "missing: the peer node's name")
		}
		if nodes[peer.Node] {
			return nil, fieldError(field+".node", "duplicate node name %q", peer.Node)
		}
		nodes[peer.Node] = true
		if peer.Address, err = parseAddr(field+".address", p.Address); err != nil {
			return nil, err
		}
		if c.Underlay.Address.IsValid() && peer.Address == c.Underlay.Address {
			return nil, fieldError(field+".address", "%s is this node's own underlay address", peer.Address)
		}
		if peer.PodCIDR, err = parsePrefix(field+".podCIDR", p.PodCIDR); err != nil {
			return nil, err
		}
		if peer.PodCIDR.Overlaps(c.PodCIDR) {
			return nil, fieldError(field+".podCIDR", "%s overlaps podCIDR %s", peer.PodCIDR, c.PodCIDR)
		}
		for j, q := range c.Peers {
			if peer.PodCIDR.Overlaps(q.PodCIDR) {
				return nil, fieldError(field+".podCIDR", "%s overlaps peers[%d].podCIDR %s", peer.PodCIDR, j, q.PodCIDR)
			}
			if peer.Address == q.Address {
				return nil, fieldError(field+".address", "%s is also peers[%d].address", peer.Address, j)
			}
		}
		if p.VTEPMAC != "" {
			if c.Backend != BackendVXLAN {
				return nil, fieldError(field+".vtepMAC", "only the vxlan backend uses a VTEP MAC (backend is %s)", c.Backend)
			}
			if peer.VTEPMAC, err = parseMAC(field+".vtepMAC", p.VTEPMAC); err != nil {
				return nil, err
			}
		}
		c.Peers = append(c.Peers, peer)
	}

	names, ips := map[string]int{}, map[netip.Addr]int{}
	for i, p := range f.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		port := Port{Name: p.Name, NetNS: p.NetNS, IfName: p.IfName, MTU: p.MTU}
		if port.Name == "" {
			return nil, fieldError(field+".name", "missing: the port's name")
		}
		if strings.Contains(port.Name, "/") {
			return nil, fieldError(field+".name", "%q contains \"/\" (reserved for ports added through the API: containerID/ifName)", port.Name)
		}
		if j, dup := names[port.Name]; dup {
			return nil, fieldError(field+".name", "duplicate name %q (also ports[%d])", port.Name, j)
		}
		names[port.Name] = i
		if port.NetNS == "" {
			return nil, fieldError(field+".netns", "missing: path of the pod's network namespace")
		}
		if _, err := os.Stat(port.NetNS); err != nil {
			return nil, fieldError(field+".netns", "%s: no such network namespace", port.NetNS)
		}
		if port.IfName == "" {
			port.IfName = DefaultIfName
		}
		if err := ifname.Check(port.IfName); err != nil {
			return nil, fieldError(field+".ifName", "%v", err)
		}
		if port.IP, err = parseAddr(field+".ip", p.IP); err != nil {
			return nil, err
		}
		if !c.PodCIDR.Contains(port.IP) {
			return nil, fieldError(field+".ip", "%s is outside podCIDR %s", port.IP, c.PodCIDR)
		}
		if port.IP == c.Gateway {
			return nil, fieldError(field+".ip", "%s is the gateway address", port.IP)
		}
		if port.IP == c.PodCIDR.Addr() {
			return nil, fieldError(field+".ip", "%s is the network address of podCIDR %s", port.IP, c.PodCIDR)
		}
		if b, ok := Broadcast(c.PodCIDR); ok && port.IP == b {
			return nil, fieldError(field+".ip", "%s is the broadcast address of podCIDR %s", port.IP, c.PodCIDR)
		}
		if j, dup := ips[port.IP]; dup {
			return nil, fieldError(field+".ip", "duplicate address %s (also ports[%d])", port.IP, j)
		}
		ips[port.IP] = i
		if port.MTU != 0 && (port.MTU < MinPodMTU || port.MTU > MaxPodMTU) {
			return nil, fieldError(field+".mtu", "%d out of range %d..%d", port.MTU, MinPodMTU, MaxPodMTU)
		}
		c.Ports = append(c.Ports, port)
	}

	c.Masquerade.Enabled = f.Masquerade.Enabled
	c.Masquerade.RemoveOnExit = f.Masquerade.RemoveOnExit
	for i, s := range f.Masquerade.ClusterCIDRs {
		p, err := parseClusterCIDR(fmt.Sprintf("masquerade.clusterCIDRs[%d]", i), s)
		if err != nil {
			return nil, err
		}
		c.Masquerade.ClusterCIDRs = append(c.Masquerade.ClusterCIDRs, p)
	}
	if err := c.CheckMasquerade("masquerade.enabled", "masquerade.clusterCIDRs"); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseClusterCIDRs parses the value of a flag like --cluster-cidr: IPv4
// prefixes separated by commas. field names the flag in errors.
func ParseClusterCIDRs(field, s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fieldError(field, "missing: the cluster's pod CIDR(s), like 10.244.0.0/16")
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := parseClusterCIDR(field, strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parseClusterCIDR(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fieldError(field, "missing: an IPv4 prefix like 10.244.0.0/16")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fieldError(field, "%q is not an IPv4 prefix like 10.244.0.0/16", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fieldError(field, "%s has host bits set (did you mean %s?)", p, p.Masked())
	}
	return p, nil
}

// CheckMasquerade validates c.Masquerade: with masquerading on, cluster
// CIDRs are required, and they must hold this node's podCIDR and every
// peer's (traffic to a pod outside them would be masqueraded). The errors
// name enabledField and cidrsField: the config file's fields, or the flags
// that set them.
func (c *Config) CheckMasquerade(enabledField, cidrsField string) error {
	m := c.Masquerade
	if !m.Enabled {
		return nil
	}
	if len(m.ClusterCIDRs) == 0 {
		return fieldError(cidrsField, "missing: the cluster's pod CIDR(s), required with %s", enabledField)
	}
	within := func(p netip.Prefix) bool {
		for _, q := range m.ClusterCIDRs {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				return true
			}
		}
		return false
	}
	// An invalid PodCIDR is one not known yet (Kubernetes mode's --check,
	// before the Node says it): checked once it is.
	if c.PodCIDR.IsValid() && !within(c.PodCIDR) {
		return fieldError(cidrsField, "%s does not contain podCIDR %s", joinPrefixes(m.ClusterCIDRs), c.PodCIDR)
	}
	for i, p := range c.Peers {
		if !within(p.PodCIDR) {
			return fieldError(cidrsField, "%s does not contain peers[%d].podCIDR %s (node %s)", joinPrefixes(m.ClusterCIDRs), i, p.PodCIDR, p.Node)
		}
	}
	return nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Broadcast returns the directed broadcast address of an IPv4 prefix of at
// most 30 bits (a /31 or /32 has none), which the router delivers to no
// pod: neither a pod nor the gateway may have it.
func Broadcast(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}, false
	}
	a := p.Masked().Addr().As4()
	for i := range a {
		if host := p.Bits() - 8*i; host < 8 {
			a[i] |= 0xff >> max(host, 0)
		}
	}
	return netip.AddrFrom4(a), true
}

func parseAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fieldError(field, "missing: an IPv4 address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fieldError(field, "%q is not an IPv4 address", s)
	}
	return a, nil
}

func parsePrefix(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, fieldError(field, "missing: an IPv4 prefix like 10.244.0.0/24")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fieldError(field, "%q is not an IPv4 prefix like 10.244.0.0/24", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fieldError(field, "%s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if p.Bits() > 30 {
		return netip.Prefix{}, fieldError(field, "%s is too small for pods (at most /30)", p)
	}
	return p, nil
}

func parsePort(field string, v *int64, def uint16) (uint16, error) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > 65535 {
		return 0, fieldError(field, "%d out of range 1..65535", *v)
	}
	return uint16(*v), nil
}

func parseSourcePorts(field string, v *int64) (int, error) {
	if v == nil {
		return DefaultSourcePorts, nil
	}
	if *v < 1 || *v > maxSourcePorts {
		return 0, fieldError(field, "%d out of range 1..%d", *v, maxSourcePorts)
	}
	return int(*v), nil
}

func parseMAC(field, s string) (link.HardwareAddr, error) {
	m, err := link.ParseMAC(s)
	if err != nil {
		return m, fieldError(field, "%q is not a MAC address like 0a:58:c0:a8:31:02", s)
	}
	if m[0]&1 != 0 {
		return link.HardwareAddr{}, fieldError(field, "%s is a multicast address", m)
	}
	return m, nil
}
