package config

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/taprouter/taprouter/link/ifname"
)

// fieldPath is how every validation error starts: the field it is about.
var fieldPath = regexp.MustCompile(`^[a-zA-Z]+(\[\d+\])?(\.[a-zA-Z]+)?: `)

// FuzzParse: a document that parses is valid by the rules the daemon relies
// on and survives a round trip through YAML unchanged; one that does not
// gets a one-line error that names a field (or, for YAML the decoder
// rejects, says so without a newline).
func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	f.Add([]byte(strings.ReplaceAll(valid, "NETNS", dir)))
	f.Add([]byte(strings.ReplaceAll(strings.Replace(valid, "gateway: 10.244.0.1", "gateway: 169.254.1.1", 1), "NETNS", dir)))
	f.Add([]byte("node: n\npodCIDR: 10.0.0.0/30\ngateway: 10.0.0.1\nbackend: direct\nunderlay: {interface: eth0}\nhostPort: {name: tr0}\nports: [{name: p, netns: /, ifName: 'eth%d', ip: 10.0.0.2}]\n"))
	f.Add([]byte("node: n\npodCIDR: 10.0.0.0/24\ngateway: 10.0.0.1\nbackend: udp\nunderlay: {interface: eth0}\nudp: {port: 9}\npeers: [{node: m, address: 1.2.3.4, podCIDR: 10.0.1.0/24}]\n"))
	f.Add([]byte("node: n\npodCIDR: 10.0.0.0/24\ngateway: 10.0.0.1\nbackend: udp\nunderlay: {interface: eth0}\nmasquerade: {enabled: true, clusterCIDRs: [10.0.0.0/16], removeOnExit: true}\npeers: [{node: m, address: 1.2.3.4, podCIDR: 10.0.1.0/24}]\n"))
	f.Add([]byte("node: [\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		if err != nil {
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Fatalf("error is not one line: %q", msg)
			}
			return
		}
		checkConfig(t, c)
		again, err := Parse(render(t, c))
		if err != nil {
			t.Fatalf("a valid config does not parse again: %v\n%s", err, render(t, c))
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, again)
		}
	})
}

// FuzzParseForNode: whatever the document says, a config that parses for a
// node carries exactly the Node's facts and no peers, and is valid by the
// same rules as any other; an error is one line.
func FuzzParseForNode(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("backend: direct\ngateway: 169.254.1.1\n"))
	f.Add([]byte("node: node1\npodCIDR: 10.244.3.0/24\nvxlan: {vni: 7}\n"))
	f.Add([]byte("peers: [{node: m}]\n"))
	facts := NodeFacts{Node: "node1", PodCIDR: netip.MustParsePrefix("10.244.3.0/24"),
		UnderlayAddress: netip.MustParseAddr("192.168.49.2"), UnderlayInterface: "eth0"}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := ParseForNode(doc, facts)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		checkConfig(t, c)
		if c.Node != facts.Node || c.PodCIDR != facts.PodCIDR || c.Underlay.Address != facts.UnderlayAddress ||
			c.Underlay.Interface != facts.UnderlayInterface || len(c.Peers) != 0 {
			t.Fatalf("config does not carry the Node's facts: %+v", c)
		}
	})
}

// lastAddr is an IPv4 prefix's last address (its directed broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	u := binary.BigEndian.Uint32(a[:]) | uint32(1<<(32-p.Bits())-1)
	binary.BigEndian.PutUint32(a[:], u)
	return netip.AddrFrom4(a)
}

