package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// kubeNode is a node of a Kubernetes test cluster: its taprouterd in
// Kubernetes mode, its CNI configuration (deploy/'s conflist, usePodCidr)
// and the pods attached through it.
type kubeNode struct {
	*testbed.ClusterNode
	Daemon *testbed.Daemon
	CNI    *testbed.CNI
	Pods   []*testbed.Pod
	// Ready is when the daemon's socket first answered.
	Ready time.Time
}

// kubeSpecs are n nodes 192.168.49.2.. with pod ranges 10.244.0.0/24..
// and no pods of their own (the CNI plugin attaches them).
func kubeSpecs(n int) []testbed.NodeSpec {
	specs := make([]testbed.NodeSpec, n)
	for i := range specs {
		specs[i] = kubeSpec(i)
	}
	return specs
}

func kubeSpec(i int) testbed.NodeSpec {
	return testbed.NodeSpec{
		Name:    fmt.Sprintf("node%d", i+1),
		Addr:    netip.AddrFrom4([4]byte{192, 168, 49, byte(2 + i)}),
		PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		Gateway: netip.AddrFrom4([4]byte{10, 244, byte(i), 1}),
	}
}

// applyRBAC creates deploy/'s ServiceAccount, ClusterRole and binding, and
// returns a kubeconfig with the account's token: the daemons under test
// have exactly the rights the DaemonSet gives them.
func (kc *kubeCluster) applyRBAC(t *testing.T) string {
	t.Helper()
	kc.API.Kubectl(t, "", "apply", "-f", "../deploy/01-serviceaccount.yaml", "-f", "../deploy/02-clusterrole.yaml",
		"-f", "../deploy/03-clusterrolebinding.yaml")
	return kc.API.ServiceAccountKubeconfig(t, "kube-system", "taprouter")
}

