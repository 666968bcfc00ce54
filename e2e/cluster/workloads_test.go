package cluster

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const agnhost = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"

// testDeployment20: a Deployment of 20 agnhost pods spread over the nodes;
// every pod reaches every other (380 HTTP requests, each answered by the
// pod it was sent to); scaled to 0, every node's taprouterd holds only the
// pods left on it (CoreDNS's) and host-local exactly their leases.
func (c *testCluster) testDeployment20(t *testing.T) {
	const replicas = 20
	ns := "mesh"
	c.kubectl(t, "", "create", "namespace", ns)
	defer c.kubectl(t, "", "delete", "namespace", ns, "--wait=false")
	c.kubectl(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: mesh, namespace: %s}
spec:
  replicas: %d
  selector:
    matchLabels: {app: mesh}
  template:
    metadata:
      labels: {app: mesh}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {app: mesh}
      containers:
      - name: netexec
        image: %s
        imagePullPolicy: Never
        args: [netexec, --http-port=8080]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
          periodSeconds: 1
`, ns, replicas, agnhost), "apply", "-f", "-")
	t0 := time.Now()
	c.kubectl(t, "", "-n", ns, "rollout", "status", "deployment/mesh", "--timeout=180s")
	pods := c.pods(t, ns, "app=mesh")
	t.Logf("%d pods ready in %.1f s", len(pods), time.Since(t0).Seconds())
	if len(pods) != replicas {
		t.Fatalf("%d pods, want %d", len(pods), replicas)
	}
	perNode := map[string]int{}
	for _, p := range pods {
		perNode[p.Node]++
	}
	for _, n := range c.Nodes {
		// maxSkew 1 over 3 nodes: 6, 7 and 7.
		if perNode[n.Name] < replicas/len(c.Nodes) || perNode[n.Name] > replicas/len(c.Nodes)+1 {
			t.Errorf("%s has %d of the %d pods: not spread", n.Name, perNode[n.Name], replicas)
		}
	}
	t.Logf("pods per node: %v", perNode)

	// From each pod, one request to every other; netexec's /hostname
	// answers with the pod's name.
	var targets []string
	for _, p := range pods {
		targets = append(targets, p.IP)
	}
	byIP := map[string]string{}
	for _, p := range pods {
		byIP[p.IP] = p.Name
	}
	t0 = time.Now()
	answered, total := 0, 0
	for _, p := range pods {
		script := fmt.Sprintf(`for ip in %s; do [ "$ip" = %s ] && continue; printf '%%s ' "$ip"; curl -s --max-time 5 "http://$ip:8080/hostname" || printf FAILED; echo; done`,
			strings.Join(targets, " "), p.IP)
		out := c.kubectl(t, "", "-n", ns, "exec", p.Name, "--", "/bin/sh", "-c", script)
		for _, line := range scanLines(out) {
			ip, name, _ := strings.Cut(line, " ")
			total++
			if byIP[ip] != "" && name == byIP[ip] {
				answered++
			} else {
				t.Errorf("%s (%s, %s) -> %s (%s): answer %q", p.Name, p.IP, p.Node, ip, byIP[ip], name)
			}
		}
	}
	want := replicas * (replicas - 1)
	t.Logf("full mesh: %d of %d requests answered by the pod they were sent to (%.1f s)", answered, want, time.Since(t0).Seconds())
	if answered != want || total != want {
		t.Fatalf("full mesh: %d of %d answered (%d lines), want %d", answered, want, total, want)
	}

	c.kubectl(t, "", "-n", ns, "scale", "deployment/mesh", "--replicas=0")
	t0 = time.Now()
	waitFor(t, 2*time.Minute, "mesh pods gone", func() (bool, string) {
		left := c.pods(t, ns, "app=mesh")
		return len(left) == 0, fmt.Sprintf("%d pods left", len(left))
	})
	// What is left on each node: the pods of other namespaces (CoreDNS).
	rest := c.pods(t, "", "")
	for _, n := range c.Nodes {
		want := podIPsOn(rest, n.Name)
		var ports, leases []string
		waitFor(t, time.Minute, n.Name+": ports and leases released", func() (bool, string) {
			ports, leases = c.nodeAttachments(t, n)
			return slices.Equal(ports, want) && slices.Equal(leases, want),
				fmt.Sprintf("taprouterd ports %v, host-local leases %v, want %v", ports, leases, want)
		})
		t.Logf("%s: after scale to 0: taprouterd ports %v, leases %v (the remaining pods: %v)", n.Name, ports, leases, want)
	}
	t.Logf("scale to 0: every lease released and every TAP gone in %.1f s", time.Since(t0).Seconds())
}

// testHostPort: a pod with a hostPort (portmap, chained after taprouter,
// given the mapping through the runtime's capability args) answers on its
// node's address from another node, from a pod on another node and from its
// own node.
func (c *testCluster) testHostPort(t *testing.T) {
	ns := "hostport"
	c.kubectl(t, "", "create", "namespace", ns)
	defer c.kubectl(t, "", "delete", "namespace", ns, "--wait=false")
	target := c.node(t, "node2")
	c.kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: server, namespace: %[1]s}
spec:
  nodeName: node2
  terminationGracePeriodSeconds: 1
  containers:
  - name: netexec
    image: %[2]s
    imagePullPolicy: Never
    args: [netexec, --http-port=8080]
    ports:
    - {containerPort: 8080, hostPort: 31080, protocol: TCP}
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: %[1]s}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %[2]s
    imagePullPolicy: Never
    args: [pause]
`, ns, agnhost), "apply", "-f", "-")
	c.kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "pod/server", "pod/client", "--timeout=120s")
	url := fmt.Sprintf("http://%s:31080/hostname", target.Addr)
	if got := c.onNode(t, c.node(t, "node1"), "curl", "-fsS", "--max-time", "5", url); got != "server" {
		t.Errorf("node1 -> %s: %q, want server", url, got)
	}
	if got := c.kubectl(t, "", "-n", ns, "exec", "client", "--", "curl", "-fsS", "--max-time", "5", url); got != "server" {
		t.Errorf("pod on node1 -> %s: %q, want server", url, got)
	}
	if got := c.onNode(t, target, "curl", "-fsS", "--max-time", "5", url); got != "server" {
		t.Errorf("node2 -> %s: %q, want server", url, got)
	}
	// The mapping is portmap's: a DNAT in its chain, for exactly this port.
	nat := c.onNode(t, target, "iptables", "-t", "nat", "-S")
	if !regexp.MustCompile(`-A CNI-DN-\S+ .*--dport 31080 -j DNAT --to-destination 10\.244\.\d+\.\d+:8080`).MatchString(nat) {
		t.Errorf("node2: no portmap DNAT for 31080:\n%s", grepLines(nat, "CNI-"))
	}
	t.Logf("hostPort 31080 of the pod on node2 answered at %s from node1, a pod on node1 and node2", url)
}

