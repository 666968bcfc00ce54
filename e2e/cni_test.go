package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/taprouter/taprouter/internal/testbed"
)

// The CNI tests drive the taprouter plugin (built fresh from
// cmd/taprouter-cni) with the real cnitool and the reference host-local and
// portmap plugins, against the real taprouterd, with the shipped
// deploy/10-taprouter.conflist.

// cniToolsDir is where "make cni-tools" installs cnitool and the reference
// plugins.
const cniToolsDir = "../bin/cni"

// requireCNI skips the test without the CNI tools and returns the CNI_PATH:
// the freshly built plugin first, then the reference tools.
func requireCNI(t *testing.T) []string {
	t.Helper()
	requireDaemon(t)
	tools, err := filepath.Abs(cniToolsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cnitool", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(tools, name)); err != nil {
			t.Skipf("needs %s in bin/cni (make cni-tools installs it)", name)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables for portmap (make deps installs it)")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "taprouter"), "github.com/taprouter/taprouter/cmd/taprouter-cni")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/taprouter-cni: %v\n%s", err, out)
	}
	return []string{dir, tools}
}

// cniNode is a node with its daemon and its CNI configuration.
type cniNode struct {
	*testbed.ClusterNode
	Daemon *testbed.Daemon
	CNI    *testbed.CNI
}

// newCNICluster starts taprouterd (vxlan, no pods in its config) on the
// first n nodes of the seed topology and gives each the shipped conflist,
// set to its daemon's socket and its podCIDR.
func newCNICluster(t *testing.T, path []string, n int) (*testbed.Cluster, []*cniNode) {
	t.Helper()
	specs := testbed.Seed()[:n]
	for i := range specs {
		specs[i].Pods = nil
	}
	c := newCluster(t, specs)
	daemons := startTaprouter(t, c, "vxlan")
	var nodes []*cniNode
	for _, cn := range c.Nodes {
		d := daemons[cn.Name]
		cni, err := c.Bed.NewCNI(cn.Node, path, deployConflist(t, d.Socket, cn.Spec.PodCIDR))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &cniNode{ClusterNode: cn, Daemon: d, CNI: cni})
	}
	return c, nodes
}

// deployConflist is deploy/10-taprouter.conflist with the taprouter
// plugin's socket and host-local's range set for one node.
func deployConflist(t *testing.T, socket string, podCIDR netip.Prefix) []byte {
	t.Helper()
	b, err := os.ReadFile("../deploy/10-taprouter.conflist")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("deploy/10-taprouter.conflist: %v", err)
	}
	types := make([]string, len(list.Plugins))
	for i, p := range list.Plugins {
		types[i], _ = p["type"].(string)
	}
	if list.CNIVersion != "1.1.0" || !slices.Equal(types, []string{"taprouter", "portmap"}) {
		t.Fatalf("deploy/10-taprouter.conflist: cniVersion %q, plugins %q; want 1.1.0 with taprouter, portmap", list.CNIVersion, types)
	}
	tr := list.Plugins[0]
	// The runtime passes runtimeConfig only for declared capabilities.
	if caps, _ := tr["capabilities"].(map[string]any); caps["bandwidth"] != true {
		t.Fatalf("deploy/10-taprouter.conflist: taprouter's capabilities %v; want bandwidth", tr["capabilities"])
	}
	tr["socket"] = socket
	tr["ipam"].(map[string]any)["ranges"] = [][]map[string]string{{{"subnet": podCIDR.String()}}}
	out, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// addNamespaces creates n empty pod namespaces named <prefix>NN.
