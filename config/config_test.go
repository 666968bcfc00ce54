package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const valid = `
node: node1
podCIDR: 10.244.0.0/24
gateway: 10.244.0.1
backend: vxlan
underlay: {interface: eth0, address: 192.168.49.2}
vxlan: {vni: 1, port: 8472}
peers:
  - {node: node2, address: 192.168.49.3, podCIDR: 10.244.1.0/24}
  - {node: kernel, address: 192.168.49.4, podCIDR: 10.244.2.0/24, vtepMAC: "0e:11:22:33:44:55"}
ports:
  - {name: pa, netns: NETNS, ip: 10.244.0.4}
  - {name: pb, netns: NETNS, ip: 10.244.0.5, mtu: 1500}
`

func validDoc(t *testing.T) string {
	ns := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(valid, "NETNS", ns)
}

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(validDoc(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "node1" || c.PodCIDR != netip.MustParsePrefix("10.244.0.0/24") || c.Gateway != netip.MustParseAddr("10.244.0.1") {
		t.Errorf("got %+v", c)
	}
	if c.VXLAN.VNI != 1 || c.VXLAN.Port != 8472 || c.VXLAN.SourcePorts != 8 || c.UDP.Port != DefaultUDPPort || c.UDP.SourcePorts != 8 || c.HostPort.Name != "taprouter0" {
		t.Errorf("defaults: %+v %+v %+v", c.VXLAN, c.UDP, c.HostPort)
	}
	if len(c.Peers) != 2 || c.Peers[1].VTEPMAC.String() != "0e:11:22:33:44:55" || !c.Peers[0].VTEPMAC.IsZero() {
		t.Errorf("peers: %+v", c.Peers)
	}
	if len(c.Ports) != 2 || c.Ports[0].IfName != "eth0" || c.Ports[1].MTU != 1500 {
		t.Errorf("ports: %+v", c.Ports)
	}
}

func TestParseMasquerade(t *testing.T) {
	c, err := Parse([]byte(validDoc(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.Masquerade.Enabled || c.Masquerade.ClusterCIDRs != nil || c.Masquerade.RemoveOnExit {
		t.Errorf("default masquerade %+v, want off", c.Masquerade)
	}
	doc := strings.Replace(validDoc(t), "backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.0.0/23, 10.244.2.0/24], removeOnExit: true}", 1)
	if c, err = Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/23"), netip.MustParsePrefix("10.244.2.0/24")}
	if m := c.Masquerade; !m.Enabled || !m.RemoveOnExit || len(m.ClusterCIDRs) != 2 || m.ClusterCIDRs[0] != want[0] || m.ClusterCIDRs[1] != want[1] {
		t.Errorf("masquerade %+v, want on with %v, removed on exit", m, want)
	}
	// CIDRs without enabled are kept and not required to be consistent.
	doc = strings.Replace(validDoc(t), "backend: vxlan", "backend: vxlan\nmasquerade: {clusterCIDRs: [10.9.0.0/16]}", 1)
	if c, err = Parse([]byte(doc)); err != nil || c.Masquerade.Enabled {
		t.Errorf("masquerade off with CIDRs: %+v, %v", c, err)
	}
}

func TestParseClusterCIDRs(t *testing.T) {
	got, err := ParseClusterCIDRs("--cluster-cidr", "10.244.0.0/16, 10.96.0.0/12")
	if err != nil || len(got) != 2 || got[1] != netip.MustParsePrefix("10.96.0.0/12") {
		t.Errorf("got %v, %v", got, err)
	}
	for in, want := range map[string]string{
		"":                        "--cluster-cidr: missing",
		"10.244.0.0/16,":          "--cluster-cidr: missing",
		"10.244.0.0":              `--cluster-cidr: "10.244.0.0" is not an IPv4 prefix`,
		"10.244.0.0/16,fd00::/64": `--cluster-cidr: "fd00::/64" is not an IPv4 prefix`,
		"10.244.1.0/16":           "--cluster-cidr: 10.244.1.0/16 has host bits set (did you mean 10.244.0.0/16?)",
	} {
		if _, err := ParseClusterCIDRs("--cluster-cidr", in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

func TestParseCalicoGateway(t *testing.T) {
	doc := strings.Replace(validDoc(t), "gateway: 10.244.0.1", "gateway: 169.254.1.1", 1)
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway != CalicoGateway {
		t.Errorf("gateway %s", c.Gateway)
	}
}

// Every invalid field gives one line that starts with the field's name.
func TestParseInvalid(t *testing.T) {
	cases := []struct{ old, new, field string }{
		{"node: node1", "node: ''", "node:"},
		{"podCIDR: 10.244.0.0/24", "podCIDR: 10.244.0.0/33", "podCIDR:"},
		{"podCIDR: 10.244.0.0/24", "podCIDR: 10.244.0.1/24", "podCIDR:"},
		{"podCIDR: 10.244.0.0/24", "podCIDR: fd00::/64", "podCIDR:"},
		{"gateway: 10.244.0.1", "gateway: 10.9.0.1", "gateway:"},
		{"gateway: 10.244.0.1", "gateway: banana", "gateway:"},
		{"gateway: 10.244.0.1", "gateway: 10.244.0.0", "gateway:"},
		{"backend: vxlan", "backend: geneve", "backend:"},
		{"backend: vxlan", "backend: ''", "backend:"},
		{"interface: eth0", "interface: ''", "underlay.interface:"},
		{"interface: eth0", "interface: averyveryverylonginterfacename", "underlay.interface:"},
		{"address: 192.168.49.2}", "address: 192.168.49}", "underlay.address:"},
		{"vni: 1", "vni: 16777216", "vxlan.vni:"},
		{"vni: 1", "vni: -1", "vxlan.vni:"},
		{"vni: 1", "vni: 0", "vxlan.vni:"},
		{"{name: pa,", "{name: a/b,", "ports[0].name:"},
		{"port: 8472", "port: 0", "vxlan.port:"},
		{"port: 8472", "port: 70000", "vxlan.port:"},
		{"port: 8472", "port: 8472, sourcePorts: 0", "vxlan.sourcePorts: 0 out of range 1..64"},
		{"port: 8472", "port: 8472, sourcePorts: 65", "vxlan.sourcePorts: 65 out of range 1..64"},
		{"vxlan: {vni: 1", "udp: {sourcePorts: -1}\nvxlan: {vni: 1", "udp.sourcePorts: -1 out of range 1..64"},
		{"{vni: 1, port: 8472}", "{vni: 1, port: 8472, mac: 'zz'}", "vxlan.mac:"},
		{"{vni: 1, port: 8472}", "{vni: 1, port: 8472, mac: '01:00:5e:00:00:01'}", "vxlan.mac:"},
		{"{node: node2, address: 192.168.49.3", "{node: '', address: 192.168.49.3", "peers[0].node:"},
		{"{node: node2, address: 192.168.49.3", "{node: node1, address: 192.168.49.3", "peers[0].node:"},
		{"address: 192.168.49.3,", "address: 192.168.49.2,", "peers[0].address:"},
		{"address: 192.168.49.4,", "address: 192.168.49.3,", "peers[1].address:"},
		{"podCIDR: 10.244.1.0/24}", "podCIDR: 10.244.0.0/16}", "peers[0].podCIDR:"},
		{"podCIDR: 10.244.2.0/24,", "podCIDR: 10.244.1.128/25,", "peers[1].podCIDR:"},
		{"vtepMAC: \"0e:11:22:33:44:55\"", "vtepMAC: \"0e:11:22\"", "peers[1].vtepMAC:"},
		{"{name: pa,", "{name: '',", "ports[0].name:"},
		{"{name: pb,", "{name: pa,", "ports[1].name:"},
		{"ip: 10.244.0.4}", "ip: 10.244.1.4}", "ports[0].ip:"},
		{"ip: 10.244.0.4}", "ip: 10.244.0.5}", "ports[1].ip:"},
		{"ip: 10.244.0.4}", "ip: 10.244.0.1}", "ports[0].ip:"},
		{"ip: 10.244.0.4}", "ip: 10.244.0.255}", "ports[0].ip: 10.244.0.255 is the broadcast address"},
		{"gateway: 10.244.0.1", "gateway: 10.244.0.255", "gateway: 10.244.0.255 is the broadcast address"},
		{"mtu: 1500}", "mtu: 100}", "ports[1].mtu:"},
		{"{name: pa,", "{name: pa, ifName: 'eth%d',", "ports[0].ifName:"},
		{"{name: pa,", "{name: pa, ifName: 'eth:0',", "ports[0].ifName:"},
		{"{name: pa,", "{name: pa, ifName: '..',", "ports[0].ifName:"},
		{"{name: pa,", "{name: pa, ifName: 'eth 0',", "ports[0].ifName:"},
		{"{name: pa,", "{name: pa, ifName: 'abcdefghijklmnop',", "ports[0].ifName:"},
		{"interface: eth0", "interface: 'eth%d'", "underlay.interface:"},
		{"vxlan: {vni: 1", "hostPort: {name: 'tr%d'}\nvxlan: {vni: 1", "hostPort.name:"},
		{"backend: vxlan", "backend: vxlan\nbakend: udp", "line 6: unknown field \"bakend\""},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true}", "masquerade.clusterCIDRs: missing"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: []}", "masquerade.clusterCIDRs: missing"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.0.0/33]}", "masquerade.clusterCIDRs[0]:"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.0.0/16, fd00::/48]}", "masquerade.clusterCIDRs[1]:"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.1.0/16]}", "masquerade.clusterCIDRs[0]: 10.244.1.0/16 has host bits set"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.245.0.0/16]}", "masquerade.clusterCIDRs: 10.245.0.0/16 does not contain podCIDR 10.244.0.0/24"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.0.0/23]}", "masquerade.clusterCIDRs: 10.244.0.0/23 does not contain peers[1].podCIDR 10.244.2.0/24 (node kernel)"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: true, clusterCIDRs: [10.244.0.0/25]}", "masquerade.clusterCIDRs: 10.244.0.0/25 does not contain podCIDR"},
		{"backend: vxlan", "backend: vxlan\nmasquerade: {enabled: yes please}", "line 6:"},
	}
	for _, tc := range cases {
		doc := validDoc(t)
		if !strings.Contains(doc, tc.old) {
			t.Fatalf("test bug: %q not in document", tc.old)
		}
		doc = strings.Replace(doc, tc.old, tc.new, 1)
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Errorf("%s → %s: accepted", tc.old, tc.new)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.field) || strings.Contains(msg, "\n") {
			t.Errorf("%s → %s: error %q, want one line starting %q", tc.old, tc.new, msg, tc.field)
		}
	}
}

