package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// readyCmd runs `taprouterd ready` with args and returns its output and
// exit status.
func readyCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(taprouterd, append([]string{"ready"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	}
	t.Fatalf("taprouterd ready: %v", err)
	return "", 0
}

// The DaemonSet's probe against a real daemon: `taprouterd ready` exits 0
// while it forwards; with the host port set down, 1 naming it (--live still
// 0); up again, 0; with the daemon gone, 1 for both.
func TestReadyProbe(t *testing.T) {
	requireDaemon(t)
	_, node, d := oneNode(t)
	want := func(what, wantOut string, wantCode int, args ...string) {
		t.Helper()
		out, code := readyCmd(t, append([]string{"--socket", d.Socket}, args...)...)
		match := out == wantOut
		if prefix, ok := strings.CutSuffix(wantOut, "…"); ok {
			match = strings.HasPrefix(out, prefix)
		}
		if !match || code != wantCode {
			t.Errorf("%s: taprouterd ready %q: %q exit %d; want %q exit %d", what, args, out, code, wantOut, wantCode)
		}
	}
	want("running", "ready\n", 0)
	want("running", "ready\n", 0, "--live")
	mustPing(t, node.Pods[0].Netns, node.Pods[1].Addr(), 63)

	if _, err := node.Netns.IP("link", "set", "taprouter0", "down"); err != nil {
		t.Fatal(err)
	}
	want("host port down", "not ready: host port taprouter0 is not up (ip link set taprouter0 up)\n", 1)
	want("host port down", "alive, not ready: host port taprouter0 is not up (ip link set taprouter0 up)\n", 0, "--live")
	if _, err := node.Netns.IP("link", "set", "taprouter0", "up"); err != nil {
		t.Fatal(err)
	}
	want("host port up again", "ready\n", 0)
	mustPing(t, node.Pods[0].Netns, node.Pods[1].Addr(), 63)

	if err := d.Terminate(); err != nil {
		t.Fatal(err)
	}
	want("daemon stopped", "not answering: taprouterd is not reachable at "+d.Socket+": …", 1)
	want("daemon stopped", "not answering: taprouterd is not reachable at "+d.Socket+": …", 1, "--live")
}

// daemonSetCapabilities is what deploy/05-daemonset.yaml gives taprouterd
// (in setpriv's spelling).
var daemonSetCapabilities = []string{"net_admin", "net_raw", "sys_admin"}

// withCapabilities returns a wrapper that runs taprouterd as root with only
// caps in its bounding set, so that it holds no other capability, as in
// the DaemonSet's container.
func withCapabilities(t *testing.T, caps []string) string {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop capabilities")
	}
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + c
	}
	path := filepath.Join(t.TempDir(), "taprouterd-caps")
	script := fmt.Sprintf("#!/bin/sh\nexec setpriv --bounding-set=%s --inh-caps=-all -- %s \"$@\"\n", bounding, taprouterd)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// The DaemonSet's capabilities are enough: with only NET_ADMIN, NET_RAW
