package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
	"github.com/taprouter/taprouter/router"
)

// podDaemon is a Daemon that attaches real pods: a router without a
// tunnel, podnet's namespace opener and a state directory of its own. Its
// devices are created in node's namespace: call it inside node.Do.
func podDaemon(t *testing.T, stateDir string) *Daemon {
	t.Helper()
	d := testDaemon(t, podnet.OpenNetNS)
	d.opts.StateDir, d.podMTU = stateDir, 1450
	r, err := router.New(router.Config{PodCIDR: d.cfg.PodCIDR, Gateway: d.cfg.Gateway, GatewayMAC: link.HardwareAddr{0x0e, 0x58, 1, 2, 3, 4}, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	d.router = r
	return d
}

// tapOf returns the index and MAC of ifName in ns ("" if there is none).
func tapOf(t *testing.T, ns *netnstest.NS, ifName string) string {
	t.Helper()
	out, err := ns.Command("cat", "/sys/class/net/"+ifName+"/ifindex", "/sys/class/net/"+ifName+"/address").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// alias is another path to the namespace at path: /proc/PID/fd/N of an
// open descriptor of it, as OpenNetNS follows it.
func alias(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

// One pod interface (netns identity and ifName) is one port's: a second
// port for it, by the same path or another path to the namespace, from the
// API or the config, is a conflict naming the port that has it, and the
// live pod's eth0 is untouched.
func TestOneInterfaceOnePort(t *testing.T) {
	node, pod, pod2 := netnstest.New(t, "node"), netnstest.New(t, "pod"), netnstest.New(t, "pod")
	node.Do(func() {
		d := podDaemon(t, t.TempDir())
		if _, created, err := d.AddPort(api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: pod.Path, IP: "10.244.0.20"}); err != nil || !created {
			t.Fatalf("ADD live: %v, created %v", err, created)
		}
		live := tapOf(t, pod, "eth0")
		ns, err := podnet.OpenNetNS(pod2.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		if err := d.attach(&port{Name: "pa", IfName: "eth0", NetNS: pod2.Path, IP: netip.MustParseAddr("10.244.0.4")}, ns); err != nil {
			t.Fatalf("config port pa: %v", err)
		}
		other := alias(t, pod.Path)
		for _, tc := range []struct {
			req  api.PortRequest
			want string
		}{
			{api.PortRequest{ContainerID: "twin", IfName: "eth0", NetNS: pod.Path, IP: "10.244.0.21"},
				fmt.Sprintf("eth0 in netns %s is the interface of another port, live/eth0 (netns %s)", pod.Path, pod.Path)},
			{api.PortRequest{ContainerID: "twin", IfName: "eth0", NetNS: other, IP: "10.244.0.21"},
				fmt.Sprintf("eth0 in netns %s is the interface of another port, live/eth0 (netns %s)", other, pod.Path)},
			{api.PortRequest{ContainerID: "twin", IfName: "eth0", NetNS: pod2.Path, IP: "10.244.0.21"},
				fmt.Sprintf("eth0 in netns %s is the interface of another port, pa (netns %s)", pod2.Path, pod2.Path)},
		} {
			_, _, err := d.AddPort(tc.req)
			var e *api.Error
			if !errors.As(err, &e) || e.Code != api.CodeConflict || e.Field != "ifName" || e.Message != tc.want {
				t.Errorf("ADD %+v: %v, want conflict %q", tc.req, err, tc.want)
			}
		}
		// A config port for the API port's interface.
		nsLive, err := podnet.OpenNetNS(pod.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer nsLive.Close()
		if err := d.attach(&port{Name: "pb", IfName: "eth0", NetNS: pod.Path, IP: netip.MustParseAddr("10.244.0.5")}, nsLive); !errors.Is(err, errIfaceTaken) {
			t.Errorf("config port pb for live's eth0: %v, want errIfaceTaken", err)
		}
		if got := tapOf(t, pod, "eth0"); got != live {
			t.Errorf("live's eth0 is %q after the refused ports, want %q", got, live)
		}
		var names []string
		for _, p := range d.router.Ports() {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		if want := []string{"live/eth0", "pa"}; !slices.Equal(names, want) {
			t.Errorf("router ports %v, want %v", names, want)
		}
	})
}

// A state file with two entries for one pod interface (another container
// and address, the same netns by the same path or by another one): the
// later ones are dropped and logged, the live pod's TAP is re-attached to
// its own entry, the file is rewritten without them, and a DEL of the
// dropped containers leaves the live pod's eth0 alone.
func TestRestoreTwoEntriesOneInterface(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	dir := t.TempDir()
	node.Do(func() {
		d1 := podDaemon(t, dir)
		if _, _, err := d1.AddPort(api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: pod.Path, IP: "10.244.0.20"}); err != nil {
			t.Fatal(err)
		}
		live := tapOf(t, pod, "eth0")
		d1.router.Close() // taprouterd ends; the persistent TAP stays
		other := alias(t, pod.Path)
		rec := func(id, netns, ip string) string {
			return fmt.Sprintf(`{"name": "%s/eth0", "containerID": %q, "ifName": "eth0", "netns": %q, "ip": %q}`, id, id, netns, ip)
		}
		if err := os.WriteFile(filepath.Join(dir, "ports.json"), stateDoc(rec("live", pod.Path, "10.244.0.20"), rec("twin", pod.Path, "10.244.0.21"), rec("alias", other, "10.244.0.22")), 0o600); err != nil {
			t.Fatal(err)
		}
		d2 := podDaemon(t, dir)
		core, logs := observer.New(zapcore.ErrorLevel)
		d2.log = zap.New(core)
		if err := d2.restore(); err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, e := range logs.All() {
			msgs = append(msgs, e.Message)
		}
		if want := []string{"state entry dropped: not valid as an API request", "state entry dropped: a second port for one pod interface"}; !slices.Equal(msgs, want) {
			t.Errorf("logged %q, want %q", msgs, want)
		}
		if p := d2.ports["live/eth0"]; len(d2.ports) != 1 || p == nil || !p.attached || fmt.Sprintf("%d\n%s\n", p.iface.Index, p.iface.MAC) != live {
			t.Errorf("restored %v, want live/eth0 attached to %q", d2.ports, live)
		}
		b, err := os.ReadFile(filepath.Join(dir, "ports.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st stateFile
		if err := json.Unmarshal(b, &st); err != nil || len(st.Ports) != 1 || st.Ports[0].Name != "live/eth0" {
			t.Errorf("state file after restore: %s (%v), want live/eth0 alone", b, err)
		}
		for _, id := range []string{"twin", "alias"} {
			if err := d2.RemovePort(api.Attachment{ContainerID: id, IfName: "eth0"}); err != nil {
				t.Errorf("DEL %s: %v", id, err)
			}
		}
		if got := tapOf(t, pod, "eth0"); got != live {
			t.Errorf("live's eth0 is %q after the DELs, want %q", got, live)
		}
	})
}

// A DEL deletes only the port's own TAP: not one another port has (a
// record kept unattached, whose netns never opened, for another path to a
// live pod's namespace), nor one in a namespace that is not the port's any
// more; an unattached record's TAP that no one has open is deleted.
func TestDetachOnlyOwnInterface(t *testing.T) {
	node, pod, free, moved := netnstest.New(t, "node"), netnstest.New(t, "pod"), netnstest.New(t, "pod"), netnstest.New(t, "pod")
	node.Do(func() {
		d := podDaemon(t, t.TempDir())
		if _, _, err := d.AddPort(api.PortRequest{ContainerID: "live", IfName: "eth0", NetNS: pod.Path, IP: "10.244.0.20"}); err != nil {
			t.Fatal(err)
		}
		live := tapOf(t, pod, "eth0")
		// Persistent TAPs that no one has open, as a failed re-attach leaves.
		for _, ns := range []*netnstest.NS{free, moved} {
			dev, _, err := podnet.AttachPod(podnet.Pod{NetNS: ns.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.0.30"), Gateway: d.cfg.Gateway, MTU: 1450})
			if err != nil {
				t.Fatal(err)
			}
			dev.Close()
		}
		movedTAP := tapOf(t, moved, "eth0")
		d.mu.Lock()
		d.ports["twin/eth0"] = &port{Name: "twin/eth0", ContainerID: "twin", IfName: "eth0", NetNS: alias(t, pod.Path), IP: netip.MustParseAddr("10.244.0.21")}
		d.ports["free/eth0"] = &port{Name: "free/eth0", ContainerID: "free", IfName: "eth0", NetNS: free.Path, IP: netip.MustParseAddr("10.244.0.22")}
		d.ports["moved/eth0"] = &port{Name: "moved/eth0", ContainerID: "moved", IfName: "eth0", NetNS: moved.Path, IP: netip.MustParseAddr("10.244.0.23"), nsID: podnet.NSID{Dev: 1, Ino: 1}}
		d.mu.Unlock()
		for _, id := range []string{"twin", "free", "moved"} {
			if err := d.RemovePort(api.Attachment{ContainerID: id, IfName: "eth0"}); err != nil {
				t.Errorf("DEL %s: %v", id, err)
			}
		}
		if got := tapOf(t, pod, "eth0"); got != live {
			t.Errorf("live's eth0 is %q after DEL twin, want %q", got, live)
		}
		if got := tapOf(t, free, "eth0"); got != "" {
			t.Errorf("free's eth0 is %q after DEL free, want it deleted", got)
		}
		if got := tapOf(t, moved, "eth0"); got != movedTAP {
			t.Errorf("the eth0 of the namespace at moved's path is %q after DEL moved, want %q", got, movedTAP)
		}
		if _, ok := d.ports["live/eth0"]; len(d.ports) != 1 || !ok {
			t.Errorf("ports on record %v, want live/eth0 alone", d.ports)
		}
	})
}