// Broadcast is the prefix's last address, and none for a /31 or /32.
func TestBroadcast(t *testing.T) {
	for p, want := range map[string]string{
		"10.244.0.0/24": "10.244.0.255", "10.244.0.0/16": "10.244.255.255", "10.244.0.128/25": "10.244.0.255",
		"10.244.0.0/23": "10.244.1.255", "10.244.0.4/30": "10.244.0.7", "10.0.0.0/8": "10.255.255.255",
		"0.0.0.0/0": "255.255.255.255", "10.244.0.0/20": "10.244.15.255", "10.244.0.0/31": "", "10.244.0.1/32": "",
	} {
		got := "none"
		if b, ok := Broadcast(netip.MustParsePrefix(p)); ok {
			got = b.String()
		}
		if want == "" {
			want = "none"
		}
		if got != want {
			t.Errorf("Broadcast(%s) = %s, want %s", p, got, want)
		}
	}
}

func TestParseMissingNetNS(t *testing.T) {
	doc := strings.Replace(validDoc(t), "netns: ", "netns: /nonexistent", 1)
	_, err := Parse([]byte(doc))
	if err == nil || !strings.HasPrefix(err.Error(), "ports[0].netns:") {
		t.Fatalf("got %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	if _, err := Parse(nil); err == nil {
		t.Fatal("empty document accepted")
	}
}

func TestParseForNode(t *testing.T) {
	facts := NodeFacts{
		Node: "node1", PodCIDR: netip.MustParsePrefix("10.244.3.0/24"),
		UnderlayAddress: netip.MustParseAddr("192.168.49.2"), UnderlayInterface: "eth0",
	}
	c, err := ParseForNode(nil, facts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node != "node1" || c.PodCIDR != facts.PodCIDR || c.Gateway != netip.MustParseAddr("10.244.3.1") ||
		c.Backend != BackendVXLAN || c.Underlay.Interface != "eth0" || c.Underlay.Address != facts.UnderlayAddress ||
		c.VXLAN.VNI != DefaultVNI || c.VXLAN.Port != DefaultVXLANPort || len(c.Peers) != 0 {
		t.Fatalf("empty document: %+v", c)
	}
	c, err = ParseForNode([]byte("backend: direct\ngateway: 169.254.1.1\nnode: node1\n"), facts)
	if err != nil || c.Backend != BackendDirect || c.Gateway != CalicoGateway {
		t.Fatalf("backend direct, Calico gateway: %+v, %v", c, err)
	}
	for doc, want := range map[string]string{
		"node: node2\n":                        "node: node2, but the Kubernetes Node says node1",
		"podCIDR: 10.244.4.0/24\n":             "podCIDR: 10.244.4.0/24, but the Kubernetes Node says 10.244.3.0/24",
		"underlay:\n  address: 192.168.49.9\n": "underlay.address: 192.168.49.9, but the Kubernetes Node says 192.168.49.2",
		"underlay:\n  interface: eth1\n":       "underlay.interface: eth1, but the Kubernetes Node says eth0",
		"peers:\n- node: x\n":                  "peers: not allowed with Kubernetes: every other Node is a peer",
		"gateway: 10.244.9.1\n":                "gateway: 10.244.9.1: with Kubernetes only 169.254.1.1 or none (the pod range's first address)",
		"bogus: 1\n":                           `line 1: unknown field "bogus"`,
	} {
		if _, err := ParseForNode([]byte(doc), facts); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}
