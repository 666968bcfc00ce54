package podnet_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// groState returns what "ethtool -k ifname" says about generic-receive-offload
// in ns: "on" or "off".
func groState(t *testing.T, ns *netnstest.NS, ifname string) string {
	t.Helper()
	out := ns.MustExec("ethtool", "-k", ifname)
	m := regexp.MustCompile(`(?m)^generic-receive-offload: (on|off)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ethtool -k %s: no generic-receive-offload line in\n%s", ifname, out)
	}
	return m[1]
}

// TestDisableGRO turns GRO on on both ends of a veth pair (veth supports
// it; its LRO is fixed off) and checks that DisableGRO turns it off on the
// named end only, and that a second call changes nothing.
func TestDisableGRO(t *testing.T) {
	node := netnstest.New(t, "node")
	node.IP("link", "add", "gro0", "type", "veth", "peer", "name", "gro1")
	node.MustExec("ethtool", "-K", "gro0", "gro", "on")
	node.MustExec("ethtool", "-K", "gro1", "gro", "on")
	if got := groState(t, node, "gro0"); got != "on" {
		t.Fatalf("after ethtool -K gro0 gro on: generic-receive-offload: %s", got)
	}

	var changed bool
	var err error
	node.Do(func() { changed, err = podnet.DisableGRO("gro0") })
	if err != nil || !changed {
		t.Fatalf("DisableGRO(gro0) = %v, %v; want true, nil", changed, err)
	}
	if got := groState(t, node, "gro0"); got != "off" {
		t.Errorf("after DisableGRO: gro0 generic-receive-offload: %s, want off", got)
	}
	if got := groState(t, node, "gro1"); got != "on" {
		t.Errorf("after DisableGRO(gro0): its peer gro1 has generic-receive-offload: %s, want on (untouched)", got)
	}

	node.Do(func() { changed, err = podnet.DisableGRO("gro0") })
	if err != nil || changed {
		t.Errorf("second DisableGRO(gro0) = %v, %v; want false, nil", changed, err)
	}
}

func TestDisableGROErrors(t *testing.T) {
	node := netnstest.New(t, "node")
	var err error
	node.Do(func() { _, err = podnet.DisableGRO("nope0") })
	if !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), `"nope0"`) {
		t.Errorf("DisableGRO of a missing interface: %v, want ENODEV naming nope0", err)
	}
	for _, name := range []string{"", "a-name-longer-than-15"} {
		if _, err := podnet.DisableGRO(name); err == nil || !strings.Contains(err.Error(), "invalid interface name") {
			t.Errorf("DisableGRO(%q): %v, want an invalid-name error", name, err)
		}
	}
}