// testRestartAndUpgrade: a TCP stream between pods on two nodes (iperf,
// 20 Mbit/s, one connection) runs while taprouter's DaemonSet pod is
// deleted on the client's node, then on the server's, and then the
// DaemonSet rolls to a new image on every node; the stream completes on
// its one connection. The outage is the longest run of 100-ms intervals
// in which nothing arrived.
func (c *testCluster) testRestartAndUpgrade(t *testing.T) {
	ns := "stream"
	c.kubectl(t, "", "create", "namespace", ns)
	defer c.kubectl(t, "", "delete", "namespace", ns, "--wait=false")
	c.kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: server, namespace: %[1]s}
spec:
  nodeName: node2
  terminationGracePeriodSeconds: 1
  containers:
  - name: iperf
    image: %[2]s
    imagePullPolicy: Never
    command: [iperf, -s, -p, "5001", -i, "0.1", -f, k]
`, ns, agnhost), "apply", "-f", "-")
	c.kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "pod/server", "--timeout=120s")
	serverIP := c.pods(t, ns, "")[0].IP
	const seconds = 100
	c.kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: client, namespace: %[1]s}
spec:
  nodeName: node1
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: iperf
    image: %[2]s
    imagePullPolicy: Never
    command: [iperf, -c, %[3]s, -p, "5001", -t, "%[4]d", -i, "0.1", -b, 20M, -f, k]
`, ns, agnhost, serverIP, seconds), "apply", "-f", "-")
	c.kubectl(t, "", "-n", ns, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
	start := time.Now()
	time.Sleep(5 * time.Second)

	dsPod := func(node string) string {
		for _, p := range c.pods(t, "kube-system", "app.kubernetes.io/name=taprouter") {
			if p.Node == node {
				return p.Name
			}
		}
		return ""
	}
	for _, node := range []string{"node1", "node2"} {
		old := dsPod(node)
		t0 := time.Since(start)
		c.kubectl(t, "", "-n", "kube-system", "delete", "pod", old, "--wait=true")
		c.kubectl(t, "", "-n", "kube-system", "rollout", "status", "ds/taprouter", "--timeout=120s")
		t.Logf("%s: DaemonSet pod %s deleted at %.1f s, its successor %s ready at %.1f s", node, old, t0.Seconds(), dsPod(node), time.Since(start).Seconds())
	}
	t0 := time.Since(start)
	c.kubectl(t, "", "-n", "kube-system", "set", "image", "ds/taprouter", "install-cni=taprouter/taprouter:next", "taprouterd=taprouter/taprouter:next")
	c.kubectl(t, "", "-n", "kube-system", "rollout", "status", "ds/taprouter", "--timeout=240s")
	t.Logf("DaemonSet rolled to taprouter/taprouter:next from %.1f s to %.1f s", t0.Seconds(), time.Since(start).Seconds())
	images := c.kubectl(t, "", "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=taprouter",
		"-o", `jsonpath={range .items[*]}{.spec.nodeName}={.status.containerStatuses[0].image}{"\n"}{end}`)
	if lines := scanLines(images); len(lines) != len(c.Nodes) || strings.Count(images, "taprouter/taprouter:next") != len(c.Nodes) {
		t.Errorf("after the roll: %q, want every node on taprouter/taprouter:next", images)
	}
	if elapsed := time.Since(start); elapsed > seconds*time.Second-5*time.Second {
		t.Fatalf("the restarts took %.0f s, longer than the %d s stream: make it longer", elapsed.Seconds(), seconds)
	}
	c.kubectl(t, "", "-n", ns, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/client", fmt.Sprintf("--timeout=%ds", seconds+60))
	clientLog := c.kubectl(t, "", "-n", ns, "logs", "client")
	serverLog := c.kubectl(t, "", "-n", ns, "logs", "server")
	if n := strings.Count(clientLog, "connected with"); n != 1 {
		t.Errorf("client: %d connections, want exactly 1:\n%s", n, lastLines(clientLog, 20))
	}
	if n := strings.Count(serverLog, "connected with"); n != 1 {
		t.Errorf("server: %d connections, want exactly 1:\n%s", n, lastLines(serverLog, 20))
	}
	outage, intervals, total := longestGap(serverLog)
	t.Logf("stream of %d s: %d intervals of 100 ms at the server, %.1f MB received; longest outage %.1f s", seconds, intervals, total/1e6, outage.Seconds())
	if intervals < seconds*10 {
		t.Errorf("server reported %d intervals of 100 ms, want at least %d: the stream ended early:\n%s", intervals, seconds*10, lastLines(serverLog, 20))
	}
}

// iperf2's interval lines: "[  1] 3.10-3.20 sec  245 KBytes  20070 Kbits/sec".
var intervalRE = regexp.MustCompile(`\]\s+([0-9.]+)-\s*([0-9.]+) sec\s+([0-9.]+) KBytes`)

// longestGap returns the longest run of consecutive intervals with no
// data, the number of intervals and the total KBytes×1000 (bytes).
func longestGap(log string) (time.Duration, int, float64) {
	var longest, run time.Duration
	n := 0
	var total float64
	for _, m := range intervalRE.FindAllStringSubmatch(log, -1) {
		from, _ := strconv.ParseFloat(m[1], 64)
		to, _ := strconv.ParseFloat(m[2], 64)
		kb, _ := strconv.ParseFloat(m[3], 64)
		if to-from > 0.5 {
			continue // the final summary line
		}
		n++
		total += kb * 1000
		if kb == 0 {
			run += time.Duration((to - from) * float64(time.Second))
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest, n, total
}