// checkConfig asserts what the daemon assumes of a validated config.
func checkConfig(t *testing.T, c *Config) {
	t.Helper()
	fail := func(format string, args ...any) { t.Helper(); t.Fatalf("accepted: "+format, args...) }
	if c.Node == "" || !c.PodCIDR.Addr().Is4() || c.PodCIDR.Masked() != c.PodCIDR || c.PodCIDR.Bits() > 30 {
		fail("node %q podCIDR %s", c.Node, c.PodCIDR)
	}
	bcast := lastAddr(c.PodCIDR) // podCIDR is at most a /30: it has one
	if !c.Gateway.Is4() || (c.Gateway != CalicoGateway && !c.PodCIDR.Contains(c.Gateway)) || c.Gateway == c.PodCIDR.Addr() || c.Gateway == bcast {
		fail("gateway %s for %s", c.Gateway, c.PodCIDR)
	}
	if c.Backend != BackendVXLAN && c.Backend != BackendUDP && c.Backend != BackendDirect {
		fail("backend %q", c.Backend)
	}
	for _, name := range []string{c.Underlay.Interface, c.HostPort.Name} {
		if ifname.Check(name) != nil {
			fail("interface name %q", name)
		}
	}
	if c.VXLAN.VNI < 1 || c.VXLAN.VNI > maxVNI || c.VXLAN.Port == 0 || c.UDP.Port == 0 || c.VXLAN.MAC[0]&1 != 0 {
		fail("vxlan %+v udp %+v", c.VXLAN, c.UDP)
	}
	for i, p := range c.Peers {
		if p.Node == "" || p.Node == c.Node || !p.Address.Is4() || p.Address == c.Underlay.Address || p.PodCIDR.Overlaps(c.PodCIDR) || p.VTEPMAC[0]&1 != 0 {
			fail("peers[%d] %+v", i, p)
		}
		for _, q := range c.Peers[:i] {
			if q.Node == p.Node || q.Address == p.Address || q.PodCIDR.Overlaps(p.PodCIDR) {
				fail("peers[%d] %+v clashes with %+v", i, p, q)
			}
		}
	}
	for _, p := range c.Masquerade.ClusterCIDRs {
		if !p.Addr().Is4() || p.Masked() != p {
			fail("masquerade.clusterCIDRs %v", c.Masquerade.ClusterCIDRs)
		}
	}
	if c.Masquerade.Enabled {
		covered := func(q netip.Prefix) bool {
			for _, p := range c.Masquerade.ClusterCIDRs {
				if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
					return true
				}
			}
			return false
		}
		if !covered(c.PodCIDR) {
			fail("masquerade %+v without podCIDR %s", c.Masquerade, c.PodCIDR)
		}
		for _, p := range c.Peers {
			if !covered(p.PodCIDR) {
				fail("masquerade %+v without peer %+v", c.Masquerade, p)
			}
		}
	}
	for i, p := range c.Ports {
		if p.Name == "" || strings.Contains(p.Name, "/") || p.NetNS == "" || ifname.Check(p.IfName) != nil ||
			!c.PodCIDR.Contains(p.IP) || p.IP == c.Gateway || p.IP == c.PodCIDR.Addr() || p.IP == bcast ||
			p.MTU != 0 && (p.MTU < MinPodMTU || p.MTU > MaxPodMTU) {
			fail("ports[%d] %+v", i, p)
		}
		for _, q := range c.Ports[:i] {
			if q.Name == p.Name || q.IP == p.IP {
				fail("ports[%d] %+v clashes with %+v", i, p, q)
			}
		}
	}
}

// render writes c back as a document Parse reads.
func render(t *testing.T, c *Config) []byte {
	t.Helper()
	var f file
	f.Node, f.PodCIDR, f.Gateway, f.Backend = c.Node, c.PodCIDR.String(), c.Gateway.String(), c.Backend
	f.Underlay.Interface = c.Underlay.Interface
	if c.Underlay.Address.IsValid() {
		f.Underlay.Address = c.Underlay.Address.String()
	}
	vni, vport, uport := int64(c.VXLAN.VNI), int64(c.VXLAN.Port), int64(c.UDP.Port)
	f.VXLAN.VNI, f.VXLAN.Port, f.UDP.Port = &vni, &vport, &uport
	if !c.VXLAN.MAC.IsZero() {
		f.VXLAN.MAC = c.VXLAN.MAC.String()
	}
	f.HostPort.Name = c.HostPort.Name
	f.Masquerade.Enabled, f.Masquerade.RemoveOnExit = c.Masquerade.Enabled, c.Masquerade.RemoveOnExit
	for _, p := range c.Masquerade.ClusterCIDRs {
		f.Masquerade.ClusterCIDRs = append(f.Masquerade.ClusterCIDRs, p.String())
	}
	for _, p := range c.Peers {
		fp := struct {
			Node    string `yaml:"node"`
			Address string `yaml:"address"`
			PodCIDR string `yaml:"podCIDR"`
			VTEPMAC string `yaml:"vtepMAC"`
		}{Node: p.Node, Address: p.Address.String(), PodCIDR: p.PodCIDR.String()}
		if !p.VTEPMAC.IsZero() {
			fp.VTEPMAC = p.VTEPMAC.String()
		}
		f.Peers = append(f.Peers, fp)
	}
	for _, p := range c.Ports {
		f.Ports = append(f.Ports, struct {
			Name   string `yaml:"name"`
			NetNS  string `yaml:"netns"`
			IfName string `yaml:"ifName"`
			IP     string `yaml:"ip"`
			MTU    int    `yaml:"mtu"`
		}{p.Name, p.NetNS, p.IfName, p.IP.String(), p.MTU})
	}
	b, err := yaml.Marshal(&f)
	if err != nil {
		t.Fatal(fmt.Errorf("marshal %+v: %w", f, err))
	}
	return b
}
