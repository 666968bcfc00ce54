package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/kubecluster"
)

// envRun turns the tests on.
const envRun = "TAPROUTER_CLUSTER_TESTS"

// moduleRoot is the directory of go.mod above the working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// testCluster is a cluster under test and where its tools are.
type testCluster struct {
	*kubecluster.Cluster
	root string // module root
	bin  string // bin/k8s
}

// upCluster brings up a 3-node cluster with backend, taprouter installed
// from deploy/, or skips t when the cluster tests are off or it is not root.
func upCluster(t *testing.T, backend string) *testCluster {
	t.Helper()
	if os.Getenv(envRun) != "1" {
		t.Skipf("a whole cluster takes minutes: set %s=1 (make test-cluster; make test runs it)", envRun)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network, mount and UTS namespaces, cgroups, containerd")
	}
	root := moduleRoot(t)
	bin := filepath.Join(root, "bin", "k8s")
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
		"kube-proxy", "kubectl", "containerd", "containerd-shim-runc-v2", "ctr", "crictl", "e2e.test", "ginkgo"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			t.Fatalf("%s missing: run make k8s-tools (%v)", name, err)
		}
	}
	images, _ := filepath.Glob(filepath.Join(root, "bin", "images", "*.tar"))
	for _, want := range []string{"pause.tar", "agnhost.tar", "coredns.tar", "taprouter.tar", "taprouter-next.tar"} {
		if !slices.Contains(images, filepath.Join(root, "bin", "images", want)) {
			t.Fatalf("bin/images/%s missing: run make images", want)
		}
	}
	dir, err := os.MkdirTemp("", "taprouter-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	// The machine-wide settings kubelet would change: the same after Down.
	machine := readSysctls(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	t0 := time.Now()
	c, err := kubecluster.Up(ctx, kubecluster.Config{
		Dir:       dir,
		Name:      fmt.Sprintf("t%d%c", os.Getpid()%1000000, backend[0]),
		Nodes:     3,
		BinDir:    bin,
		Images:    images,
		Manifests: []string{filepath.Join(root, "deploy")},
		Backend:   backend,
		Logf:      t.Logf,
	})
	if err != nil {
		t.Fatalf("cluster up: %v", err)
	}
	tc := &testCluster{Cluster: c, root: root, bin: bin}
	live.Store(c.Dir, true)
	t.Cleanup(func() {
		defer live.Delete(c.Dir)
		if t.Failed() {
			tc.dumpState(t)
		}
		t0 := time.Now()
		if err := c.Down(); err != nil {
			t.Errorf("cluster down: %v", err)
		}
		t.Logf("cluster down in %.1f s", time.Since(t0).Seconds())
		if after := readSysctls(t); !maps.Equal(after, machine) {
			t.Errorf("the machine's sysctls changed: %v before, %v after", machine, after)
		}
		if left, _ := filepath.Glob("/run/netns/" + c.Name + "-*"); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	t.Logf("cluster up with the %s backend in %.1f s: %d nodes Ready, taprouter's DaemonSet and CoreDNS ready", backend, time.Since(t0).Seconds(), len(c.Nodes))
	return tc
}

// readSysctls reads the machine-wide settings kubelet sets when they
// differ from what it wants (kubecluster keeps it from writing them).
func readSysctls(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"} {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out
}

// dumpState logs what a person debugging a failure looks at first.
func (c *testCluster) dumpState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes,pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"-n", "kube-system", "logs", "-l", "app.kubernetes.io/name=taprouter", "--tail", "30", "--prefix"},
	} {
		out, err := c.Kubectl(ctx, nil, args...)
		t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 60))
	}
	for _, log := range c.Logs() {
		if strings.Contains(log, "kubelet") || strings.Contains(log, "containerd") {
			data, _ := os.ReadFile(log)
			t.Logf("%s (errors, last 15):\n%s", filepath.Base(log), lastLines(grepLines(string(data), " E1", "level=error"), 15))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// kubectl runs kubectl as the admin and fails t on error.
func (c *testCluster) kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := c.Kubectl(ctx, in, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// node returns the node named name.
func (c *testCluster) node(t *testing.T, name string) *kubecluster.Node {
	t.Helper()
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s", name)
	return nil
}

// onNode runs a short command in node n's namespaces and fails t on error.
func (c *testCluster) onNode(t *testing.T, n *kubecluster.Node, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.OnNode(ctx, n, argv...)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return out
}

// e2eProcs is how many e2e.test processes run the specs at once.
const e2eProcs = 4

// e2eSummary is the last lines of an e2e.test run.
var (
	ranRE     = regexp.MustCompile(`(?m)^Ran (\d+) of (\d+) Specs in ([0-9.]+) seconds$`)
	resultRE  = regexp.MustCompile(`(?m)^(SUCCESS|FAIL)! -- (\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped`)
	failingRE = regexp.MustCompile(`(?m)^\s*\[FAIL\] (.*)$`)
)

// runE2E runs the upstream e2e binary against the cluster (inside the
// control plane's namespace) with focus and skip, prints its summary and
// checks that exactly want specs ran and all passed.
func (c *testCluster) runE2E(t *testing.T, focus, skip string, want int) {
	t.Helper()
	reportDir := t.TempDir()
	logPath := filepath.Join(reportDir, "e2e.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The ginkgo CLI runs e2e.test in e2eProcs processes (Serial specs last,
	// alone): most of a spec's time is waiting for pods and probes.
	args := []string{filepath.Join(c.bin, "ginkgo"),
		fmt.Sprintf("--procs=%d", e2eProcs),
		"--no-color",
		"--timeout=40m",
		"--focus", focus,
	}
	if skip != "" {
		args = append(args, "--skip", skip)
	}
	args = append(args, filepath.Join(c.bin, "e2e.test"), "--",
		"--kubeconfig", c.Kubeconfig,
		"--provider", "skeleton",
		"--kubectl-path", filepath.Join(c.bin, "kubectl"),
		"--report-dir", reportDir,
	)
	argv := c.InControlPlane(args...)
	// Before go test's -timeout, which would kill the binary without
	// its Cleanups: leave two minutes to take the cluster down.
	deadline := time.Now().Add(45 * time.Minute)
	if d, ok := t.Deadline(); ok && d.Add(-2*time.Minute).Before(deadline) {
		deadline = d.Add(-2 * time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = reportDir
	t0 := time.Now()
	runErr := cmd.Run()
	data, _ := os.ReadFile(logPath)
	out := string(data)
	ran, result := ranRE.FindStringSubmatch(out), resultRE.FindStringSubmatch(out)
	if ran == nil || result == nil {
		t.Fatalf("e2e.test (%v, %.0f s) printed no summary:\n%s", runErr, time.Since(t0).Seconds(), lastLines(out, 80))
	}
	t.Logf("ginkgo --procs=%d --focus %q --skip %q e2e.test:\n%s\n%s", e2eProcs, focus, skip, ran[0], result[0])
	for _, m := range failingRE.FindAllStringSubmatch(out, -1) {
		t.Errorf("failed: %s", m[1])
	}
	nRan, _ := strconv.Atoi(ran[1])
	passed, _ := strconv.Atoi(result[2])
	if result[1] != "SUCCESS" || passed != nRan || runErr != nil {
		t.Errorf("e2e: %s (exit: %v); the failures' logs:\n%s", result[0], runErr, lastLines(grepLines(out, "[FAILED]", "Expected", "error", "Error"), 60))
	}
	if nRan != want {
		t.Errorf("e2e ran %d specs, want exactly %d (a spec was added to or dropped from the focus)", nRan, want)
	}
}

// The e2e specs of the tests: first the four Conformance specs of
// "Networking Granular Checks: Pods" (intra-pod and node-pod, http and
// udp), then every other [sig-network] [Conformance] spec of e2e.test
// v1.37.2: 43, all of them (DNS, Services, NodePort, session affinity,
// EndpointSlices, HostPort, proxy, ...). The images they run are built by
// make images; none needs SCTP or a registry.
const (
	granularFocus    = `\[sig-network\] Networking Granular Checks: Pods .*\[Conformance\]`
	granularSpecs    = 4
	conformanceFocus = `\[sig-network\].*\[Conformance\]`
	conformanceSkip  = `Networking Granular Checks: Pods`
	conformanceSpecs = 43
)

// TestClusterVXLAN runs the cluster with the vxlan backend.
func TestClusterVXLAN(t *testing.T) {
	c := upCluster(t, "vxlan")
	t.Run("ReadyAfterCNI", c.testReadyAfterCNI)
	t.Run("GranularChecksPods", func(t *testing.T) { c.runE2E(t, granularFocus, "", granularSpecs) })
	t.Run("SigNetworkConformance", func(t *testing.T) { c.runE2E(t, conformanceFocus, conformanceSkip, conformanceSpecs) })
	t.Run("Deployment20", c.testDeployment20)
	t.Run("HostPort", c.testHostPort)
	t.Run("RestartAndUpgrade", c.testRestartAndUpgrade)
}

// TestClusterDirect runs the cluster with the direct backend (routed on
// the underlay, no encapsulation).
func TestClusterDirect(t *testing.T) {
	c := upCluster(t, "direct")
	t.Run("ReadyAfterCNI", c.testReadyAfterCNI)
	t.Run("GranularChecksPods", func(t *testing.T) { c.runE2E(t, granularFocus, "", granularSpecs) })
	t.Run("SigNetworkConformance", func(t *testing.T) { c.runE2E(t, conformanceFocus, conformanceSkip, conformanceSpecs) })
	t.Run("Deployment20", c.testDeployment20)
	t.Run("HostPort", c.testHostPort)
}

// podInfo is what the tests read of a pod.
type podInfo struct {
	Name, Node, IP, Phase string
	HostNetwork           bool
}

// pods lists the pods of namespace ns ("" for all) matching selector.
func (c *testCluster) pods(t *testing.T, ns, selector string) []podInfo {
	t.Helper()
	args := []string{"get", "pods", "-o", "json"}
	if ns == "" {
		args = append(args, "-A")
	} else {
		args = append(args, "-n", ns)
	}
	if selector != "" {
		args = append(args, "-l", selector)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Spec struct {
				NodeName    string `json:"nodeName"`
				HostNetwork bool   `json:"hostNetwork"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
				PodIP string `json:"podIP"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(c.kubectl(t, "", args...)), &list); err != nil {
		t.Fatal(err)
	}
	var out []podInfo
	for _, it := range list.Items {
		out = append(out, podInfo{Name: it.Metadata.Name, Node: it.Spec.NodeName, IP: it.Status.PodIP,
			Phase: it.Status.Phase, HostNetwork: it.Spec.HostNetwork})
	}
	return out
}

// waitFor polls f every 500 ms until it returns true, failing t after
// timeout with f's last status.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, status := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, timeout, status)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// nodeAttachments returns, for node n, the IPs of the pods attached to its
// taprouterd (GET /v1/ports, kind pod) and the IPs host-local holds leases
// for (/var/lib/cni/networks/taprouter), both sorted.
func (c *testCluster) nodeAttachments(t *testing.T, n *kubecluster.Node) (ports, leases []string) {
	t.Helper()
	var list []struct {
		Kind string `json:"kind"`
		IP   string `json:"ip"`
	}
	out := c.onNode(t, n, "curl", "-fsS", "--max-time", "10", "--unix-socket", "/run/taprouter/taprouterd.sock", "http://taprouterd/v1/ports")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%s: /v1/ports: %v: %s", n.Name, err, out)
	}
	for _, p := range list {
		if p.Kind == "pod" {
			ports = append(ports, p.IP)
		}
	}
	for _, f := range strings.Fields(c.onNode(t, n, "ls", "/var/lib/cni/networks/taprouter")) {
		if f != "lock" && !strings.HasPrefix(f, "last_reserved_ip") {
			leases = append(leases, f)
		}
	}
	slices.Sort(ports)
	slices.Sort(leases)
	return ports, leases
}

// podIPsOn returns the sorted IPs of the pods (not host-network) on node.
func podIPsOn(pods []podInfo, node string) []string {
	var ips []string
	for _, p := range pods {
		if p.Node == node && !p.HostNetwork && p.IP != "" {
			ips = append(ips, p.IP)
		}
	}
	slices.Sort(ips)
	return ips
}

// scanLines splits s into trimmed non-empty lines.
func scanLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
