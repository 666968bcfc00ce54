package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/internal/testbed"
)

// nsID identifies the network namespace a /proc ns/net file or a bind
// mount refers to.
func nsID(t *testing.T, path string) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// threadsOutside lists the daemon's threads that are not in the node's
// namespace.
func threadsOutside(t *testing.T, d *testbed.Daemon) []string {
	t.Helper()
	want := nsID(t, d.Node.Path())
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/net", d.Pid()))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("the daemon's threads: %v %v", tasks, err)
	}
	var outside []string
	for _, task := range tasks {
		var st unix.Stat_t
		if err := unix.Stat(task, &st); err != nil {
			continue // the thread ended meanwhile
		}
		if got := [2]uint64{st.Dev, st.Ino}; got != want {
			target, _ := os.Readlink(task)
			outside = append(outside, task+" → "+target+threadState(filepath.Dir(filepath.Dir(task))))
		}
	}
	return outside
}

// threadState says what the thread at /proc/PID/task/TID is doing (its
// state, the kernel function it waits in and its stack, where the kernel
// shows them), so that a failure says more than that it was elsewhere.
func threadState(dir string) string {
	var b strings.Builder
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "State:") {
				b.WriteString("; " + line)
			}
		}
	}
	if wchan, err := os.ReadFile(filepath.Join(dir, "wchan")); err == nil {
		b.WriteString("; wchan " + string(wchan))
	}
	if stack, err := os.ReadFile(filepath.Join(dir, "stack")); err == nil && len(stack) > 0 {
		b.WriteString("; stack:\n" + strings.TrimRight(string(stack), "\n"))
	}
	return b.String()
}

