package cni

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/taprouter/taprouter/api"
)

// jsonValue decodes b into generic JSON values for comparison.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, b)
	}
	return v
}

func TestAddResultPerVersion(t *testing.T) {
	// The result a runtime and the chained plugins get, exactly, per
	// cniVersion: 0.4.0 has "version" in ips, 1.1.0 adds the interface MTU.
	want := map[string]string{
		"0.4.0": `{"cniVersion":"0.4.0",
			"interfaces":[{"name":"eth0","mac":"02:00:0a:f4:00:07","sandbox":"` + podNetns + `"}],
			"ips":[{"version":"4","interface":0,"address":"10.244.0.7/32","gateway":"10.244.0.1"}],
			"routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}],
			"dns":{"nameservers":["10.96.0.10"]}}`,
		"1.0.0": `{"cniVersion":"1.0.0",
			"interfaces":[{"name":"eth0","mac":"02:00:0a:f4:00:07","sandbox":"` + podNetns + `"}],
			"ips":[{"interface":0,"address":"10.244.0.7/32","gateway":"10.244.0.1"}],
			"routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}],
			"dns":{"nameservers":["10.96.0.10"]}}`,
		"1.1.0": `{"cniVersion":"1.1.0",
			"interfaces":[{"name":"eth0","mac":"02:00:0a:f4:00:07","mtu":1450,"sandbox":"` + podNetns + `"}],
			"ips":[{"interface":0,"address":"10.244.0.7/32","gateway":"10.244.0.1"}],
			"routes":[{"dst":"0.0.0.0/0","gw":"10.244.0.1"}],
			"dns":{"nameservers":["10.96.0.10"]}}`,
	}
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			ipam := newFakeIPAM(t)
			o := run(t, invocation{Command: "ADD", Stdin: netConf(v, d.Socket, nil), IPAM: ipam})
			o.wantOK(t)
			if got, want := jsonValue(t, o.Stdout), jsonValue(t, []byte(want[v])); !reflect.DeepEqual(got, want) {
				t.Errorf("result:\n%s\nwant:\n%s", o.Stdout, want)
			}
			wantReq := []api.PortRequest{{ContainerID: "ctr1", IfName: "eth0", NetNS: podNetns, IP: "10.244.0.7"}}
			if !slices.Equal(d.requests, wantReq) {
				t.Errorf("daemon got %+v, want %+v", d.requests, wantReq)
			}
			ipam.wantCalls(t, "ADD ctr1 eth0")
		})
	}
}

func TestAddPassesMTU(t *testing.T) {
	d := startFakeDaemon(t, nil)
	o := run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, map[string]any{"mtu": 1400}), IPAM: newFakeIPAM(t)})
	o.wantOK(t)
	if len(d.requests) != 1 || d.requests[0].MTU != 1400 {
		t.Errorf("daemon got %+v, want MTU 1400", d.requests)
	}
	if !strings.Contains(string(o.Stdout), `"mtu": 1400`) {
		t.Errorf("result does not carry MTU 1400:\n%s", o.Stdout)
	}
}

// TestAddRollsBack: whatever fails after IPAM ADD, the address is released
// and no port is left, and the error has the code a runtime acts on.
func TestAddRollsBack(t *testing.T) {
	tests := []struct {
		name    string
		addErr  error    // the daemon's answer
		ips     []string // the IPAM's addresses
		code    uint
		mention []string
	}{
		{name: "daemon rejects the address", addErr: api.Invalid("ip", "10.244.0.7 is outside podCIDR 10.244.1.0/24"),
			code: types.ErrInvalidNetworkConfig, mention: []string{"ip: 10.244.0.7 is outside podCIDR"}},
		{name: "address taken", addErr: api.Conflict("ip", "10.244.0.7 is used by ctr0/eth0"),
			code: types.ErrInternal, mention: []string{"10.244.0.7 is used by ctr0/eth0"}},
		{name: "daemon not ready", addErr: api.Unavailable("still re-adopting ports"),
			code: types.ErrTryAgainLater, mention: []string{"still re-adopting ports"}},
		{name: "two addresses", ips: []string{"10.244.0.7/24", "10.244.0.8/24"},
			code: types.ErrInvalidNetworkConfig, mention: []string{"ipam:", "10.244.0.7/24 10.244.0.8/24", "exactly one IPv4"}},
		{name: "IPv6 only", ips: []string{"fd00::7/64"},
			code: types.ErrInvalidNetworkConfig, mention: []string{"ipam:", "fd00::7/64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			d.addErr = tt.addErr
			ipam := newFakeIPAM(t)
			ipam.IPs = tt.ips
			run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).wantCode(t, tt.code, tt.mention...)
			ipam.wantCalls(t, "ADD ctr1 eth0", "DEL ctr1 eth0")
			d.wantNoPorts(t)
		})
	}
}