// startKubeNode turns on n's ip_forward, as on every Kubernetes node
// (kube-proxy and egress need the kernel to forward; the direct backend
// must not deliver twice with it on), starts taprouterd in Kubernetes mode
// on n (backend, the cluster CIDR) and attaches pods pod namespaces
// through the CNI plugin.
func (kc *kubeCluster) startKubeNode(t *testing.T, n *testbed.ClusterNode, kubeconfig, backend string, pods int) *kubeNode {
	t.Helper()
	if err := n.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	d, err := kc.Bed.StartKubeDaemon(n.Node, kubeconfig, []byte("backend: "+backend+"\n"), "--cluster-cidr", clusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	conflist, err := os.ReadFile("../deploy/10-taprouter.conflist")
	if err != nil {
		t.Fatal(err)
	}
	conflist = bytes.Replace(conflist, []byte(`"/run/taprouter/taprouterd.sock"`), []byte(`"`+d.Socket+`"`), 1)
	cni, err := kc.Bed.NewCNI(n.Node, requireCNI(t), conflist)
	if err != nil {
		t.Fatal(err)
	}
	kn := &kubeNode{ClusterNode: n, Daemon: d, CNI: cni, Ready: ready}
	// The daemon the node runs at the end (a test may stop it, nil, or
	// start another) must not have exited.
	t.Cleanup(func() {
		if kn.Daemon == nil {
			return
		}
		if exited, err := kn.Daemon.Exited(); exited {
			t.Errorf("taprouterd on %s exited during the test (%v)", n.Name, err)
		}
	})
	for i := range pods {
		name := fmt.Sprintf("%sp%d", n.Name, i)
		ns, err := kc.Bed.AddNetns(name)
		if err != nil {
			t.Fatal(err)
		}
		res, err := cni.Add(ns, "")
		if err != nil {
			t.Fatal(err)
		}
		ip, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
		if !n.Spec.PodCIDR.Contains(ip) {
			t.Fatalf("%s: CNI ADD gave %s, outside the Node's podCIDR %s", name, ip, n.Spec.PodCIDR)
		}
		kn.Pods = append(kn.Pods, &testbed.Pod{Netns: ns, Spec: testbed.PodSpec{Name: name, IP: ip}, Node: n})
	}
	return kn
}

// waitPeers waits up to timeout until d's peers are exactly want (node
// names), and returns how long that took.
func waitPeers(t *testing.T, d *testbed.Daemon, want []string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var got []string
	for {
		ps, err := d.Peers()
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, p := range ps {
			got = append(got, p.Node)
		}
		if slices.Equal(got, want) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s's peers are %v after %v, want %v", d.Node.Name, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// meshReachable fails the test unless every pod answers every other pod.
func meshReachable(t *testing.T, nodes []*kubeNode) {
	t.Helper()
	var all []*testbed.Pod
	for _, n := range nodes {
		all = append(all, n.Pods...)
	}
	pairs := 0
	for _, from := range all {
		var dsts []netip.Addr
		for _, to := range all {
			if to != from {
				dsts = append(dsts, to.Addr())
			}
		}
		silent, err := from.Unreachable(dsts, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(silent) > 0 {
			t.Fatalf("%s (%s) gets no answer from %v", from.Spec.Name, from.Addr(), silent)
		}
		pairs += len(dsts)
	}
	t.Logf("%d pods, %d ordered pairs: every one answers", len(all), pairs)
}

// hasRouteTo reports whether d's FIB routes prefix to a peer.
func hasRouteTo(t *testing.T, d *testbed.Daemon, prefix netip.Prefix) bool {
	t.Helper()
	routes, err := d.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Prefix == prefix.String() && strings.HasPrefix(r.Nexthop, "peer") {
			return true
		}
	}
	return false
}

// TestKubeCluster: three nodes run taprouterd with --kubeconfig (the
// DaemonSet's service account) and no peers in any file; Node objects with
// podCIDRs and InternalIPs come from the API; pods are attached by the CNI
// plugin with host-local on the Node's podCIDR. Every pair of pods answers,
// the node's namespace reaches pods on other nodes, a fourth node joins
// (reachable from every pod within 2 s of its daemon being ready) and is
// deleted (its routes gone everywhere within 2 s, its pods then net
// unreachable), and a node whose InternalIP changes is followed by its
// peers once its own daemon has started again with it.
func TestKubeCluster(t *testing.T) {
	for _, backend := range []string{"vxlan", "direct"} {
		t.Run(backend, func(t *testing.T) { testKubeCluster(t, backend) })
	}
}

func testKubeCluster(t *testing.T, backend string) {
	requireCNI(t)
	kc := newKubeCluster(t, kubeSpecs(3))
	kubeconfig := kc.applyRBAC(t)
	var nodes []*kubeNode
	for _, n := range kc.Nodes {
		nodes = append(nodes, kc.startKubeNode(t, n, kubeconfig, backend, 1))
	}
	for _, n := range nodes {
		var want []string
		for _, m := range nodes {
			if m != n {
				want = append(want, m.Name)
			}
		}
		waitPeers(t, n.Daemon, want, 5*time.Second)
	}
	meshReachable(t, nodes)
	// The node's namespace reaches a pod on another node, and the reply
	// comes back through the tunnel (TTL 64 - 2 routers).
	mustPing(t, nodes[0].Netns, nodes[1].Pods[0].Addr(), 62)

	// Annotations: each node announces its backend and underlay address.
	for _, n := range nodes {
		got := kc.API.Kubectl(t, "", "get", "node", n.Name, "-o", `jsonpath={.metadata.annotations.taprouter\.io/backend} {.metadata.annotations.taprouter\.io/public-ip}`)
		if want := backend + " " + n.Addr.String(); got != want {
			t.Errorf("%s announces %q, want %q", n.Name, got, want)
		}
	}

	// A fourth node joins.
	spec4 := kubeSpec(3)
	n4, err := kc.Bed.AddNode(spec4.Name, spec4.Addr)
	if err != nil {
		t.Fatal(err)
	}
	cn4 := &testbed.ClusterNode{Node: n4, Spec: spec4}
	kc.createNode(t, spec4)
	node4 := kc.startKubeNode(t, cn4, kubeconfig, backend, 1)
	ready := node4.Ready
	pod4 := node4.Pods[0].Addr()
	// A liveness bound, not a speed test: the join must reach every node
	// without a restart. The time it took is logged; 10 s leaves room for
	// a loaded 2-core CI machine, where the CNI ADD alone took 2.5 s once
	// (it took 0.7 s idle).
	for _, n := range nodes {
		deadline := ready.Add(10 * time.Second)
		silent, err := n.Pods[0].Unreachable([]netip.Addr{pod4}, time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if len(silent) > 0 {
			t.Fatalf("%s's pod does not reach node4's pod %s within 10 s of node4's taprouterd being ready", n.Name, pod4)
		}
	}
	t.Logf("node4 joined: its pod answered every other node's pod %v after its taprouterd was ready (the CNI ADD of that pod included)", time.Since(ready).Round(time.Millisecond))
	nodes = append(nodes, node4)
	meshReachable(t, nodes)

	// node4's Node is deleted: its routes go from every other taprouterd
	// within 2 s; its pods are then net unreachable.
	kc.API.Kubectl(t, "", "delete", "node", spec4.Name)
	deleted := time.Now()
	for _, n := range nodes[:3] {
		for hasRouteTo(t, n.Daemon, spec4.PodCIDR) {
			if time.Since(deleted) > 2*time.Second {
				t.Fatalf("%s still routes %s to a peer 2 s after node4's Node was deleted", n.Name, spec4.PodCIDR)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("node4 deleted: its route was gone from the 3 other taprouterds after %v", time.Since(deleted).Round(time.Millisecond))
	r, err := nodes[0].Pods[0].Ping(pod4, testbed.PingOptions{Count: 1, Deadline: 3 * time.Second})
	if err == nil && r.Received != 0 || !strings.Contains(r.Output, "Destination Net Unreachable") {
		t.Fatalf("ping node4's pod after its Node was deleted: %v, want ICMP net unreachable:\n%s", err, r.Output)
	}
	node4.Daemon.Stop(5 * time.Second)
	node4.Daemon = nil
	nodes = nodes[:3]

	// node3's InternalIP changes: its taprouterd exits to start again with
	// it (kubelet restarts the DaemonSet pod; here the test does), and its
	// peers follow the Node.
	n3 := nodes[2]
	newAddr := netip.MustParseAddr("192.168.49.14")
	if _, err := n3.IP("addr", "add", newAddr.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	kc.setInternalIP(t, n3.Name, newAddr)
	if err := n3.Daemon.Wait(5 * time.Second); err == nil || !strings.Contains(n3.Daemon.Log(), "InternalIP or podCIDRs changed") {
		t.Fatalf("taprouterd on node3 did not exit on its InternalIP change (%v):\n%s", err, n3.Daemon.Log())
	}
	// The old address goes; the new one, a secondary of the same subnet,
	// must stay (by default the kernel deletes secondaries with the
	// primary).
	if err := n3.Sysctl("net.ipv4.conf.eth0.promote_secondaries", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n3.IP("addr", "del", n3.Addr.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	d3, err := kc.Bed.StartKubeDaemon(n3.Node, kubeconfig, []byte("backend: "+backend+"\n"), "--cluster-cidr", clusterCIDR)
	if err != nil {
		t.Fatal(err)
	}
	n3.Daemon = d3
	for _, n := range nodes[:2] {
		deadline := time.Now().Add(2 * time.Second)
		for {
			ps, err := n.Daemon.Peers()
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(ps, func(p testbed.RouterPeer) bool { return p.Node == n3.Name })
			if i >= 0 && ps[i].Address == newAddr.String() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's peers after node3's InternalIP change: %+v, want node3 at %s", n.Name, ps, newAddr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	meshReachable(t, nodes)
}

// TestKubeServices: the real kube-proxy (iptables mode) in each node's
// namespace and a ClusterIP Service whose only endpoint is a pod on the
// other node, created through the API: TCP and UDP to the ClusterIP answer
// from a pod (which the endpoint sees with its own address: no NAT) and
// from the node's namespace. With ip_forward=1 on every node, the direct
// backend delivers each packet once (counted in the receiver).
func TestKubeServices(t *testing.T) {
	for _, backend := range []string{"vxlan", "direct"} {
		t.Run(backend, func(t *testing.T) { testKubeServices(t, backend) })
	}
}

func testKubeServices(t *testing.T, backend string) {
	requireCNI(t)
	kc := newKubeCluster(t, kubeSpecs(2))
	kubeconfig := kc.applyRBAC(t)
	var nodes []*kubeNode
	for _, n := range kc.Nodes {
		// Stands in for the node's default route: a socket's first route
		// lookup, before kube-proxy's DNAT, needs one for the ClusterIP.
		if _, err := n.IP("route", "add", "10.96.0.0/16", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, kc.startKubeNode(t, n, kubeconfig, backend, 1))
	}
	waitPeers(t, nodes[0].Daemon, []string{"node2"}, 5*time.Second)
	waitPeers(t, nodes[1].Daemon, []string{"node1"}, 5*time.Second)
	client, server := nodes[0].Pods[0], nodes[1].Pods[0]
	svc := netip.MustParseAddr("10.96.0.50")
	kc.createService(t, "web", svc, 80, 8080, server.Addr(), "node2")
	for _, n := range kc.Nodes {
		kc.startKubeProxy(t, n)
	}
	// kube-proxy programs the endpoint a moment after the Service.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rules, err := kc.Nodes[0].Run("iptables-save", "-t", "nat")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(rules, "--to-destination "+server.Addr().String()+":8080") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-proxy on node1 has no DNAT to %s:8080 (tcp, udp):\n%s", server.Addr(), rules)
		}
		time.Sleep(100 * time.Millisecond)
	}
	dst := netip.AddrPortFrom(svc, 80)
	if src := tcpExchange(t, client, dst, server, 8080); src.Addr() != client.Addr() {
		t.Errorf("TCP pod → ClusterIP: the endpoint saw %s, want the client pod %s (no NAT)", src, client.Addr())
	}
	if src := udpExchange(t, client, dst, server, 8080); src.Addr() != client.Addr() {
		t.Errorf("UDP pod → ClusterIP: the endpoint saw %s, want the client pod %s", src, client.Addr())
	}
	node := &testbed.Pod{Netns: kc.Nodes[0].Netns, Spec: testbed.PodSpec{Name: "node1"}, Node: kc.Nodes[0]}
	src := tcpExchange(t, node, dst, server, 8080)
	t.Logf("TCP node1 → ClusterIP → pod on node2: 1 MiB each way; the endpoint saw %s", src)
	udpExchange(t, node, dst, server, 8080)

	// Each packet once: 20 echo requests sent, 20 arrive in the server pod.
	// One more than sent: a duplicate would complete the count.
	capture, err := kc.Bed.StartCapture(server.Netns, "eth0", "icmp[icmptype] == icmp-echo", 21)
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.Ping(server.Addr(), testbed.PingOptions{Count: 20, Interval: 20 * time.Millisecond, Deadline: 5 * time.Second})
	if err != nil || r.Received != 20 {
		t.Fatalf("ping: %v, %d/20:\n%s", err, r.Received, r.Output)
	}
	if !strings.Contains(r.Output, " 0% packet loss") || strings.Contains(r.Output, "DUP!") {
		t.Errorf("ping saw loss or duplicates:\n%s", r.Output)
	}
	packets, err := capture.Wait(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 20 {
		t.Errorf("%s backend, ip_forward=1: the server pod received %d echo requests, want exactly 20", backend, len(packets))
	}
}

// TestKubeAPIOutage: the API server is stopped for 30 s during a cross-node
// TCP transfer. The transfer completes, each taprouterd logs the outage
// once and the return once, and its routes are identical before, during
// and after (nothing is torn down while the API is away, nothing flaps
// when it is back and the watch re-lists).
func TestKubeAPIOutage(t *testing.T) {
	requireCNI(t)
	kc := newKubeCluster(t, kubeSpecs(2))
	kubeconfig := kc.applyRBAC(t)
	var nodes []*kubeNode
	for _, n := range kc.Nodes {
		nodes = append(nodes, kc.startKubeNode(t, n, kubeconfig, "vxlan", 1))
	}
	waitPeers(t, nodes[0].Daemon, []string{"node2"}, 5*time.Second)
	waitPeers(t, nodes[1].Daemon, []string{"node1"}, 5*time.Second)
	routes := func() map[string][]testbed.RouterRoute {
		m := map[string][]testbed.RouterRoute{}
		for _, n := range nodes {
			rs, err := n.Daemon.Routes()
			if err != nil {
				t.Fatal(err)
			}
			m[n.Name] = rs
		}
		return m
	}
	before := routes()
	applied := map[string]int{}
	for _, n := range nodes {
		applied[n.Name] = strings.Count(n.Daemon.Log(), "peers applied")
	}
	type result struct {
		r   testbed.IperfResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := kc.Bed.Iperf(nodes[0].Pods[0].Netns, nodes[1].Pods[0].Netns, nodes[1].Pods[0].Addr(), testbed.IperfOptions{Duration: 40 * time.Second})
		done <- result{r, err}
	}()
	time.Sleep(3 * time.Second)
	kc.API.StopAPIServer(t)
	stopped := time.Now()
	for time.Since(stopped) < 30*time.Second {
		time.Sleep(5 * time.Second)
		if during := routes(); !equalRoutes(during, before) {
			t.Fatalf("routes changed while the API server was away:\nbefore %v\nduring %v", before, during)
		}
	}
	kc.API.StartAPIServer(t)
	back := time.Now()
	// The informers re-list at their reflector's next retry: client-go
	// backs off exponentially to 30 s during an outage, plus up to as much
	// again of jitter (once 20 s were not enough).
	for _, n := range nodes {
		deadline := back.Add(65 * time.Second)
		for !strings.Contains(n.Daemon.Log(), "API server reachable again") {
			if time.Now().After(deadline) {
				t.Fatalf("taprouterd on %s did not log the API server's return:\n%s", n.Name, n.Daemon.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s resynced %v after the API server was back", n.Name, time.Since(back).Round(100*time.Millisecond))
	}
	time.Sleep(time.Second) // a re-list that changed nothing hands out nothing
	if after := routes(); !equalRoutes(after, before) {
		t.Fatalf("routes changed after the API server came back:\nbefore %v\nafter  %v", before, after)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := res.r.CheckTransfer(res.r.BytesSent); err != nil || res.r.BytesSent == 0 {
		t.Fatalf("iperf3 across the outage: %v (sent %d)", err, res.r.BytesSent)
	}
	t.Logf("iperf3 for 40 s with the API server away for 30 s of it: %d bytes received, %.2f Gbit/s", res.r.BytesReceived, res.r.BitsPerSecond/1e9)
	for _, n := range nodes {
		log := n.Daemon.Log()
		if got := strings.Count(log, "API server unreachable, forwarding on last known state"); got != 1 {
			t.Errorf("%s logged the outage %d times, want once", n.Name, got)
		}
		if got := strings.Count(log, "API server reachable again"); got != 1 {
			t.Errorf("%s logged the return %d times, want once", n.Name, got)
		}
		if got := strings.Count(log, "peers applied"); got != applied[n.Name] {
			t.Errorf("%s applied peers %d times, %d before the outage: want no apply from the outage or the re-list:\n%s", n.Name, got, applied[n.Name], log)
		}
	}
}

func equalRoutes(a, b map[string][]testbed.RouterRoute) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
