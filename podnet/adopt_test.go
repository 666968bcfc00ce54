package podnet_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/link/tap"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// A restarted daemon adopts the pod's TAP: same MAC, same address, and the
// pod reaches its gateway through the new file descriptor.
func TestAdoptPod(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
	first, own, err := attach(t, node, p)
	if err != nil {
		t.Fatal(err)
	}
	mac := own.MAC
	first.Close() // the daemon dies; the persistent TAP stays
	if l := findLink(t, pod, "eth0"); l.Address != mac.String() {
		t.Fatalf("eth0 after the daemon's fd closed: %+v", l)
	}
	// Someone removed the default route meanwhile: adoption repairs it.
	pod.MustExec("ip", "route", "del", "default")

	var dev *tap.Device
	var got podnet.Iface
	node.Do(func() { dev, got, err = podnet.AdoptPod(p) })
	if err != nil {
		t.Fatal(err)
	}
	if got != own {
		t.Errorf("adopted %+v, want the pod's %+v", got, own)
	}
	if problems := podnet.CheckPod(p, mac); len(problems) != 0 {
		t.Errorf("after adoption: %v", problems)
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node netns has %v, want only lo", names)
	}
	serve(t, dev)
	if out, err := pod.Command("ping", "-n", "-c", "2", "-i", "0.2", "-W", "5", p.Gateway.String()).CombinedOutput(); err != nil {
		t.Fatalf("pod cannot ping its gateway through the adopted TAP: %v: %s", err, out)
	}
}

func TestAdoptPodMissing(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
	var err error
	node.Do(func() { _, _, err = podnet.AdoptPod(p) })
	if !errors.Is(err, podnet.ErrNoPort) {
		t.Fatalf("got %v, want ErrNoPort", err)
	}
}

// CheckPod names each difference precisely.
func TestCheckPod(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	p := podnet.Pod{NetNS: pod.Path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
	_, own, err := attach(t, node, p)
	if err != nil {
		t.Fatal(err)
	}
	mac := own.MAC
	if problems := podnet.CheckPod(p, mac); len(problems) != 0 {
		t.Fatalf("fresh pod: %v", problems)
	}
	pod.MustExec("ip", "link", "set", "eth0", "mtu", "1500")
	pod.MustExec("ip", "route", "del", "default")
	problems := podnet.CheckPod(p, mac)
	joined := strings.Join(problems, "; ")
	if len(problems) != 2 || !strings.Contains(joined, "MTU is 1500, want 1450") || !strings.Contains(joined, "default via 10.244.1.1") {
		t.Fatalf("problems %q", problems)
	}
	pod.MustExec("ip", "link", "del", "eth0")
	if problems := podnet.CheckPod(p, mac); len(problems) != 1 || !strings.Contains(problems[0], "eth0") {
		t.Fatalf("deleted eth0: %q", problems)
	}
}