func TestAddDaemonNotRunning(t *testing.T) {
	ipam := newFakeIPAM(t)
	socket := missingSocket(t)
	run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", socket, nil), IPAM: ipam}).
		wantCode(t, types.ErrTryAgainLater, "taprouterd is not reachable at "+socket, "is taprouterd running")
	ipam.wantCalls(t, "ADD ctr1 eth0", "DEL ctr1 eth0")
}

// TestAddAnswerLost: the daemon made the port but its answer never came
// back; the rollback removes the port as well as the lease.
func TestAddAnswerLost(t *testing.T) {
	d := startFakeDaemon(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || r.URL.Path != "/v1/ports" {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
	})
	ipam := newFakeIPAM(t)
	run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).wantCode(t, types.ErrInternal, "add the port")
	if len(d.requests) != 1 {
		t.Fatalf("daemon got %d port requests, want 1", len(d.requests))
	}
	d.wantNoPorts(t)
	ipam.wantCalls(t, "ADD ctr1 eth0", "DEL ctr1 eth0")
}

func TestAddIPAMFailureKeepsItsCode(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	ipam.Fail = "ADD"
	run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).
		wantCode(t, fakeIPAMCode, "ipam fake-ipam ADD: fake-ipam was told to fail ADD")
	ipam.wantCalls(t, "ADD ctr1 eth0")
	if len(d.requests) != 0 {
		t.Errorf("daemon got %+v after IPAM failed", d.requests)
	}
}

// TestInvalidInput: each error is a CNI error object on stdout with the
// documented code and exit status 1, and nothing was allocated or asked.
func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name    string
		netns   string
		stdin   func(socket string) string
		code    uint
		mention []string
	}{
		{name: "malformed JSON", stdin: func(string) string { return `{"cniVersion": "1.1.0", "name": ` },
			code: types.ErrDecodingFailure},
		{name: "unknown cniVersion", stdin: func(s string) string { return netConf("9.9.9", s, nil) },
			code: types.ErrIncompatibleCNIVersion, mention: []string{"9.9.9"}},
		{name: "unsupported old cniVersion", stdin: func(s string) string { return netConf("0.3.1", s, nil) },
			code: types.ErrIncompatibleCNIVersion, mention: []string{"0.3.1"}},
		{name: "missing CNI_NETNS", netns: "-", stdin: func(s string) string { return netConf("1.1.0", s, nil) },
			code: types.ErrInvalidEnvironmentVariables, mention: []string{"CNI_NETNS"}},
		{name: "missing ipam", stdin: func(s string) string { return netConf("1.1.0", s, map[string]any{"ipam": nil}) },
			code: types.ErrInvalidNetworkConfig, mention: []string{"ipam: missing"}},
		{name: "socket of the wrong type", stdin: func(string) string { return netConf("1.1.0", "", map[string]any{"socket": 5}) },
			code: types.ErrInvalidNetworkConfig, mention: []string{"socket: got a JSON number, want a string"}},
		{name: "relative socket", stdin: func(string) string { return netConf("1.1.0", "run/t.sock", nil) },
			code: types.ErrInvalidNetworkConfig, mention: []string{`socket: "run/t.sock" is not an absolute path`}},
		{name: "MTU out of range", stdin: func(s string) string { return netConf("1.1.0", s, map[string]any{"mtu": 40}) },
			code: types.ErrInvalidNetworkConfig, mention: []string{"mtu: 40 is out of range"}},
		{name: "ipam type of the wrong type", stdin: func(s string) string {
			return netConf("1.1.0", s, map[string]any{"ipam": map[string]any{"type": true}})
		},
			code: types.ErrInvalidNetworkConfig, mention: []string{"ipam.type: got a JSON bool, want a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			ipam := newFakeIPAM(t)
			o := run(t, invocation{Command: "ADD", Netns: tt.netns, Stdin: tt.stdin(d.Socket), IPAM: ipam})
			if o.ExitCode != 1 {
				t.Errorf("exit status %d, want 1", o.ExitCode)
			}
			o.wantCode(t, tt.code, tt.mention...)
			ipam.wantCalls(t)
			if len(d.requests) != 0 {
				t.Errorf("daemon got %+v", d.requests)
			}
		})
	}
}