func addNamespaces(t *testing.T, c *testbed.Cluster, prefix string, n int) []*testbed.Netns {
	t.Helper()
	pods := make([]*testbed.Netns, n)
	if err := parallel(n, 8, func(i int) (err error) {
		pods[i], err = c.Bed.AddNetns(fmt.Sprintf("%s%02d", prefix, i))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return pods
}

// parallel runs f(0..n-1), at most limit at a time, and joins the errors.
func parallel(n, limit int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			errs[i] = f(i)
			<-sem
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// wantPodResult checks an ADD result against the node and the pod's real
// eth0 and returns the pod's address.
func wantPodResult(t *testing.T, n *cniNode, pod *testbed.Netns, res *current.Result) netip.Addr {
	t.Helper()
	mtu := testbed.PodMTU("vxlan")
	if len(res.Interfaces) != 1 || len(res.IPs) != 1 || len(res.Routes) != 1 {
		t.Fatalf("%s: result %s; want one interface, one address, one route", pod.Name, res)
	}
	iface, ipc, route := res.Interfaces[0], res.IPs[0], res.Routes[0]
	eth0, err := pod.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if iface.Name != "eth0" || iface.Sandbox != pod.Path() || iface.Mac != eth0.MAC.String() || iface.Mtu != mtu || eth0.MTU != mtu || !eth0.Up {
		t.Errorf("%s: result interface %+v, pod's eth0 %+v; want eth0 in %s with its MAC and MTU %d", pod.Name, iface, eth0, pod.Path(), mtu)
	}
	ip, ok := netip.AddrFromSlice(ipc.Address.IP.To4())
	ones, _ := ipc.Address.Mask.Size()
	if !ok || ones != 32 || !n.Spec.PodCIDR.Contains(ip) || ip == n.Spec.Gateway || ipc.Gateway.String() != n.Spec.Gateway.String() ||
		ipc.Interface == nil || *ipc.Interface != 0 {
		t.Errorf("%s: result address %s; want a /32 in %s via %s on interface 0", pod.Name, ipc, n.Spec.PodCIDR, n.Spec.Gateway)
	}
	if route.Dst.String() != "0.0.0.0/0" || route.GW.String() != n.Spec.Gateway.String() {
		t.Errorf("%s: result route %s; want default via %s", pod.Name, route, n.Spec.Gateway)
	}
	return ip
}

// wantNothingLeft checks that no trace of pods remains on n: no lease, no
// eth0 in their namespaces, no port or FIB entry for their addresses in the
// daemon, and no half-made TAP ("trp…") in the node's namespace.
func wantNothingLeft(t *testing.T, n *cniNode, pods []*testbed.Netns, ips []netip.Addr) {
	t.Helper()
	if leases, err := n.CNI.Leases(); err != nil || len(leases) != 0 {
		t.Errorf("%s: host-local leases left: %v %v", n.Name, leases, err)
	}
	for _, p := range pods {
		if has, err := p.HasLink("eth0"); err != nil || has {
			t.Errorf("%s: eth0 left in %s (%v)", n.Name, p.Name, err)
		}
	}
	for _, p := range podPorts(t, n) {
		if a, err := netip.ParseAddr(p.IP); err == nil && slices.Contains(ips, a) {
			t.Errorf("%s: taprouterd still has port %+v", n.Name, p)
		}
	}
	routes, err := n.Daemon.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if p, err := netip.ParsePrefix(r.Prefix); err == nil && p.Bits() == 32 && slices.Contains(ips, p.Addr()) {
			t.Errorf("%s: FIB entry left: %+v", n.Name, r)
		}
	}
	links, err := n.IP("-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(links, ": trp") {
		t.Errorf("%s: a pod TAP was left in the node's namespace:\n%s", n.Name, links)
	}
}

// podPorts returns the daemon's pod ports (the host port has no address).
func podPorts(t *testing.T, n *cniNode) []testbed.RouterPort {
	t.Helper()
	ports, err := n.Daemon.Ports()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(ports, func(p testbed.RouterPort) bool { return p.IP == "" })
}

// TestCNIPodsAcrossNodes: 50 pods on node1 and 5 on node2 added with
// cnitool (the first 10 all at once), every pod reaches every other, and
// after deleting them all nothing is left.
func TestCNIPodsAcrossNodes(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 2)
	type pod struct {
		ns   *testbed.Netns
		node *cniNode
		ip   netip.Addr
	}
	var pods []*pod
	for i, count := range []int{50, 5} {
		for _, ns := range addNamespaces(t, c, fmt.Sprintf("n%dp", i+1), count) {
			pods = append(pods, &pod{ns: ns, node: nodes[i]})
		}
	}
	results := make([]*current.Result, len(pods))
	add := func(i int) (err error) {
		results[i], err = pods[i].node.CNI.Add(pods[i].ns, "")
		return err
	}

	start := time.Now()
	if err := parallel(10, 10, add); err != nil {
		t.Fatalf("10 concurrent ADDs: %v", err)
	}
	t.Logf("10 concurrent ADDs on node1: %v", time.Since(start))
	if err := parallel(len(pods)-10, 4, func(i int) error { return add(i + 10) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("55 pods added in %v", time.Since(start))

	seen := map[netip.Addr]string{}
	var ips []netip.Addr
	for i, p := range pods {
		p.ip = wantPodResult(t, p.node, p.ns, results[i])
		if other, dup := seen[p.ip]; dup {
			t.Errorf("%s and %s both got %s", other, p.ns.Name, p.ip)
		}
		seen[p.ip] = p.ns.Name
		ips = append(ips, p.ip)
	}
	for i, n := range nodes {
		want := map[int]int{0: 50, 1: 5}[i]
		if leases, err := n.CNI.Leases(); err != nil || len(leases) != want {
			t.Errorf("%s: %d leases (%v), want %d", n.Name, len(leases), err, want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	start = time.Now()
	if err := parallel(len(pods), len(pods), func(i int) error {
		others := slices.Concat(ips[:i], ips[i+1:])
		silent, err := pods[i].ns.Unreachable(others, 10*time.Second)
		if err == nil && len(silent) > 0 {
			err = fmt.Errorf("%s (%s) got no echo reply from %v", pods[i].ns.Name, pods[i].ip, silent)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("full mesh: %d pod pairs answer echo requests (%v)", len(pods)*(len(pods)-1), time.Since(start))
	// The check can fail: an address no pod has stays silent.
	if silent, err := pods[0].ns.Unreachable([]netip.Addr{addr("10.244.0.250")}, 500*time.Millisecond); err != nil || len(silent) != 1 {
		t.Errorf("echo to 10.244.0.250, which no pod has: silent %v, %v; want it silent", silent, err)
	}
	mustPing(t, pods[0].ns, pods[49].ip, 63)
	mustPing(t, pods[0].ns, pods[50].ip, 62)
	mustPing(t, pods[54].ns, pods[1].ip, 62)

	start = time.Now()
	if err := parallel(len(pods), 4, func(i int) error { return pods[i].node.CNI.Del(pods[i].ns, "") }); err != nil {
		t.Fatal(err)
	}
	t.Logf("55 pods deleted in %v", time.Since(start))
	for i, n := range nodes {
		var nss []*testbed.Netns
		for _, p := range pods {
			if p.node == nodes[i] {
				nss = append(nss, p.ns)
			}
		}
		wantNothingLeft(t, n, nss, ips)
	}
}

// daemonUsage is what a leak check compares.
type daemonUsage struct {
	FDs, Goroutines int
	Leases          int
}

// usage measures n's daemon. The stats request comes first: the test's own
// API connection, kept alive, is then open in every measurement.
func usage(t *testing.T, n *cniNode) daemonUsage {
	t.Helper()
	g, err := n.Daemon.Counter("goroutines")
	if err != nil {
		t.Fatal(err)
	}
	fds, err := n.Daemon.OpenFDs()
	if err != nil {
		t.Fatal(err)
	}
	leases, err := n.CNI.Leases()
	if err != nil {
		t.Fatal(err)
	}
	return daemonUsage{FDs: fds, Goroutines: int(g), Leases: len(leases)}
}

// TestCNIAddDelCycles: 200 ADD/DEL cycles with cnitool (4 pods at a time)
// leak no lease, TAP, file descriptor or goroutine in taprouterd.
func TestCNIAddDelCycles(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	const workers, cycles = 4, 50
	pods := addNamespaces(t, c, "cyc", workers)
	var ips sync.Map
	cycle := func(pod *testbed.Netns) error {
		res, err := n.CNI.Add(pod, "")
		if err != nil {
			return err
		}
		if len(res.IPs) == 1 {
			ips.Store(res.IPs[0].Address.IP.String(), true)
		}
		if has, err := pod.HasLink("eth0"); err != nil || !has {
			return fmt.Errorf("%s: no eth0 after ADD (%v)", pod.Name, err)
		}
		return n.CNI.Del(pod, "")
	}
	// One warm-up cycle per pod: the daemon's first API calls start
	// goroutines and open files it keeps.
	if err := parallel(workers, workers, func(i int) error { return cycle(pods[i]) }); err != nil {
		t.Fatal(err)
	}
	before := usage(t, n)

	start := time.Now()
	if err := parallel(workers, workers, func(i int) error {
		for range cycles {
			if err := cycle(pods[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	// Connections of the last plugins may still be closing.
	after := usage(t, n)
	for deadline := time.Now().Add(3 * time.Second); after != before && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		after = usage(t, n)
	}
	distinct := 0
	ips.Range(func(any, any) bool { distinct++; return true })
	t.Logf("%d ADD/DEL cycles in %v (%v each, %d at a time, %d distinct addresses); taprouterd fds %d → %d, goroutines %d → %d; leases %d → %d",
		workers*cycles, elapsed.Round(time.Millisecond), (elapsed / (workers * cycles)).Round(time.Millisecond), workers, distinct,
		before.FDs, after.FDs, before.Goroutines, after.Goroutines, before.Leases, after.Leases)
	if after != before || after.Leases != 0 {
		t.Errorf("leak: before %+v, after %+v", before, after)
	}
	wantNothingLeft(t, n, pods, nil)
}

// pluginConf is what a runtime gives the conflist's first plugin on stdin:
// the plugin's entry with the list's cniVersion and name.
func pluginConf(t *testing.T, n *cniNode, edit func(map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.CNI.ConfDir, "10-"+n.CNI.Network+".conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	conf := list.Plugins[0]
	conf["cniVersion"], conf["name"] = list.CNIVersion, list.Name
	if edit != nil {
		edit(conf)
	}
	out, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cniError is the error object a failed plugin printed.
type cniError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// TestCNIErrors: every failure is a CNI error object on stdout with the
// documented code and exit status 1, and leaves nothing behind.
func TestCNIErrors(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	pod := addNamespaces(t, c, "err", 1)[0]

	// A socket file no daemon listens on: what a killed daemon leaves.
	dead := filepath.Join(t.TempDir(), "dead.sock")
	ln, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	deadDaemon := func(conf map[string]any) { conf["socket"] = dead }

	env := func(command string) map[string]string {
		return map[string]string{"CNI_COMMAND": command, "CNI_CONTAINERID": "err-ctr", "CNI_NETNS": pod.Path(), "CNI_IFNAME": "eth0"}
	}
	tests := []struct {
		name    string
		env     map[string]string
		stdin   []byte
		code    uint
		mention string
	}{
		{"malformed stdin", env("ADD"), []byte(`{"cniVersion": "1.1.0", "name": "taprouter", "type": `), 6, "unexpected end of JSON"},
		{"unknown cniVersion", env("ADD"), pluginConf(t, n, func(c map[string]any) { c["cniVersion"] = "2.0.0" }), 1, "2.0.0"},
		{"missing CNI_NETNS", func() map[string]string { e := env("ADD"); delete(e, "CNI_NETNS"); return e }(), pluginConf(t, n, nil), 4, "CNI_NETNS"},
		{"missing ipam", env("ADD"), pluginConf(t, n, func(c map[string]any) { delete(c, "ipam") }), 7, "ipam: missing"},
		// Rejected by the daemon after host-local gave an address: the
		// lease is released again.
		{"ipam range outside podCIDR", env("ADD"), pluginConf(t, n, func(c map[string]any) {
			c["ipam"].(map[string]any)["ranges"] = [][]map[string]string{{{"subnet": "10.245.0.0/24"}}}
		}), 7, "ip: 10.245.0.2 is outside podCIDR 10.244.0.0/24"},
		{"netns does not exist", func() map[string]string { e := env("ADD"); e["CNI_NETNS"] = "/var/run/netns/no-such-pod"; return e }(),
			pluginConf(t, n, nil), 7, "netns: /var/run/netns/no-such-pod: no such network namespace"},
		{"daemon not running: ADD", env("ADD"), pluginConf(t, n, deadDaemon), 11, "taprouterd is not reachable at " + dead},
		{"daemon not running: STATUS", env("STATUS"), pluginConf(t, n, deadDaemon), 50, "taprouterd is not available"},
		{"daemon not running: DEL", env("DEL"), pluginConf(t, n, deadDaemon), 11, "taprouterd is not reachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := n.CNI.RunPlugin("taprouter", tt.env, tt.stdin)
			if err != nil {
				t.Fatal(err)
			}
			var e cniError
			if jerr := json.Unmarshal(r.Stdout, &e); jerr != nil || r.ExitCode != 1 || e.Code != tt.code || !strings.Contains(e.Msg+e.Details, tt.mention) {
				t.Errorf("exit %d, stdout %s (%v); want exit 1 and a CNI error %d mentioning %q", r.ExitCode, r.Stdout, jerr, tt.code, tt.mention)
			}
			t.Logf("exit %d: %s", r.ExitCode, strings.Join(strings.Fields(string(r.Stdout)), " "))
			wantNothingLeft(t, n, []*testbed.Netns{pod}, nil)
		})
	}
	// The same daemon-down ADD through cnitool: the runtime sees code 11.
	deadConf := pluginConf(t, n, deadDaemon)
	var deadList map[string]any
	json.Unmarshal(deadConf, &deadList)
	list, _ := json.Marshal(map[string]any{"cniVersion": "1.1.0", "name": n.CNI.Network, "plugins": []any{deadList}})
	deadCNI, err := c.Bed.NewCNI(n.Node, path, list)
	if err != nil {
		t.Fatal(err)
	}
	_, err = deadCNI.Add(pod, "")
	if err == nil || !strings.Contains(err.Error(), "taprouterd is not reachable") {
		t.Errorf("cnitool add with the daemon down: %v; want taprouterd is not reachable", err)
	}
	if leases, _ := deadCNI.Leases(); len(leases) != 0 {
		t.Errorf("daemon down: leases %v left", leases)
	}
}

// TestCNIDelIdempotent: a second DEL, a DEL of a container nobody added and
// a DEL after the pod's namespace is gone all succeed and leave nothing.
func TestCNIDelIdempotent(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	pods := addNamespaces(t, c, "del", 2)
	for _, p := range pods {
		if _, err := n.CNI.Add(p, ""); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := n.CNI.Del(pods[0], ""); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	r, err := n.CNI.RunPlugin("taprouter", map[string]string{"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "never-added", "CNI_IFNAME": "eth0"}, pluginConf(t, n, nil))
	if err != nil || r.ExitCode != 0 {
		t.Errorf("DEL of an unknown container: exit %d %s %v", r.ExitCode, r.Stdout, err)
	}
	// The pod's namespace goes first, as when a node reboots.
	if err := c.Bed.DeleteNetns(pods[1]); err != nil {
		t.Fatal(err)
	}
	if err := n.CNI.Del(pods[1], ""); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	wantNothingLeft(t, n, pods[:1], nil)
	if ports := podPorts(t, n); len(ports) != 0 {
		t.Errorf("ports left: %+v", ports)
	}
}

// TestCNICheckAndGC: CHECK of the shipped chain passes on a fresh pod and
// names what an operator broke; GC keeps the valid attachment and removes
// the others' ports and leases.
func TestCNICheckAndGC(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	pods := addNamespaces(t, c, "gc", 3)
	ips := make([]string, len(pods))
	for i, p := range pods {
		res, err := n.CNI.Add(p, "")
		if err != nil {
			t.Fatal(err)
		}
		ips[i] = res.IPs[0].Address.IP.String()
	}
	if err := n.CNI.Check(pods[0], ""); err != nil {
		t.Fatalf("CHECK of a fresh pod: %v", err)
	}
	if _, err := pods[0].IP("link", "set", "eth0", "mtu", "1400"); err != nil {
		t.Fatal(err)
	}
	if _, err := pods[0].IP("route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	err := n.CNI.Check(pods[0], "")
	for _, want := range []string{"eth0 MTU is 1400, want 1450", "route default via 10.244.0.1 dev eth0 is missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CHECK of a broken pod: %v; want it to say %q", err, want)
		}
	}
	t.Logf("CHECK of the broken pod: %v", err)

	valid, _ := json.Marshal([]map[string]string{{"containerID": testbed.ContainerID(pods[0]), "ifname": "eth0"}})
	r, err := n.CNI.RunPlugin("taprouter", map[string]string{"CNI_COMMAND": "GC"}, pluginConf(t, n, func(c map[string]any) {
		c["cni.dev/valid-attachments"] = json.RawMessage(valid)
	}))
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("GC: exit %d %s %s %v", r.ExitCode, r.Stdout, r.Stderr, err)
	}
	if leases, err := n.CNI.Leases(); err != nil || !slices.Equal(leases, ips[:1]) {
		t.Errorf("after GC: leases %v %v, want only %s", leases, err, ips[0])
	}
	if ports := podPorts(t, n); len(ports) != 1 || ports[0].IP != ips[0] {
		t.Errorf("after GC: pod ports %+v, want only %s's", ports, ips[0])
	}
	for _, p := range pods[1:] {
		if has, _ := p.HasLink("eth0"); has {
			t.Errorf("after GC: %s still has eth0", p.Name)
		}
	}
	if err := n.CNI.Del(pods[0], ""); err != nil {
		t.Fatal(err)
	}
	wantNothingLeft(t, n, pods, nil)
}

// TestCNIHostPort: with portmap chained after taprouter, a hostPort on the
// node reaches the pod, from another host on the underlay and from the
// node itself, CHECK of the chain passes, and DEL removes the mapping.
func TestCNIHostPort(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	// Traffic from the underlay to a hostPort is DNATed and routed by the
	// node's kernel to taprouter0, as on any Kubernetes node.
	if err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	client, err := c.Bed.AddUnderlayHost("client", addr("192.168.49.10"))
	if err != nil {
		t.Fatal(err)
	}
	pod := addNamespaces(t, c, "hp", 1)[0]
	mapping := `{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}`
	res, err := n.CNI.Add(pod, mapping)
	if err != nil {
		t.Fatal(err)
	}
	podIP := res.IPs[0].Address.IP.String()

	var ln net.Listener
	if err := pod.Do(func() (err error) { ln, err = net.Listen("tcp4", ":80"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "pod %s, peer %s\n", conn.LocalAddr(), conn.RemoteAddr())
			conn.Close()
		}
	}()
	hostPort := netip.AddrPortFrom(n.Addr, 8080).String()
	ask := func(from *testbed.Netns) (string, error) {
		var conn net.Conn
		if err := from.Do(func() (err error) { conn, err = net.DialTimeout("tcp4", hostPort, 3*time.Second); return err }); err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		return bufio.NewReader(conn).ReadString('\n')
	}
	if err := n.CNI.Check(pod, mapping); err != nil {
		t.Errorf("CHECK of the shipped chain with the mapping: %v", err)
	}
	for _, from := range []*testbed.Netns{client, n.Netns} {
		line, err := ask(from)
		if err != nil || !strings.HasPrefix(line, "pod "+podIP+":80,") {
			t.Errorf("%s → %s: %q %v; want the pod %s to answer", from.Name, hostPort, line, err, podIP)
		}
		t.Logf("%s → %s: %s", from.Name, hostPort, strings.TrimSpace(line))
	}

	if err := n.CNI.Del(pod, mapping); err != nil {
		t.Fatal(err)
	}
	if line, err := ask(client); err == nil {
		t.Errorf("after DEL, %s still answers: %q", hostPort, line)
	}
	rules, err := n.Run("iptables-save", "-t", "nat")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules, "--dport 8080") {
		t.Errorf("after DEL, the node still maps port 8080:\n%s", rules)
	}
	wantNothingLeft(t, n, []*testbed.Netns{pod}, nil)
}
