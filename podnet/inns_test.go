package podnet

import (
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var seq atomic.Uint32

// tempNetNS creates a namespace for the test (netnstest cannot be used
// here: it imports nothing of podnet, but this test is inside podnet).
func tempNetNS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	name := fmt.Sprintf("trt-inns-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

func nsID(t *testing.T, path string) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// newHandleIn's sockets are the pod's, and the thread that opened them is
// back home.
func TestNewHandleIn(t *testing.T) {
	path := tempNetNS(t)
	if out, err := exec.Command("ip", "-n", path[len("/var/run/netns/"):], "link", "add", "veth7", "type", "veth", "peer", "name", "veth8").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := newHandleIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("veth7"); err != nil {
		t.Errorf("the handle does not see the pod's veth7: %v", err)
	}
}