func TestDel(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	conf := netConf("1.1.0", d.Socket, nil)
	run(t, invocation{Command: "ADD", Stdin: conf, IPAM: ipam}).wantOK(t)
	run(t, invocation{Command: "DEL", Stdin: conf, IPAM: ipam}).wantOK(t)
	d.wantNoPorts(t)
	// Idempotent: a second DEL, a DEL without netns (the pod is gone) and a
	// DEL of a container nobody knows all succeed.
	run(t, invocation{Command: "DEL", Stdin: conf, IPAM: ipam}).wantOK(t)
	run(t, invocation{Command: "DEL", Netns: "-", Stdin: conf, IPAM: ipam}).wantOK(t)
	run(t, invocation{Command: "DEL", ContainerID: "never-added", Stdin: conf, IPAM: ipam}).wantOK(t)
	ipam.wantCalls(t, "ADD ctr1 eth0", "DEL ctr1 eth0", "DEL ctr1 eth0", "DEL ctr1 eth0", "DEL never-added eth0")
}

// TestDelDaemonNotRunning: the address stays allocated (the port may still
// hold it) and the runtime is told to retry.
func TestDelDaemonNotRunning(t *testing.T) {
	ipam := newFakeIPAM(t)
	run(t, invocation{Command: "DEL", Stdin: netConf("1.1.0", missingSocket(t), nil), IPAM: ipam}).
		wantCode(t, types.ErrTryAgainLater, "taprouterd is not reachable")
	ipam.wantCalls(t)
}

// added runs ADD and returns the configuration CHECK gets: the same one
// with the ADD's result as prevResult.
func added(t *testing.T, d *fakeDaemon, ipam *fakeIPAM, version string) string {
	t.Helper()
	o := run(t, invocation{Command: "ADD", Stdin: netConf(version, d.Socket, nil), IPAM: ipam})
	o.wantOK(t)
	return netConf(version, d.Socket, map[string]any{"prevResult": json.RawMessage(o.Stdout)})
}

func TestCheck(t *testing.T) {
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run("consistent "+v, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			ipam := newFakeIPAM(t)
			run(t, invocation{Command: "CHECK", Stdin: added(t, d, ipam, v), IPAM: ipam}).wantOK(t)
			ipam.wantCalls(t, "ADD ctr1 eth0", "CHECK ctr1 eth0")
		})
	}
	t.Run("every difference is named", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		conf := added(t, d, ipam, "1.1.0")
		a := api.Attachment{ContainerID: "ctr1", IfName: "eth0"}
		d.mu.Lock()
		p := d.ports[a]
		p.MAC, p.IP, p.MTU = "02:00:0a:f4:00:99", "10.244.0.9", 1400
		d.ports[a] = p
		d.problems = []string{"eth0 MTU is 1500, want 1400", "route default via 10.244.0.1 missing"}
		d.mu.Unlock()
		ipam.Fail = "CHECK"
		run(t, invocation{Command: "CHECK", Stdin: conf, IPAM: ipam}).wantCode(t, types.ErrInternal,
			"eth0 MAC is 02:00:0a:f4:00:99 in taprouterd but 02:00:0a:f4:00:07 in prevResult",
			"eth0 address is 10.244.0.9/32 in taprouterd but 10.244.0.7/32 in prevResult",
			"eth0 MTU is 1400 in taprouterd but 1450 in prevResult",
			"eth0 MTU is 1500, want 1400", "route default via 10.244.0.1 missing",
			"ipam fake-ipam CHECK: fake-ipam was told to fail CHECK")
	})
	t.Run("unknown container", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		conf := added(t, d, ipam, "1.1.0")
		run(t, invocation{Command: "CHECK", ContainerID: "ctr2", Stdin: conf, IPAM: ipam}).
			wantCode(t, types.ErrUnknownContainer, "no port ctr2/eth0")
	})
	t.Run("no prevResult", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		run(t, invocation{Command: "CHECK", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: newFakeIPAM(t)}).
			wantCode(t, types.ErrInvalidNetworkConfig, "prevResult: missing")
	})
}