// and SYS_ADMIN, taprouterd sets up two nodes (host port, tunnel, the
// pods' TAPs moved into and configured in their namespaces), pods reach
// each other across nodes and the node reaches its pods, for vxlan and
// direct; and each one is needed: without it, taprouterd cannot start.
func TestDaemonSetCapabilities(t *testing.T) {
	requireDaemon(t)
	for _, backend := range []string{"vxlan", "direct"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, testbed.Seed()[:2])
			c.Bed.Taprouterd = withCapabilities(t, daemonSetCapabilities)
			daemons := startTaprouter(t, c, backend)
			// The daemon holds exactly the three: CAP_NET_ADMIN (12),
			// CAP_NET_RAW (13) and CAP_SYS_ADMIN (21).
			for name, d := range daemons {
				status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
				if err != nil {
					t.Fatal(err)
				}
				var eff, bnd string
				for _, line := range strings.Split(string(status), "\n") {
					if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
						eff = v
					}
					if v, ok := strings.CutPrefix(line, "CapBnd:\t"); ok {
						bnd = v
					}
				}
				if want := "0000000000203000"; eff != want || bnd != want {
					t.Errorf("taprouterd on %s: CapEff %s, CapBnd %s; want %s", name, eff, bnd, want)
				}
			}
			pa, pc := c.Node("node1").Pods[0], c.Node("node2").Pods[0]
			mustPing(t, pa.Netns, pc.Addr(), 62)
			mustPing(t, pc.Netns, pa.Addr(), 62)
			mustPing(t, c.Node("node1").Netns, pa.Addr(), 63)
		})
	}
	for drop, wantErr := range map[string]string{
		"net_admin": "taprouterd: config: hostPort.name: creating taprouter0: create host port: create tun taprouter0: TUNSETIFF: operation not permitted",
		"net_raw":   "taprouterd: config: backend direct: afpacket open eth0: socket: operation not permitted",
		"sys_admin": "taprouterd: config: ports[0] (pa): adopt pod eth0 10.244.0.4 in %s: netlink in pod netns: enter the pod's netns: operation not permitted",
	} {
		t.Run("without_"+drop, func(t *testing.T) {
			var caps []string
			for _, c := range daemonSetCapabilities {
				if c != drop {
					caps = append(caps, c)
				}
			}
			backend := "vxlan"
			if drop == "net_raw" {
				backend = "direct"
			}
			c := newCluster(t, testbed.Seed()[:1])
			c.Bed.Taprouterd = withCapabilities(t, caps)
			n := c.Node("node1")
			res, err := c.Bed.RunDaemonToExit(n.Netns, c.DaemonConfig(n, backend).YAML(), 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(wantErr, "%s") {
				wantErr = fmt.Sprintf(wantErr, n.Pods[0].Path())
			}
			lines := res.OutputLines()
			if res.ExitCode != 2 || len(lines) == 0 || lines[len(lines)-1] != wantErr {
				t.Errorf("%s without %s: exit %d, output:\n%s\nwant exit 2 and last line %q", backend, drop, res.ExitCode, res.Output, wantErr)
			}
		})
	}
}

// The DaemonSet's conflist, as shipped (only the socket set to the test's
// daemon), on two nodes: its IPAM subnet "usePodCidr" becomes each node's
// own pod CIDR, which the plugin asks taprouterd for, so one file serves
// every node. Pods on both nodes get addresses in their node's range and
// reach each other; DEL releases both leases.
func TestCNIUsePodCIDR(t *testing.T) {
	path := requireCNI(t)
	b, err := os.ReadFile("../deploy/10-taprouter.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"subnet": "usePodCidr"`)) {
		t.Fatalf("deploy/10-taprouter.conflist has no usePodCidr subnet:\n%s", b)
	}
	specs := testbed.Seed()[:2]
	for i := range specs {
		specs[i].Pods = nil
	}
	c := newCluster(t, specs)
	daemons := startTaprouter(t, c, "vxlan")
	var pods []*testbed.Netns
	var cnis []*testbed.CNI
	for i, n := range c.Nodes {
		conf := bytes.Replace(b, []byte(`"/run/taprouter/taprouterd.sock"`), []byte(`"`+daemons[n.Name].Socket+`"`), 1)
		cni, err := c.Bed.NewCNI(n.Node, path, conf)
		if err != nil {
			t.Fatal(err)
		}
		pod, err := c.Bed.AddNetns(fmt.Sprintf("upc%d", i))
		if err != nil {
			t.Fatal(err)
		}
		res, err := cni.Add(pod, "")
		if err != nil {
			t.Fatal(err)
		}
		// host-local's first address of the range (.1 is its default
		// gateway, which it never hands out).
		want := fmt.Sprintf("10.244.%d.2/32", i)
		if len(res.IPs) != 1 || res.IPs[0].Address.String() != want {
			t.Fatalf("%s: ADD gave %v, want %s (in %s)", n.Name, res.IPs, want, n.Spec.PodCIDR)
		}
		leases, err := cni.Leases()
		if err != nil || len(leases) != 1 || leases[0] != strings.TrimSuffix(want, "/32") {
			t.Fatalf("%s: leases %q %v, want [%s]", n.Name, leases, err, strings.TrimSuffix(want, "/32"))
		}
		pods, cnis = append(pods, pod), append(cnis, cni)
	}
	mustPing(t, pods[0], addr("10.244.1.2"), 62)
	mustPing(t, pods[1], addr("10.244.0.2"), 62)
	for i, cni := range cnis {
		if err := cni.Del(pods[i], ""); err != nil {
			t.Fatal(err)
		}
		if leases, err := cni.Leases(); err != nil || len(leases) != 0 {
			t.Errorf("node%d after DEL: leases %q %v, want none", i+1, leases, err)
		}
	}
}
