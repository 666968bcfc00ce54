package podnet_test

import (
	"strings"
	"testing"

	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// TestSetRPFilter sets rp_filter through rtnetlink on one end of a veth
// pair and checks sysctl reads it on that end only, that a second call
// changes nothing, and bad input is refused. That it works where /proc/sys
// is read-only (a container's view) is e2e/cluster's TestClusterDirect:
// taprouterd in its DaemonSet pod with the direct backend.
func TestSetRPFilter(t *testing.T) {
	node := netnstest.New(t, "node")
	node.IP("link", "add", "rp0", "type", "veth", "peer", "name", "rp1")
	node.MustExec("sysctl", "-q", "-w", "net.ipv4.conf.rp0.rp_filter=0", "net.ipv4.conf.rp1.rp_filter=0")
	var changed bool
	var err error
	node.Do(func() { changed, err = podnet.SetRPFilter("rp0", 1) })
	if err != nil || !changed {
		t.Fatalf("SetRPFilter(rp0, 1) = %v, %v; want true, nil", changed, err)
	}
	if got := strings.TrimSpace(node.MustExec("sysctl", "-n", "net.ipv4.conf.rp0.rp_filter")); got != "1" {
		t.Errorf("rp0 rp_filter %s, want 1", got)
	}
	if got := strings.TrimSpace(node.MustExec("sysctl", "-n", "net.ipv4.conf.rp1.rp_filter")); got != "0" {
		t.Errorf("rp1 rp_filter %s, want 0 (untouched)", got)
	}
	node.Do(func() { changed, err = podnet.SetRPFilter("rp0", 1) })
	if err != nil || changed {
		t.Errorf("second SetRPFilter = %v, %v; want false, nil", changed, err)
	}
	node.Do(func() { changed, err = podnet.SetRPFilter("rp0", 2) })
	if err != nil || !changed {
		t.Errorf("SetRPFilter(rp0, 2) = %v, %v", changed, err)
	}
	if got := strings.TrimSpace(node.MustExec("sysctl", "-n", "net.ipv4.conf.rp0.rp_filter")); got != "2" {
		t.Errorf("rp0 rp_filter %s, want 2", got)
	}
	node.Do(func() { _, err = podnet.SetRPFilter("rp0", 3) })
	if err == nil {
		t.Error("SetRPFilter(rp0, 3) accepted")
	}
	node.Do(func() { _, err = podnet.SetRPFilter("nosuch0", 1) })
	if err == nil {
		t.Error("SetRPFilter of a missing interface accepted")
	}
}
