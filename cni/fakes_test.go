package cni

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/taprouter/taprouter/api"
)

// fakeIPAM drives the fake IPAM plugin through the environment, which the
// plugin passes on to the IPAM plugin it runs.
type fakeIPAM struct {
	Log  string   // the fake appends "COMMAND containerID ifName" per run
	IPs  []string // what ADD returns; default 10.244.0.7/24
	Fail string   // a command the fake fails, with code fakeIPAMCode
}

// fakeIPAMCode is the (plugin-specific) CNI code of the fake's failures.
const fakeIPAMCode = 107

func newFakeIPAM(t *testing.T) *fakeIPAM {
	return &fakeIPAM{Log: filepath.Join(t.TempDir(), "ipam.log")}
}

func (f *fakeIPAM) env() []string {
	return []string{"FAKE_IPAM_LOG=" + f.Log, "FAKE_IPAM_IPS=" + strings.Join(f.IPs, ","), "FAKE_IPAM_FAIL=" + f.Fail}
}

// calls returns the commands the fake ran, in order.
func (f *fakeIPAM) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(f.Log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func (f *fakeIPAM) wantCalls(t *testing.T, want ...string) {
	t.Helper()
	if got := f.calls(t); !slices.Equal(got, want) {
		t.Errorf("IPAM ran %q, want %q", got, want)
	}
}

// fakeIPAMMain is the fake IPAM plugin.
func fakeIPAMMain() {
	record := func(command string, args *skel.CmdArgs) error {
		if path := os.Getenv("FAKE_IPAM_LOG"); path != "" {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.WriteString(command + " " + args.ContainerID + " " + args.IfName + "\n"); err != nil {
				return err
			}
		}
		if os.Getenv("FAKE_IPAM_FAIL") == command {
			return types.NewError(fakeIPAMCode, "fake-ipam was told to fail "+command, "")
		}
		return nil
	}
	add := func(args *skel.CmdArgs) error {
		if err := record("ADD", args); err != nil {
			return err
		}
		var conf types.NetConf
		if err := json.Unmarshal(args.StdinData, &conf); err != nil {
			return err
		}
		res := &current.Result{CNIVersion: current.ImplementedSpecVersion, DNS: types.DNS{Nameservers: []string{"10.96.0.10"}}}
		ips := os.Getenv("FAKE_IPAM_IPS")
		if ips == "" {
			ips = "10.244.0.7/24"
		}
		for _, s := range strings.Split(ips, ",") {
			ip, n, err := net.ParseCIDR(s)
			if err != nil {
				return err
			}
			n.IP = ip
			res.IPs = append(res.IPs, &current.IPConfig{Address: *n})
		}
		return types.PrintResult(res, conf.CNIVersion)
	}
	verb := func(command string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error { return record(command, args) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: verb("DEL"), Check: verb("CHECK"), Status: verb("STATUS"), GC: verb("GC")},
		version.All, "fake-ipam")
}

// fakeDaemon is taprouterd's API (the real handler, api.NewHandler) over a
// unix socket, with a backend that keeps ports in a map.
type fakeDaemon struct {
	Socket string

	mu       sync.Mutex
	ports    map[api.Attachment]api.Port
	requests []api.PortRequest
	addErr   error    // AddPort answers it instead of adding
	problems []string // CheckPort reports them
	gcValid  []api.Attachment
}

// startFakeDaemon serves the fake; wrap, if not nil, wraps the handler.
func startFakeDaemon(t testing.TB, wrap func(http.Handler) http.Handler) *fakeDaemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "trcni-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &fakeDaemon{Socket: filepath.Join(dir, "taprouterd.sock"), ports: map[api.Attachment]api.Port{}}
	ln, err := api.Listen(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	h := api.NewHandler(d)
	if wrap != nil {
		h = wrap(h)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return d
}

// missingSocket is a socket path no daemon listens on.
func missingSocket(t testing.TB) string { return filepath.Join(t.TempDir(), "none.sock") }

func (d *fakeDaemon) portList() []api.Port {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ps []api.Port
	for _, p := range d.ports {
		ps = append(ps, p)
	}
	return ps
}

func (d *fakeDaemon) wantNoPorts(t *testing.T) {
	t.Helper()
	if ps := d.portList(); len(ps) != 0 {
		t.Errorf("taprouterd still has ports %+v", ps)
	}
}

func (d *fakeDaemon) Status() api.Status {
	return api.Status{Node: "node1", PodCIDR: "10.244.0.0/24", Gateway: "10.244.0.1", MTU: 1450, Backend: "vxlan", Ports: len(d.portList())}
}

func (d *fakeDaemon) Ready() api.Readiness        { return api.Readiness{Ready: true} }
func (d *fakeDaemon) Stats() map[string]uint64    { return map[string]uint64{} }
func (d *fakeDaemon) Ports() []api.RouterPort     { return nil }
func (d *fakeDaemon) Routes() []api.Route         { return nil }
func (d *fakeDaemon) Neighbours() []api.Neighbour { return nil }
func (d *fakeDaemon) Peers() []api.Peer           { return nil }

func (d *fakeDaemon) AddPort(req api.PortRequest) (api.Port, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, req)
	if d.addErr != nil {
		return api.Port{}, false, d.addErr
	}
	a := api.Attachment{ContainerID: req.ContainerID, IfName: req.IfName}
	if p, ok := d.ports[a]; ok {
		return p, false, nil
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = 1450
	}
	p := api.Port{ContainerID: req.ContainerID, IfName: req.IfName, NetNS: req.NetNS, IP: req.IP,
		MAC: "02:00:0a:f4:00:07", MTU: mtu, Gateway: "10.244.0.1", Name: "p-" + req.ContainerID, Bandwidth: req.Bandwidth}
	d.ports[a] = p
	return p, true, nil
}

func (d *fakeDaemon) GetPort(a api.Attachment) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.ports[a]
	if !ok {
		return p, api.NotFound("no port " + a.ContainerID + "/" + a.IfName)
	}
	return p, nil
}

func (d *fakeDaemon) CheckPort(a api.Attachment) (api.CheckResult, error) {
	if _, err := d.GetPort(a); err != nil {
		return api.CheckResult{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return api.CheckResult{OK: len(d.problems) == 0, Problems: d.problems}, nil
}

func (d *fakeDaemon) RemovePort(a api.Attachment) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.ports, a)
	return nil
}

func (d *fakeDaemon) GC(req api.GCRequest) api.GCResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gcValid = req.Valid
	var res api.GCResult
	for a := range d.ports {
		if !slices.Contains(req.Valid, a) {
			delete(d.ports, a)
			res.Removed = append(res.Removed, a)
		}
	}
	slices.SortFunc(res.Removed, func(x, y api.Attachment) int { return strings.Compare(x.ContainerID, y.ContainerID) })
	return res
}
