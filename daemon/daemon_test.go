package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/podnet"
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

// A netns path that never opens holds up its own request for the timeout,
// and nothing else: the daemon's lock is free meanwhile, Close does not
// wait for it, and the answer is a 503 that names the path.
func TestAddPortNetNSTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	d := testDaemon(t, func(string) (*os.File, error) { <-block; return nil, errors.New("unblocked") })
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := d.AddPort(api.PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/hung/ns", IP: "10.244.0.7"})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	status := make(chan api.Status, 1)
	go func() { status <- d.Status() }()
	select {
	case <-status:
	case <-time.After(100 * time.Millisecond):
		t.Fatal("Status waits for an AddPort whose netns does not open")
	}
	err := <-done
	if d := time.Since(start); d < 200*time.Millisecond || d > time.Second {
		t.Errorf("AddPort returned after %v, want the 200ms timeout", d)
	}
	if api.ErrorCode(err) != api.CodeUnavailable || !strings.Contains(err.Error(), "/hung/ns") {
		t.Errorf("AddPort: %v, want unavailable naming /hung/ns", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("Close hangs")
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
	return fmt.Sprintf(`{"name": "%s/eth0", "containerID": %q, "ifName": "eth0", "netns": "/var/run/netns/x", "ip": %q}`, containerID, containerID, ip)
}

func stateDoc(entries ...string) []byte {
	return []byte(`{"version": 1, "node": "node1", "ports": [` + strings.Join(entries, ",") + `]}`)
}

// Each state entry is checked as an API request would be; a bad one is
// dropped alone and the others are restored.
func TestLoadState(t *testing.T) {
	d := testDaemon(t, nil)
	d.ports["pa"] = &port{Name: "pa", IP: netip.MustParseAddr("10.244.0.4")} // from the config file
	got, err := d.loadState(stateDoc(
		entry("good1", "10.244.0.10"),
		entry("gw", "10.244.0.1"),       // the gateway
		entry("net", "10.244.0.0"),      // the network address
		entry("bcast", "10.244.0.255"),  // the broadcast address
		entry("out", "10.244.1.5"),      // outside podCIDR
		entry("pa-thief", "10.244.0.4"), // the config port's address
		entry("good1", "10.244.0.11"),   // a second good1
		entry("dup-ip", "10.244.0.10"),  // good1's address
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
	if want := []string{"good1/eth0 10.244.0.10", "c/eth0 10.244.0.17", "good2/eth0 10.244.0.20"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("restored %v, want %v", names, want)
	}
	if len(got.dropped) != 14 {
		t.Errorf("dropped %d entries, want 14: %v", len(got.dropped), got.dropped)
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
		len(p.IfName) >= 1 && len(p.IfName) <= 15 && !strings.ContainsAny(p.IfName, "/:% \t\n\v\f\r\x00\xa0") && p.IfName != "." && p.IfName != ".." &&
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
