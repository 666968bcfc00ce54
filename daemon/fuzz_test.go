package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/podnet"
)

// FuzzPortRequest: no body of POST /v1/ports gets a 5xx, and every request
// that gets past decoding and validation (to opening its netns, which this
// test refuses) is a valid port by the API's rules.
func FuzzPortRequest(f *testing.F) {
	f.Add([]byte(`{"containerID": "c1", "ifName": "eth0", "netns": "/var/run/netns/p", "ip": "10.244.0.7"}`))
	f.Add([]byte(`{"containerID": "c1", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.7", "mtu": 1400, "bandwidth": {"ingressRate": 8000, "ingressBurst": 80000}}`))
	f.Add([]byte(`{"containerID": "c1", "ifName": "eth%d", "netns": "/x", "ip": "10.244.0.1"}`))
	f.Add([]byte(`{"containerID": "c1", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.7"} {}`))
	f.Add([]byte(`{"containerID": "a/b", "mtu": 1e99}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"containerID": "c1", "ifName": "eth\u00a0", "netns": "/x", "ip": "10.244.0.7"}`)) // the kernel's isspace takes byte 0xa0
	f.Add([]byte(`{"containerID": "c1", "ifName": "\ufffd", "netns": "/x", "ip": "10.244.0.7"}`))    // a valid name to the kernel
	f.Fuzz(func(t *testing.T, body []byte) {
		var reached []string
		d := testDaemon(t, func(path string) (*os.File, error) {
			reached = append(reached, path)
			return nil, fmt.Errorf("%s: %w", path, podnet.ErrNotNetNS)
		})
		w := httptest.NewRecorder()
		api.NewHandler(d).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/ports", bytes.NewReader(body)))
		if w.Code >= 500 {
			t.Fatalf("POST %q: %d %s", body, w.Code, w.Body)
		}
		if len(reached) == 0 {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("POST %q: refused with %d %s, want 400", body, w.Code, w.Body)
			}
			return
		}
		var req api.PortRequest
		if err := json.Unmarshal(body, &req); err != nil {
			t.Fatalf("POST %q got past decoding, but it is not a PortRequest: %v", body, err)
		}
		p, err := d.validate(req)
		if err != nil || p.NetNS != reached[0] {
			t.Fatalf("POST %q got to netns %v, but validate says %v", body, reached, err)
		}
		checkPort(t, d, p)
	})
}

var (
	good1 = entry("good1", "10.244.0.10")
	good2 = entry("good2", "10.244.0.20")
)

// FuzzStateEntry: one arbitrary entry between two good ones drops at most
// itself (and, if it is valid itself, the later good one it clashes with:
// same address, or same netns and ifName);
// everything restored is valid by the API's rules.
func FuzzStateEntry(f *testing.F) {
	f.Add([]byte(entry("c", "10.244.0.5")))
	f.Add([]byte(entry("gw", "10.244.0.1")))
	f.Add([]byte(entry("good2", "10.244.0.21")))
	f.Add([]byte(entry("c", "10.244.0.20")))
	f.Add([]byte(`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/var/run/netns/good2", "ip": "10.244.0.30"}`))
	f.Add([]byte(`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.15", "bandwidth": {"egressRate": 5, "egressBurst": 9}}`))
	f.Add([]byte(`{"ip": 7}`))
	f.Add([]byte(`{"name": "c/eth0", "containerID": "c", "ifName": "eth0", "netns": "/x", "ip": "10.244.0.15", "fromANewerVersion": {"x": [1]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // not an entry but a broken file: FuzzStateFile
		}
		d := testDaemon(t, nil)
		got, err := d.loadState(stateDoc(good1, string(raw), good2))
		if err != nil {
			t.Fatalf("entry %s: the whole file was refused: %v", raw, err)
		}
		if len(got.ports)+len(got.dropped) != 3 {
			t.Fatalf("entry %s: %d restored + %d dropped, want 3", raw, len(got.ports), len(got.dropped))
		}
		checkRestored(t, d, got.ports)
		if len(got.ports) == 0 || got.ports[0].Name != "good1/eth0" {
			t.Fatalf("entry %s: good1 dropped", raw)
		}
		// Only a valid entry that takes good2's address or interface may
		// drop it (one named like good2 is the later one, and dropped
		// itself).
		if last := got.ports[len(got.ports)-1]; last.Name != "good2/eth0" && (len(got.ports) != 2 || last.IP.String() != "10.244.0.20" && (last.NetNS != "/var/run/netns/good2" || last.IfName != "eth0")) {
			t.Fatalf("entry %s: good2 dropped, restored %+v", raw, got.ports)
		}
	})
}

// FuzzStateFile: whatever the file, what is restored is valid by the API's
// rules and clash-free.
func FuzzStateFile(f *testing.F) {
	f.Add(stateDoc(good1, good2))
	f.Add(stateDoc(good1, entry("x", "10.244.0.10"), `{}`))
	f.Add([]byte(`{"version": 1, "node": "node1", "ports": null}`))
	f.Add([]byte(`{"version": 1, "node": "node1"} trailing`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := testDaemon(t, nil)
		got, err := d.loadState(b)
		if err != nil {
			return
		}
		checkRestored(t, d, got.ports)
	})
}

func checkRestored(t *testing.T, d *Daemon, ports []*port) {
	t.Helper()
	names, ips, ifaces := map[string]bool{}, map[string]bool{}, map[[2]string]bool{}
	for _, p := range ports {
		checkPort(t, d, p)
		iface := [2]string{p.NetNS, p.IfName}
		if names[p.Name] || ips[p.IP.String()] || ifaces[iface] {
			t.Fatalf("two restored ports share a name, an address or an interface: %+v", ports)
		}
		names[p.Name], ips[p.IP.String()], ifaces[iface] = true, true, true
	}
}