// TestDaemonThreadsStayInNodeNetns restarts taprouterd so that it adopts
// its pods' TAPs (from the config file and through the API) and then checks
// every thread of the daemon: each is in the node's namespace. Before, the
// thread that had entered the first pod to re-open its TAP stayed there
// (the main thread, parked by the runtime), so /proc/PID/ns/net showed the
// pod and the pod's namespace was pinned.
func TestDaemonThreadsStayInNodeNetns(t *testing.T) {
	requireDaemon(t)
	c, node1, d := oneNode(t)
	ctx := context.Background()
	var extra []*testbed.Netns
	for i := range 4 {
		ns, err := c.Bed.AddNetns(fmt.Sprintf("api%d", i))
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, ns)
		req := api.PortRequest{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0", NetNS: ns.Path(), IP: fmt.Sprintf("10.244.0.%d", 20+i)}
		if _, err := api.NewClient(d.Socket).AddPort(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if out := threadsOutside(t, d); len(out) != 0 {
		t.Errorf("after attaching: threads outside the node's namespace:\n%s", strings.Join(out, "\n"))
	}
	for round := range 3 {
		if err := d.Terminate(); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		restarted, err := c.Bed.StartDaemon(node1.Node, d.Config)
		if err != nil {
			t.Fatal(err)
		}
		d = restarted
		t.Cleanup(func() { restarted.Stop(5 * time.Second) })
		if n := strings.Count(d.Log(), "adopted the pod's existing interface"); n != 6 {
			t.Fatalf("restart %d adopted %d interfaces, want 6 (pa, pb and 4 through the API):\n%s", round, n, d.Log())
		}
		if out := threadsOutside(t, d); len(out) != 0 {
			t.Fatalf("restart %d: threads outside the node's namespace:\n%s", round, strings.Join(out, "\n"))
		}
		// And a CHECK, which works inside the pods too.
		if res, err := api.NewClient(d.Socket).CheckPort(ctx, api.Attachment{ContainerID: "c0", IfName: "eth0"}); err != nil || !res.OK {
			t.Fatalf("check: %+v %v", res, err)
		}
		if out := threadsOutside(t, d); len(out) != 0 {
			t.Fatalf("restart %d, after CHECK: threads outside the node's namespace:\n%s", round, strings.Join(out, "\n"))
		}
	}
	mustPing(t, extra[0], addr("10.244.0.4"), 63)
}

// rawPost sends body as POST /v1/ports and returns the status and the
// decoded error, with its own deadline.
func rawPost(t *testing.T, socket, body string, timeout time.Duration) (int, api.Error, error) {
	t.Helper()
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := client.Post("http://taprouterd/v1/ports", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, api.Error{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	json.Unmarshal(b, &e)
	return resp.StatusCode, e, nil
}

// TestAPIRefusesBadPods: the API refuses, with a 400 that names the field
// and the reason, a pod "namespace" that is the node's own (by its bind
// mount, or as the daemon's /proc/PID/ns/net), a regular file, a directory
// or a FIFO (at once: a FIFO used to block the daemon for good, holding its
// lock, so that even SIGTERM hung); an ifName the kernel would take as a
// pattern; and a body with data after the JSON value. Nothing lands in the
// node's or the pod's namespace, and SIGTERM still stops the daemon.
func TestAPIRefusesBadPods(t *testing.T) {
	requireDaemon(t)
	c, node1, d := oneNode(t)
	pod, err := c.Bed.AddNetns("victim")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	nodeLinks, _ := node1.IP("-o", "link")
	nodeRoutes, _ := node1.IP("route")

	// Each case its own container and address, so that on a daemon that
	// accepts one, the next is not refused for a conflict instead.
	req := func(i int, netns, ifName, ip string) string {
		if ip == "" {
			ip = fmt.Sprintf("10.244.0.%d", 30+i)
		}
		b, _ := json.Marshal(api.PortRequest{ContainerID: fmt.Sprintf("bad%d", i), IfName: ifName, NetNS: netns, IP: ip})
		return string(b)
	}
	for i, tc := range []struct {
		name, netns, ifName, ip, trailing, field, reason string
	}{
		{"node-bind-mount", node1.Path(), "net1", "", "", "netns", "the node's own network namespace"},
		{"daemon-proc", fmt.Sprintf("/proc/%d/ns/net", d.Pid()), "net1", "", "", "netns", "the node's own network namespace"},
		{"daemon-self", "/proc/self/ns/net", "net1", "", "", "netns", "the node's own network namespace"},
		{"regular-file", regular, "eth0", "", "", "netns", "is a regular file: not a network namespace"},
		{"directory", dir, "eth0", "", "", "netns", "is a directory: not a network namespace"},
		{"fifo", fifo, "eth0", "", "", "netns", "is a FIFO: not a network namespace"},
		{"missing", filepath.Join(dir, "none"), "eth0", "", "", "netns", "no such network namespace"},
		{"ifname-pattern", pod.Path(), "eth%d", "", "", "ifName", `may not contain '%'`},
		{"ifname-colon", pod.Path(), "eth0:1", "", "", "ifName", `may not contain ':'`},
		{"ifname-dotdot", pod.Path(), "..", "", "", "ifName", "not a valid interface name"},
		{"broadcast-ip", pod.Path(), "eth0", "10.244.0.255", "", "ip", "10.244.0.255 is the broadcast address of podCIDR 10.244.0.0/24"},
		{"trailing-data", pod.Path(), "eth0", "", `{"containerID": "other"}`, "", "data after the JSON value"},
	} {
		body := req(i, tc.netns, tc.ifName, tc.ip) + tc.trailing
		start := time.Now()
		code, e, err := rawPost(t, d.Socket, body, 3*time.Second)
		took := time.Since(start)
		if err != nil {
			t.Errorf("%s: %v (after %v)", tc.name, err, took.Round(time.Millisecond))
			continue
		}
		if code != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Message, tc.reason) {
			t.Errorf("%s: %d %+v, want 400 on field %q saying %q", tc.name, code, e, tc.field, tc.reason)
		}
		if took > 2*time.Second { // generous: the check itself is a few syscalls
			t.Errorf("%s: answered after %v", tc.name, took)
		}
	}
	if out, _ := node1.IP("-o", "link"); out != nodeLinks {
		t.Errorf("the node's links changed:\n%s\nwere:\n%s", out, nodeLinks)
	}
	if out, _ := node1.IP("route"); out != nodeRoutes {
		t.Errorf("the node's routes changed:\n%s\nwere:\n%s", out, nodeRoutes)
	}
	if out, _ := pod.IP("-o", "link"); strings.Count(out, "\n") != 1 {
		t.Errorf("the pod has more than lo after the refused requests:\n%s", out)
	}
	if ports, err := d.Ports(); err != nil || len(ports) != 3 {
		t.Errorf("router ports %+v %v, want the host port, pa and pb", ports, err)
	}
	// The daemon still works, and stops on SIGTERM.
	if code, e, err := rawPost(t, d.Socket, req(99, pod.Path(), "eth0", ""), 5*time.Second); err != nil || code != http.StatusCreated {
		t.Fatalf("a good request after the bad ones: %d %+v %v", code, e, err)
	}
	start := time.Now()
	if err := d.Terminate(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("SIGTERM took %v", took)
	}
}

// TestConfigPortInNodeNetns: a config file whose port names the node's own
// namespace exits 2 with one line naming the field.
func TestConfigPortInNodeNetns(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed()[:1])
	node1 := c.Node("node1")
	cfg := c.DaemonConfig(node1, "vxlan")
	cfg.Ports[0].Netns = node1.Path()
	res, err := c.Bed.RunDaemonToExit(node1.Netns, cfg.YAML(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lines := res.OutputLines()
	const prefix = "taprouterd: config: ports[0].netns: "
	if res.Started || res.ExitCode != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) || !strings.Contains(lines[0], "the node's own network namespace") {
		t.Fatalf("exit %d (started %v), output:\n%s\nwant exit 2 and one line starting %q about the node's namespace", res.ExitCode, res.Started, res.Output, prefix)
	}
	// The links by name: ip's output can also hold its complaint about a
	// peer namespace that another test is deleting at that moment.
	out, _ := node1.IP("-o", "link")
	var links []string
	for _, m := range linkNameRE.FindAllStringSubmatch(out, -1) {
		links = append(links, m[1])
	}
	if !slices.Equal(links, []string{"lo", "eth0"}) {
		t.Errorf("the node's links after the refused config are %q, want lo and eth0:\n%s", links, out)
	}
}

// linkNameRE is a link's name in `ip -o link` output.
var linkNameRE = regexp.MustCompile(`(?m)^\d+: ([^:@\s]+)[:@]`)

// TestStateFileBadEntries: the state file has, next to a good entry, one
// with the gateway's address, one whose ip is not an address and one with
// an ifName pattern. The daemon starts (before, the unreadable entry made
// it exit 2, taking every pod of the node down), restores the good entry,
// drops the others with a log line each, keeps the gateway's route, and
// writes the state file without them.
func TestStateFileBadEntries(t *testing.T) {
	requireDaemon(t)
	c, node1, d := oneNode(t)
	live, err := c.Bed.AddNetns("live")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := c.Bed.AddNetns("gw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pLive, err := api.NewClient(d.Socket).AddPort(ctx, api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: live.Path(), IP: "10.244.0.20"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Terminate(); err != nil {
		t.Fatal(err)
	}
	editState(t, c.Bed, node1.Node, 1, func(ports []json.RawMessage) []json.RawMessage {
		// A field a newer taprouterd wrote: ignored, the pod kept (a rollback
		// keeps the node's pods).
		ports[0] = append(json.RawMessage(`{"fromANewerVersion": {"x": 1}, `), bytes.TrimPrefix(bytes.TrimSpace(ports[0]), []byte("{"))...)
		return append(ports,
			json.RawMessage(fmt.Sprintf(`{"name": "gw/eth0", "containerID": "gw", "ifName": "eth0", "netns": %q, "ip": "10.244.0.1"}`, gw.Path())),
			json.RawMessage(fmt.Sprintf(`{"name": "banana/eth0", "containerID": "banana", "ifName": "eth0", "netns": %q, "ip": "banana"}`, gw.Path())),
			json.RawMessage(fmt.Sprintf(`{"name": "pat/eth%%d", "containerID": "pat", "ifName": "eth%%d", "netns": %q, "ip": "10.244.0.40"}`, gw.Path())),
		)
	})

	restarted, err := c.Bed.StartDaemon(node1.Node, d.Config)
	if err != nil {
		t.Fatalf("restart with bad state entries: %v", err)
	}
	t.Cleanup(func() { restarted.Stop(5 * time.Second) })
	client := api.NewClient(restarted.Socket)
	if got, err := client.GetPort(ctx, api.Attachment{ContainerID: "live", IfName: "eth0"}); err != nil || got.MAC != pLive.MAC {
		t.Fatalf("live after restart: %+v %v, want %+v", got, err, pLive)
	}
	for _, a := range []api.Attachment{{ContainerID: "gw", IfName: "eth0"}, {ContainerID: "banana", IfName: "eth0"}, {ContainerID: "pat", IfName: "eth%d"}} {
		if _, err := client.GetPort(ctx, a); api.ErrorCode(err) != api.CodeNotFound {
			t.Errorf("%+v after restart: %v, want not found", a, err)
		}
	}
	routes, err := restarted.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Prefix == "10.244.0.1/32" && r.Nexthop != "self (gateway)" {
			t.Errorf("the gateway's route: %+v", r)
		}
	}
	if n := strings.Count(restarted.Log(), "state entry dropped"); n != 3 {
		t.Errorf("%d entries dropped in the log, want 3:\n%s", n, restarted.Log())
	}
	if out, _ := gw.IP("-o", "link"); strings.Count(out, "\n") != 1 {
		t.Errorf("the gw namespace got an interface:\n%s", out)
	}
	b, _ := os.ReadFile(filepath.Join(c.Bed.StateDir(node1.Node), "ports.json"))
	if s := string(b); !strings.Contains(s, `"live"`) || strings.Contains(s, `"gw"`) || strings.Contains(s, "banana") || strings.Contains(s, `"pat"`) {
		t.Errorf("state file after restart:\n%s", b)
	}
	mustPing(t, live, addr("10.244.0.4"), 63)
}

// TestAPIIdleConnections opens 2,000 connections to the API and sends
// nothing on them. The daemon keeps at most its limit open (its fd count
// stays bounded; before, each held an fd until the client gave up), closes
// the longest idle to make room, and still answers a new client at once.
func TestAPIIdleConnections(t *testing.T) {
	requireDaemon(t)
	_, _, d := oneNode(t)
	before, err := d.OpenFDs()
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("unix", d.Socket)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// The daemon accepts (and, past the limit, closes) as fast as it can;
	// give it a moment to drain its backlog.
	var fds int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if fds, err = d.OpenFDs(); err != nil {
			t.Fatal(err)
		}
		if fds >= before+api.DefaultLimits().MaxConns-1 {
			break
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := api.NewClient(d.Socket).Status(ctx); err != nil {
		t.Fatalf("status with %d idle connections open: %v", n, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("status took %v with %d idle connections open", took, n)
	}
	if fds, err = d.OpenFDs(); err != nil {
		t.Fatal(err)
	}
	// One fd per open connection, the limit's worth; a few more for the
	// status call and the listener's pending accept.
	if max := before + api.DefaultLimits().MaxConns + 4; fds > max {
		t.Errorf("the daemon has %d fds open with %d idle connections (%d before), want at most %d", fds, n, before, max)
	}
	t.Logf("fds: %d before, %d with %d idle connections (limit %d)", before, fds, n, api.DefaultLimits().MaxConns)
	// The oldest were closed by the daemon.
	conns[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest idle connection: %v, want EOF", err)
	}
}