func TestStatus(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	run(t, invocation{Command: "STATUS", Netns: "-", ContainerID: "-", IfName: "-", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).wantOK(t)
	ipam.wantCalls(t, "STATUS  ")

	socket := missingSocket(t)
	run(t, invocation{Command: "STATUS", Netns: "-", ContainerID: "-", IfName: "-", Stdin: netConf("1.1.0", socket, nil), IPAM: ipam}).
		wantCode(t, types.ErrPluginNotAvailable, "taprouterd is not available", socket)

	ipam.Fail = "STATUS"
	run(t, invocation{Command: "STATUS", Netns: "-", ContainerID: "-", IfName: "-", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).
		wantCode(t, fakeIPAMCode, "ipam fake-ipam STATUS")

	// STATUS is new in spec 1.1.0; skel refuses it for older configurations.
	run(t, invocation{Command: "STATUS", Netns: "-", ContainerID: "-", IfName: "-", Stdin: netConf("1.0.0", d.Socket, nil), IPAM: ipam}).
		wantCode(t, types.ErrIncompatibleCNIVersion)
}

// TestGC: the daemon gets the valid attachments, removes the others, and
// the IPAM plugin releases exactly their addresses before its own GC.
func TestGC(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	conf := netConf("1.1.0", d.Socket, nil)
	for _, id := range []string{"a", "b", "c"} {
		run(t, invocation{Command: "ADD", ContainerID: id, Stdin: conf, IPAM: ipam}).wantOK(t)
	}
	gcConf := netConf("1.1.0", d.Socket, map[string]any{
		"cni.dev/valid-attachments": []map[string]string{{"containerID": "b", "ifname": "eth0"}},
	})
	run(t, invocation{Command: "GC", Netns: "-", ContainerID: "-", IfName: "-", Stdin: gcConf, IPAM: ipam}).wantOK(t)
	if want := []api.Attachment{{ContainerID: "b", IfName: "eth0"}}; !slices.Equal(d.gcValid, want) {
		t.Errorf("daemon got valid attachments %+v, want %+v", d.gcValid, want)
	}
	if ps := d.portList(); len(ps) != 1 || ps[0].ContainerID != "b" {
		t.Errorf("daemon kept %+v, want only b", ps)
	}
	ipam.wantCalls(t, "ADD a eth0", "ADD b eth0", "ADD c eth0", "DEL a eth0", "DEL c eth0", "GC  ")

	run(t, invocation{Command: "GC", Netns: "-", ContainerID: "-", IfName: "-", Stdin: gcConf, IPAM: ipam}).wantOK(t)
	ipam.wantCalls(t, "ADD a eth0", "ADD b eth0", "ADD c eth0", "DEL a eth0", "DEL c eth0", "GC  ", "GC  ")
}

func TestVersion(t *testing.T) {
	o := run(t, invocation{Command: "VERSION", Netns: "-", ContainerID: "-", IfName: "-"})
	o.wantOK(t)
	var got struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal(o.Stdout, &got); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0.4.0", "1.0.0", "1.1.0"}; !slices.Equal(got.SupportedVersions, want) {
		t.Errorf("supported versions %q, want %q", got.SupportedVersions, want)
	}
}

// TestNodeNetnsRefused: CNI_NETNS naming the node's own namespace is refused
// before any address is taken.
func TestNodeNetnsRefused(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	run(t, invocation{Command: "ADD", Netns: "/proc/self/ns/net", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).
		wantCode(t, types.ErrInvalidNetNS, "node's own network namespace")
	ipam.wantCalls(t)
}

// TestIfNameRefused: a CNI_IFNAME the kernel would not keep as given is
// refused before any address is taken. skel refuses what dev_valid_name
// refuses; the plugin adds the "%" of a kernel name pattern, which would
// leave a TAP named eth0, eth1, ... that no DEL finds.
func TestIfNameRefused(t *testing.T) {
	for _, tc := range []struct{ name, mention string }{
		{"eth%d", `CNI_IFNAME: "eth%d": an interface name may not contain '%'`},
		{"eth0:1", "interface name"},
		{"..", "interface name"},
		{"0123456789abcdef", "interface name"},
	} {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		run(t, invocation{Command: "ADD", IfName: tc.name, Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).
			wantCode(t, types.ErrInvalidEnvironmentVariables, tc.mention)
		ipam.wantCalls(t)
		if len(d.requests) != 0 {
			t.Errorf("ifName %q: daemon got %+v", tc.name, d.requests)
		}
	}
}
