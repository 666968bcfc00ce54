package podnet_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/tap"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// gatewayMAC is the MAC the tests' stand-in router answers ARP with.
var gatewayMAC = [6]byte{0x02, 0xaa, 0, 0, 0, 0x01}

type ipLink struct {
	Index    int      `json:"ifindex"`
	IfName   string   `json:"ifname"`
	Address  string   `json:"address"`
	MTU      int      `json:"mtu"`
	Flags    []string `json:"flags"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

type ipRoute struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
	Scope   string `json:"scope"`
	Prefsrc string `json:"prefsrc"`
}

func links(t *testing.T, ns *netnstest.NS) []ipLink {
	t.Helper()
	var l []ipLink
	if err := json.Unmarshal([]byte(ns.IP("-j", "addr")), &l); err != nil {
		t.Fatalf("ip -j addr: %v", err)
	}
	return l
}

func linkNames(t *testing.T, ns *netnstest.NS) []string {
	var names []string
	for _, l := range links(t, ns) {
		names = append(names, l.IfName)
	}
	return names
}

func findLink(t *testing.T, ns *netnstest.NS, name string) ipLink {
	t.Helper()
	for _, l := range links(t, ns) {
		if l.IfName == name {
			return l
		}
	}
	t.Fatalf("no %s in netns %s", name, ns.Name)
	return ipLink{}
}

func routes(t *testing.T, ns *netnstest.NS) []ipRoute {
	t.Helper()
	var r []ipRoute
	if err := json.Unmarshal([]byte(ns.IP("-j", "route")), &r); err != nil {
		t.Fatalf("ip -j route: %v", err)
	}
	return r
}

func attach(t *testing.T, node *netnstest.NS, p podnet.Pod) (*tap.Device, podnet.Iface, error) {
	t.Helper()
	var dev *tap.Device
	var own podnet.Iface
	var err error
	node.Do(func() { dev, own, err = podnet.AttachPod(p) })
	if err == nil {
		t.Cleanup(func() { dev.Close() })
	}
	return dev, own, err
}

// serve plays the router on dev until the test ends: it answers ARP with
// gatewayMAC and echo requests with echo replies.
func serve(t *testing.T, dev *tap.Device) {
	var wg sync.WaitGroup
	wg.Go(func() {
		bufs := [][]byte{make([]byte, 2048)}
		sizes := []int{0}
		for {
			if _, err := dev.Read(bufs, sizes, 0); err != nil {
				return
			}
			f := bufs[0][:sizes[0]]
			r := arpReply(f, gatewayMAC)
			if r == nil {
				r = ethEchoReply(f, gatewayMAC)
			}
			if r != nil {
				dev.Write([][]byte{r}, 0)
			}
		}
	})
	t.Cleanup(func() {
		dev.Close()
		wg.Wait()
	})
}

func TestAttachPod(t *testing.T) {
	for _, tc := range []struct{ name, ip, gw string }{
		{"kindnet", "10.244.1.5", "10.244.1.1"},
		{"calico", "10.244.1.6", "169.254.1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
			p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr(tc.ip), Gateway: netip.MustParseAddr(tc.gw), MTU: 1450}
			dev, own, err := attach(t, node, p)
			if err != nil {
				t.Fatal(err)
			}
			mac := own.MAC

			if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
				t.Errorf("node netns has %v, want only lo: the TAP must have moved", names)
			}
			eth0 := findLink(t, pod, "eth0")
			if eth0.MTU != 1450 {
				t.Errorf("eth0 MTU %d, want 1450", eth0.MTU)
			}
			if eth0.Address != mac.String() || eth0.Index != own.Index {
				t.Errorf("AttachPod returned MAC %s index %d, eth0 has %s index %d", mac, own.Index, eth0.Address, eth0.Index)
			}
			if !slices.Contains(eth0.Flags, "UP") {
				t.Errorf("eth0 is not up: %v", eth0.Flags)
			}
			if len(eth0.AddrInfo) != 1 || eth0.AddrInfo[0].Local != tc.ip || eth0.AddrInfo[0].Prefixlen != 32 {
				t.Errorf("eth0 addresses %+v, want only %s/32", eth0.AddrInfo, tc.ip)
			}
			if lo := findLink(t, pod, "lo"); !slices.Contains(lo.Flags, "UP") {
				t.Errorf("pod lo is not up: %v", lo.Flags)
			}
			want := []ipRoute{
				{Dst: "default", Gateway: tc.gw, Dev: "eth0"},
				{Dst: tc.gw, Dev: "eth0", Scope: "link"},
			}
			if got := routes(t, pod); !slices.Equal(got, want) {
				t.Errorf("pod routes %+v, want %+v", got, want)
			}
			if out := pod.IP("-d", "-j", "link", "show", "eth0"); !strings.Contains(out, `"persist":true`) {
				t.Errorf("eth0 is not persistent: %s", out)
			}

			// The fd opened in the node keeps working after the move:
			// the pod resolves its gateway and pings it through us.
			serve(t, dev)
			out, err := pod.Command("ping", "-n", "-c", "2", "-i", "0.2", "-W", "5", tc.gw).CombinedOutput()
			if err != nil {
				t.Fatalf("pod cannot ping its gateway through the TAP: %v: %s", err, out)
			}
			if neigh := pod.IP("neigh", "show", tc.gw); !strings.Contains(neigh, net.HardwareAddr(gatewayMAC[:]).String()) {
				t.Errorf("pod neighbour entry for %s = %q, want lladdr %s", tc.gw, neigh, net.HardwareAddr(gatewayMAC[:]))
			}
		})
	}
}

func TestDetachPod(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
	dev, own, err := attach(t, node, p)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		bufs := [][]byte{make([]byte, 2048)}
		_, err := dev.Read(bufs, []int{0}, 0)
		read <- err
	}()

	if err := podnet.DetachPod(p, own); err != nil {
		t.Fatalf("DetachPod: %v", err)
	}
	if names := linkNames(t, pod); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("pod netns has %v after DetachPod, want only lo", names)
	}
	select {
	case err := <-read:
		if !errors.Is(err, link.ErrClosed) {
			t.Errorf("Read on the detached port returned %v, want an error wrapping link.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("DetachPod did not unblock a Read on the port")
	}
	if err := podnet.DetachPod(p, own); err != nil {
		t.Errorf("second DetachPod: %v, want nil", err)
	}
	gone := p
	gone.NetNS = "/var/run/netns/" + pod.Name + "-gone"
	if err := podnet.DetachPod(gone, own); err != nil {
		t.Errorf("DetachPod in a missing netns: %v, want nil", err)
	}
}

// DetachPod deletes only the caller's device: the TAP of the index it was
// given, or, for a caller that never held it, a TAP that no one else has
// open. Another device called eth0, a TAP that is open elsewhere (another
// port's live pod) and what is not a TAP are left alone.
func TestDetachPodOnlyOwned(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
	dev, own, err := attach(t, node, p)
	if err != nil {
		t.Fatal(err)
	}
	eth0 := func() []string {
		var out []string
		for _, l := range links(t, pod) {
			if l.IfName == "eth0" {
				out = append(out, fmt.Sprintf("%s %d", l.Address, l.Index))
			}
		}
		return out
	}
	want := []string{fmt.Sprintf("%s %d", own.MAC, own.Index)}
	// Held open by dev (as the router holds a live pod's TAP).
	if err := podnet.DetachPod(p, podnet.Iface{}); !errors.Is(err, podnet.ErrNotOwned) || !strings.Contains(err.Error(), "device or resource busy") {
		t.Errorf("DetachPod of a TAP open elsewhere, by a caller that never held it: %v, want ErrNotOwned (busy)", err)
	}
	// Another index: that device is gone, and eth0 is not it.
	if err := podnet.DetachPod(p, podnet.Iface{Index: own.Index + 100}); err != nil {
		t.Errorf("DetachPod of a gone index: %v, want nil", err)
	}
	if got := eth0(); !slices.Equal(got, want) {
		t.Fatalf("eth0 after DetachPods that do not own it: %v, want %v", got, want)
	}
	// Not a TAP, by name or by index.
	other := netnstest.New(t, "pod")
	other.IP("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	q := p
	q.NetNS = other.Path
	veth := findLink(t, other, "eth0")
	for _, by := range []podnet.Iface{{}, {Index: veth.Index}} {
		if err := podnet.DetachPod(q, by); !errors.Is(err, podnet.ErrNotOwned) || !strings.Contains(err.Error(), "is a veth device") {
			t.Errorf("DetachPod(%+v) of a veth eth0: %v, want ErrNotOwned", by, err)
		}
	}
	if l := findLink(t, other, "eth0"); l.Index != veth.Index {
		t.Errorf("veth eth0 replaced: %+v", l)
	}
	// Once no one has the TAP open, a caller that never held it deletes it.
	dev.Close()
	if err := podnet.DetachPod(p, podnet.Iface{}); err != nil {
		t.Fatalf("DetachPod of a TAP no one has open: %v", err)
	}
	if names := linkNames(t, pod); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("pod netns has %v, want only lo", names)
	}
}

func TestAttachPodRollsBack(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	valid := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}

	for _, tc := range []struct {
		name string
		edit func(*podnet.Pod)
		want string
	}{
		{"missing netns", func(p *podnet.Pod) { p.NetNS = "/var/run/netns/" + pod.Name + "-missing" }, "open netns"},
		{"bad interface name", func(p *podnet.Pod) { p.IfName = "" }, "invalid interface name"},
		{"IPv6 pod IP", func(p *podnet.Pod) { p.IP = netip.MustParseAddr("fd00::5") }, "not an IPv4 address"},
		{"bad MTU", func(p *podnet.Pod) { p.MTU = 0 }, "invalid MTU"},
	} {
		p := valid
		tc.edit(&p)
		if _, _, err := attach(t, node, p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AttachPod error %v, want one containing %q", tc.name, err, tc.want)
		}
	}

	// A failure after the move: the pod already has an eth0.
	pod.IP("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	_, _, err := attach(t, node, valid)
	if err == nil || !strings.Contains(err.Error(), "rename") {
		t.Errorf("AttachPod into a pod that has eth0: error %v, want one naming the rename step", err)
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node netns has %v after failed AttachPods, want only lo", names)
	}
	if names := linkNames(t, pod); !slices.Equal(names, []string{"lo", "peer0", "eth0"}) {
		t.Errorf("pod netns has %v after the failed AttachPod, want lo and its own veth pair", names)
	}
	if out := pod.IP("-d", "link", "show", "eth0"); !strings.Contains(out, "veth") {
		t.Errorf("the pod's own eth0 was touched: %s", out)
	}
}

func TestHostPort(t *testing.T) {
	node := netnstest.New(t, "node")
	node.IP("link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	node.IP("addr", "add", "172.18.0.2/24", "dev", "eth0")
	src := netip.MustParseAddr("172.18.0.2")
	prefixes := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.2.0/24")}

	var dev *tap.Device
	var err error
	node.Do(func() { dev, err = podnet.CreateHostPort("taprouter0", 1450, prefixes, src) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	port := findLink(t, node, "taprouter0")
	if port.MTU != 1450 || !slices.Contains(port.Flags, "UP") {
		t.Errorf("taprouter0: MTU %d flags %v, want 1450 and UP", port.MTU, port.Flags)
	}
	var got []ipRoute
	for _, r := range routes(t, node) {
		if r.Dev == "taprouter0" {
			got = append(got, r)
		}
	}
	want := []ipRoute{
		{Dst: "10.244.1.0/24", Dev: "taprouter0", Scope: "link", Prefsrc: "172.18.0.2"},
		{Dst: "10.244.2.0/24", Dev: "taprouter0", Scope: "link", Prefsrc: "172.18.0.2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("host port routes %+v, want %+v", got, want)
	}

	// The node pings a pod address: the kernel routes the packet into the
	// TUN, we read it as a bare IPv4 packet and answer it.
	var pingOut bytes.Buffer
	ping := node.Command("ping", "-n", "-c", "1", "-W", "5", "10.244.2.7")
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	node.Start(ping)
	watchdog := time.AfterFunc(10*time.Second, func() { dev.Close() })
	defer watchdog.Stop()
	bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
	if _, err := dev.Read(bufs, sizes, 0); err != nil {
		t.Fatalf("Read from the host port: %v", err)
	}
	pkt := bufs[0][:sizes[0]]
	if s, d := ipAddrs(pkt); s != src || d != netip.MustParseAddr("10.244.2.7") {
		t.Fatalf("host port read %v -> %v, want %v -> 10.244.2.7: % x", s, d, src, pkt)
	}
	reply := ipEchoReply(pkt)
	if reply == nil {
		t.Fatalf("host port read % x, want an ICMP echo request", pkt)
	}
	if n, err := dev.Write([][]byte{reply}, 0); n != 1 || err != nil {
		t.Fatalf("Write to the host port = %d, %v", n, err)
	}
	if err := ping.Wait(); err != nil {
		t.Errorf("ping did not accept the reply written to the host port: %v: %s", err, pingOut.String())
	}

	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, node); slices.Contains(names, "taprouter0") {
		t.Errorf("host port still exists after Close: %v", names)
	}
}

func TestHostPortWithoutSource(t *testing.T) {
	node := netnstest.New(t, "node")
	var dev *tap.Device
	var err error
	node.Do(func() {
		dev, err = podnet.CreateHostPort("taprouter0", 1500, []netip.Prefix{netip.MustParsePrefix("10.244.3.9/24")}, netip.Addr{})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	want := []ipRoute{{Dst: "10.244.3.0/24", Dev: "taprouter0", Scope: "link"}}
	if got := routes(t, node); !slices.Equal(got, want) {
		t.Errorf("routes %+v, want %+v", got, want)
	}
	if err := dev.SetPersist(true); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	node.Do(func() { err = podnet.RemoveHostPort("taprouter0") })
	if err != nil {
		t.Fatalf("RemoveHostPort: %v", err)
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node has %v after RemoveHostPort, want only lo", names)
	}
	node.Do(func() { err = podnet.RemoveHostPort("taprouter0") })
	if err != nil {
		t.Errorf("second RemoveHostPort: %v, want nil", err)
	}
}

func TestHostPortRollsBack(t *testing.T) {
	node := netnstest.New(t, "node")
	var err error
	// 172.18.0.2 is not an address of this node: the route fails.
	node.Do(func() {
		_, err = podnet.CreateHostPort("taprouter0", 1500, []netip.Prefix{netip.MustParsePrefix("10.244.3.0/24")}, netip.MustParseAddr("172.18.0.2"))
	})
	if err == nil || !strings.Contains(err.Error(), "add route 10.244.3.0/24") {
		t.Errorf("CreateHostPort with a foreign src: error %v, want one naming the route", err)
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node has %v after a failed CreateHostPort, want only lo", names)
	}
}

func TestUnderlay(t *testing.T) {
	node := netnstest.New(t, "node")
	node.IP("link", "add", "eth9", "address", "02:11:22:33:44:55", "mtu", "1400", "type", "veth", "peer", "name", "peer9")
	node.IP("addr", "add", "172.18.0.2/24", "dev", "eth9")
	node.IP("addr", "add", "172.18.0.3/24", "dev", "eth9") // secondary
	var (
		addr netip.Addr
		mac  link.HardwareAddr
		mtu  int
		err  error
	)
	node.Do(func() { addr, mac, mtu, err = podnet.Underlay("eth9") })
	if err != nil {
		t.Fatal(err)
	}
	if addr != netip.MustParseAddr("172.18.0.2") || mac.String() != "02:11:22:33:44:55" || mtu != 1400 {
		t.Errorf("Underlay = %v, %v, %d; want 172.18.0.2, 02:11:22:33:44:55, 1400", addr, mac, mtu)
	}
	node.IP("link", "add", "eth8", "type", "veth", "peer", "name", "peer8")
	node.Do(func() { _, _, _, err = podnet.Underlay("eth8") })
	if err == nil || !strings.Contains(err.Error(), "no IPv4 address") {
		t.Errorf("Underlay of an interface without address: %v, want a no-IPv4-address error", err)
	}
	var name string
	node.Do(func() { name, err = podnet.InterfaceWithAddr(netip.MustParseAddr("172.18.0.3")) })
	if name != "eth9" || err != nil {
		t.Errorf("InterfaceWithAddr(172.18.0.3) = %q, %v; want eth9", name, err)
	}
	node.Do(func() { name, err = podnet.InterfaceWithAddr(netip.MustParseAddr("172.18.0.4")) })
	if want := "no interface in this network namespace has address 172.18.0.4"; err == nil || err.Error() != want {
		t.Errorf("InterfaceWithAddr(172.18.0.4) = %q, %v; want error %q", name, err, want)
	}
	node.Do(func() { _, _, _, err = podnet.Underlay("nope0") })
	if err == nil {
		t.Error("Underlay of a missing interface succeeded, want an error")
	}
}
