package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/router"
)

// testDaemon is a Daemon with a config and no router: enough for what
// validates, loads and answers before touching a pod (it saves nothing:
// its StateDir does not exist).
func testDaemon(t testing.TB, openNS func(string) (*os.File, error)) *Daemon {
	t.Helper()
	cfg := &config.Config{Node: "node1", PodCIDR: netip.MustParsePrefix("10.244.0.0/24"), Gateway: netip.MustParseAddr("10.244.0.1"), Backend: config.BackendVXLAN}
	return &Daemon{cfg: cfg, opts: Options{StateDir: "/nonexistent/taprouter-test-state", NetNSTimeout: 200 * time.Millisecond}, log: zap.NewNop(),
		ports: map[string]*port{}, openNS: openNS}
}

// hungOpener is an openNS that blocks until release is closed, then fails
// with fail or, if nil, opens /dev/null (so that a test sees whether the
// file is closed). Each call is announced on entered and recorded.
type hungOpener struct {
	entered chan string
	release chan struct{}
	fail    error
	mu      sync.Mutex
	calls   map[string]int
	files   []*os.File
}

func newHungOpener(t *testing.T) *hungOpener {
	h := &hungOpener{entered: make(chan string, 64), release: make(chan struct{}), calls: map[string]int{}}
	t.Cleanup(h.unblock)
	return h
}

func (h *hungOpener) open(path string) (*os.File, error) {
	h.mu.Lock()
	h.calls[path]++
	h.mu.Unlock()
	h.entered <- path
	<-h.release
	if h.fail != nil {
		return nil, h.fail
	}
	f, err := os.Open(os.DevNull)
	h.mu.Lock()
	h.files = append(h.files, f)
	h.mu.Unlock()
	return f, err
}

func (h *hungOpener) unblock() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// waitOpens waits for every open in flight to end.
func waitOpens(d *Daemon) {
	d.nsOpens.mu.Lock()
	var done []chan struct{}
	for _, op := range d.nsOpens.byPath {
		done = append(done, op.done)
	}
	d.nsOpens.mu.Unlock()
	for _, c := range done {
		<-c
	}
}

// guard fails the test if c does not deliver within a generous time: a
// failure detector for a hang, not a synchronisation.
func guard[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: hangs", what)
		panic("unreachable")
	}
}

// A netns path that never opens holds up its own request for the timeout,
// and nothing else: while the open is blocked, the daemon's lock is free
// (Status answers) and Close returns; the request's answer is then a 503
// that names the path.
func TestAddPortNetNSTimeout(t *testing.T) {
	h := newHungOpener(t)
	d := testDaemon(t, h.open)
	d.opts.NetNSTimeout = time.Minute // the open stays blocked throughout
	done := make(chan error, 1)
	go func() {
		_, _, err := d.AddPort(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/hung/ns", IP: "10.244.0.7"})
		done <- err
	}()
	guard(t, h.entered, "AddPort opening the namespace")
	status := make(chan api.Status, 1)
	go func() { status <- d.Status() }()
	guard(t, status, "Status while an AddPort's netns open is blocked")
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	guard(t, closed, "Close while an AddPort's netns open is blocked")
	select {
	case err := <-done:
		t.Fatalf("AddPort returned %v before its netns opened or timed out", err)
	default:
	}

	// With a short timeout, the answer is a 503 naming the path.
	d2 := testDaemon(t, newHungOpener(t).open)
	d2.opts.NetNSTimeout = 50 * time.Millisecond
	_, _, err := d2.AddPort(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/hung/ns", IP: "10.244.0.7"})
	if api.ErrorCode(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "/hung/ns did not open in time") {
		t.Errorf("AddPort: %v, want unavailable naming /hung/ns", err)
	}
}

// A hung path is opened once, however often it is asked for; at most
// maxNetNSOpens opens are in flight, and one more is refused at once with
// a 503 without a new open. Every file an abandoned open ends with is
// closed.
func TestNetNSOpensBounded(t *testing.T) {
	h := newHungOpener(t)
	d := testDaemon(t, h.open)
	d.opts.NetNSTimeout = 20 * time.Millisecond
	for range 5 { // CNI ADD retries of one pod
		if _, err := d.openNetNS("/hung/a"); !errors.Is(err, errNetNSTimeout) {
			t.Fatalf("open /hung/a: %v, want a timeout", err)
		}
	}
	if _, _, err := d.AddPort(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/hung/a", IP: "10.244.0.7"}); api.ErrorCode(err) != api.CodeUnavailable {
		t.Errorf("AddPort with /hung/a: %v, want unavailable", err)
	}
	for i := 1; i < maxNetNSOpens; i++ {
		if _, err := d.openNetNS(fmt.Sprintf("/hung/%d", i)); !errors.Is(err, errNetNSTimeout) {
			t.Fatalf("open /hung/%d: %v, want a timeout", i, err)
		}
	}
	_, _, err := d.AddPort(api.PortRequest{ContainerID: "c2", IfName: "eth0", NetNS: "/hung/one-more", IP: "10.244.0.8"})
	if api.ErrorCode(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "16 namespace opens are in flight") {
		t.Errorf("AddPort beyond the limit: %v, want unavailable: too many opens in flight", err)
	}
	h.mu.Lock()
	calls, total := h.calls["/hung/a"], 0
	for _, n := range h.calls {
		total += n
	}
	h.mu.Unlock()
	if calls != 1 || total != maxNetNSOpens {
		t.Errorf("openNS called %d times for /hung/a and %d in all, want 1 and %d", calls, total, maxNetNSOpens)
	}
	h.unblock()
	waitOpens(d)
	h.mu.Lock()
	for _, f := range h.files {
		if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
			t.Errorf("the file of an abandoned open is not closed (stat: %v)", err)
		}
	}
	h.mu.Unlock()
	if f, err := d.openNetNS("/hung/a"); err != nil {
		t.Errorf("open /hung/a once it opens: %v", err)
	} else {
		f.Close()
	}
}

// Restoring opens every entry's namespace at once, under one deadline:
// every hung open is under way before any has timed out, and n hung
// entries delay the start by one timeout, not n. They stay on record.
func TestRestoreOpensConcurrently(t *testing.T) {
	// testDaemon has no router: the opens fail when they end (the pods are
	// gone), so that nothing attaches.
	h := newHungOpener(t)
	h.fail = os.ErrNotExist
	d := testDaemon(t, h.open)
	d.opts.StateDir = t.TempDir()
	d.opts.NetNSTimeout = time.Minute
	const n = 4
	var entries []string
	for i := range n {
		entries = append(entries, fmt.Sprintf(`{"name": "c%d/eth0", "containerID": "c%d", "ifName": "eth0", "netns": "/hung/%d", "ip": "10.244.0.%d"}`, i, i, i, 10+i))
	}
	if err := os.WriteFile(d.statePath(), stateDoc(entries...), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := make(chan error, 1)
	go func() { restored <- d.restore() }()
	seen := map[string]bool{}
	for range n { // before, the second open began only after the first timed out
		seen[guard(t, h.entered, "restore opening the namespaces")] = true
	}
	if len(seen) != n {
		t.Errorf("opened %v, want %d paths", seen, n)
	}
	h.unblock()
	if err := guard(t, restored, "restore"); err != nil {
		t.Fatal(err)
	}
	if len(d.ports) != 0 {
		t.Errorf("%d ports on record, want none (their namespaces are gone)", len(d.ports))
	}

	// One deadline: 24 hung entries (3 rounds of 8 at once) take one
	// timeout, not 3 (nor 24).
	h2 := newHungOpener(t)
	h2.fail = os.ErrNotExist
	d2 := testDaemon(t, h2.open)
	d2.opts.StateDir = t.TempDir()
	d2.opts.NetNSTimeout = 500 * time.Millisecond
	entries = nil
	for i := range 24 {
		entries = append(entries, fmt.Sprintf(`{"name": "c%d/eth0", "containerID": "c%d", "ifName": "eth0", "netns": "/hung/%d", "ip": "10.244.0.%d"}`, i, i, i, 10+i))
	}
	if err := os.WriteFile(d2.statePath(), stateDoc(entries...), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := d2.restore(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 1400*time.Millisecond {
		t.Errorf("restoring 24 hung entries took %v, want one 500ms timeout", took)
	}
	if len(d2.ports) != 24 {
		t.Errorf("%d ports on record, want the 24 hung ones", len(d2.ports))
	}
	for _, p := range d2.ports {
		if p.attached {
			t.Errorf("%s attached", p.Name)
		}
	}
}

// Each refusal of the netns is a 400 that says why, not a 500.
func TestAddPortBadNetNS(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "stat", Path: "/x", Err: os.ErrNotExist}, "no such network namespace"},
		{fmt.Errorf("/x is a FIFO: %w", podnet.ErrNotNetNS), "FIFO"},
		{fmt.Errorf("/x is /proc/self/ns/net: %w", podnet.ErrNodeNetNS), "node's own"},
	} {
		d := testDaemon(t, func(string) (*os.File, error) { return nil, tc.err })
		_, _, err := d.AddPort(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/x", IP: "10.244.0.7"})
		var e *api.Error
		if !errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != "netns" || !strings.Contains(e.Message, tc.want) {
			t.Errorf("openNS error %v: AddPort %v, want invalid netns saying %q", tc.err, err, tc.want)
		}
	}
}

// ifName is checked as the kernel will name the interface.
func TestValidateIfName(t *testing.T) {
	d := testDaemon(t, nil)
	for _, name := range []string{"eth%d", "a:b", "a b", ".", "..", "a/b", "0123456789abcdef", ""} {
		_, err := d.validate(api.PortRequest{ContainerID: "c1", IfName: name, NetNS: "/x", IP: "10.244.0.7"})
		if e := (*api.Error)(nil); !errors.As(err, &e) || e.Field != "ifName" {
			t.Errorf("ifName %q: %v, want an invalid ifName", name, err)
		}
	}
}

// The pod subnet's directed broadcast is no pod's address (the router
// delivers nothing to it): a 400 naming the ip.
func TestValidateBroadcast(t *testing.T) {
	d := testDaemon(t, nil)
	_, err := d.validate(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/x", IP: "10.244.0.255"})
	var e *api.Error
	if !errors.As(err, &e) || e.Code != api.CodeInvalid || e.Field != "ip" || !strings.Contains(e.Message, "10.244.0.255 is the broadcast address of podCIDR 10.244.0.0/24") {
		t.Errorf("ip 10.244.0.255: %v, want an invalid ip naming the broadcast address", err)
	}
	if _, err := d.validate(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/x", IP: "10.244.0.254"}); err != nil {
		t.Errorf("ip 10.244.0.254: %v", err)
	}
}

func entry(containerID, ip string) string {
	return fmt.Sprintf(`{"name": "%s/eth0", "containerID": %q, "ifName": "eth0", "netns": "/var/run/netns/%s", "ip": %q}`, containerID, containerID, containerID, ip)
}

func stateDoc(entries ...string) []byte {
	return []byte(`{"version": 1, "node": "node1", "ports": [` + strings.Join(entries, ",") + `]}`)
}

// Each state entry is checked as an API request would be; a bad one is
// dropped alone and the others are restored.
func TestLoadState(t *testing.T) {
	d := testDaemon(t, nil)
	d.ports["pa"] = &port{Name: "pa", IfName: "eth0", NetNS: "/var/run/netns/pa", IP: netip.MustParseAddr("10.244.0.4")} // from the config file
	got, err := d.loadState(stateDoc(
		entry("good1", "10.244.0.10"),
		entry("gw", "10.244.0.1"),       // the gateway
		entry("net", "10.244.0.0"),      // the network address
		entry("bcast", "10.244.0.255"),  // the broadcast address
		entry("out", "10.244.1.5"),      // outside podCIDR
		entry("pa-thief", "10.244.0.4"), // the config port's address
		entry("good1", "10.244.0.11"),   // a second good1
		entry("dup-ip", "10.244.0.10"),  // good1's address
		// good1's interface (netns and ifName), and the config port's
		`{"name": "twin/eth0", "containerID": "twin", "ifName": "eth0", "netns": "/var/run/netns/good1", "ip": "10.244.0.40"}`,
		`{"name": "twin/eth0", "containerID": "twin", "ifName": "eth0", "netns": "/var/run/netns/pa", "ip": "10.244.0.41"}`,
		// good1's netns, another interface: kept
		`{"name": "good1/eth1", "containerID": "good1", "ifName": "eth1", "netns": "/var/run/netns/good1", "ip": "10.244.0.42"}`,
		`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "banana"}`,
		`{"name": "c/eth%d", "containerID": "c", "ifName": "eth%d", "netns": "/x", "ip": "10.244.0.12"}`,
		`{"name": "other", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.13"}`,
		`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.14", "mtu": 100}`,
		`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.15", "bandwidth": {"ingressRate": 5}}`,
		`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "", "ip": "10.244.0.16"}`,
		// A field of a newer taprouterd: ignored, the entry kept.
		`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.17", "surprise": {"a": [1]}}`,
		`"not an object"`,
		entry("good2", "10.244.0.20"),
	))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got.ports {
		names = append(names, p.Name+" "+p.IP.String())
	}
	if want := []string{"good1/eth0 10.244.0.10", "good1/eth1 10.244.0.42", "c/eth0 10.244.0.17", "good2/eth0 10.244.0.20"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("restored %v, want %v", names, want)
	}
	if len(got.dropped) != 16 {
		t.Errorf("dropped %d entries, want 16: %v", len(got.dropped), got.dropped)
	}
	for i, want := range []string{ // ports[8] and [9] are dropped[7] and [8]
		"ports[8]: eth0 in netns /var/run/netns/good1 is the interface of another port, good1/eth0",
		"ports[9]: eth0 in netns /var/run/netns/pa is the interface of another port, pa",
	} {
		if len(got.dropped) > 7+i && got.dropped[7+i].Error() != want {
			t.Errorf("dropped[%d]: %q, want %q", 7+i, got.dropped[7+i], want)
		}
	}
	// Unknown fields of the file itself are ignored too.
	if got, err := d.loadState([]byte(`{"version": 1, "node": "node1", "epoch": 7, "ports": [` + entry("c2", "10.244.0.30") + `]}`)); err != nil || len(got.ports) != 1 {
		t.Errorf("a state file with an unknown top-level field: %v, %d ports, want 1", err, len(got.ports))
	}
	for _, doc := range [][]byte{[]byte(`{"version": 2, "node": "node1"}`), []byte(`{"version": 1, "node": "node2"}`), []byte(`[`), []byte(`{"version": 1, "node": "node1", "ports": {}}`)} {
		if _, err := d.loadState(doc); err == nil {
			t.Errorf("state file %s accepted", doc)
		}
	}
}

// checkRequestInvariants asserts what every request that passes validate
// satisfies, by the rules' own definitions rather than validate's code.
func checkPort(t *testing.T, d *Daemon, p *port) {
	t.Helper()
	ok := p.ContainerID != "" && !strings.Contains(p.ContainerID, "/") && p.Name == p.ContainerID+"/"+p.IfName &&
		len(p.IfName) >= 1 && len(p.IfName) <= 15 && !hasAnyByte(p.IfName, "/:% \t\n\v\f\r\x00\xa0") && p.IfName != "." && p.IfName != ".." &&
		p.NetNS != "" && p.IP.Is4() && d.cfg.PodCIDR.Contains(p.IP) && p.IP != d.cfg.Gateway && p.IP != d.cfg.PodCIDR.Addr() && p.IP != netip.MustParseAddr("10.244.0.255") &&
		(p.MTU == 0 || p.MTU >= config.MinPodMTU && p.MTU <= config.MaxPodMTU)
	if bw := p.Bandwidth; bw != nil {
		ok = ok && *bw != (api.Bandwidth{}) && (bw.IngressRate == 0) == (bw.IngressBurst == 0) && (bw.EgressRate == 0) == (bw.EgressBurst == 0) &&
			bw.IngressBurst <= maxBurst && bw.EgressBurst <= maxBurst
	}
	if !ok {
		b, _ := json.Marshal(p)
		t.Fatalf("accepted an invalid port: %s", b)
	}
}

// hasAnyByte reports whether s holds any of the bytes in set. (Not
// strings.ContainsAny, which compares runes: it reads the lone byte 0xa0,
// the kernel's non-breaking space, as U+FFFD and so also refuses the name
// "\uFFFD", which the kernel takes.)
func hasAnyByte(s, set string) bool {
	for i := range len(s) {
		if strings.IndexByte(set, s[i]) >= 0 {
			return true
		}
	}
	return false
}

// failingDevice is a pod device whose reads fail at once, as a deleted
// TAP's do.
type failingDevice struct{ *linktest.Device }

func (failingDevice) Read([][]byte, []int, int) (int, error) {
	return 0, errors.New("read: device was deleted")
}

// CHECK fails for a port whose device failed (the router marks it down),
// naming the port and why; a working port has no problem.
func TestRouterProblemsPortDown(t *testing.T) {
	down := make(chan struct{}, 1)
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.DebugLevel), zap.Hooks(func(e zapcore.Entry) error {
		if strings.Contains(e.Message, "port is down") {
			down <- struct{}{}
		}
		return nil
	}))
	d := testDaemon(t, nil)
	r, err := router.New(router.Config{PodCIDR: d.cfg.PodCIDR, Gateway: d.cfg.Gateway, GatewayMAC: link.HardwareAddr{0x0e, 0x58, 1, 2, 3, 4}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d.router = r
	ok := &port{Name: "ok/eth0", IP: netip.MustParseAddr("10.244.0.5")}
	bad := &port{Name: "bad/eth0", IP: netip.MustParseAddr("10.244.0.6")}
	okDev := linktest.NewDevice("ok", 1450, 4)
	if _, err := r.AddPodPort(ok.Name, okDev, ok.IP, link.HardwareAddr{2, 0, 0, 0, 0, 5}, 1450); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddPodPort(bad.Name, failingDevice{linktest.NewDevice("bad", 1450, 4)}, bad.IP, link.HardwareAddr{2, 0, 0, 0, 0, 6}, 1450); err != nil {
		t.Fatal(err)
	}
	r.Start()
	guard(t, down, "the failing port going down")
	if got := d.routerProblems(ok); len(got) != 0 {
		t.Errorf("working port: %q, want no problems", got)
	}
	want := "the router's port bad/eth0 is down: read: device was deleted"
	if got := d.routerProblems(bad); len(got) != 1 || got[0] != want {
		t.Errorf("failed port: %q, want [%q]", got, want)
	}
}
