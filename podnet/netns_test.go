package podnet_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// OpenNetNS takes a pod's namespace and refuses, each with its own error
// and without blocking, what is not one and the node's own namespaces.
func TestOpenNetNS(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := os.Stat("/proc/1/ns/net")
	initUnreadable := errors.Is(err, os.ErrPermission) // in some sandboxes, even for root

	f, err := podnet.OpenNetNS(pod.Path)
	if err != nil {
		t.Fatalf("OpenNetNS(%s): %v", pod.Path, err)
	}
	f.Close()
	for _, tc := range []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "missing"), os.ErrNotExist},
		{regular, podnet.ErrNotNetNS},
		{dir, podnet.ErrNotNetNS},
		{fifo, podnet.ErrNotNetNS},
		{"/dev/null", podnet.ErrNotNetNS},
		{"/proc/self/ns/uts", podnet.ErrNotNetNS},
		{"/proc/self/ns/net", podnet.ErrNodeNetNS},
		{"/proc/1/ns/net", podnet.ErrNodeNetNS},
		{node.Path, podnet.ErrNodeNetNS}, // inside node.Do: the caller's own
	} {
		start := time.Now()
		var f *os.File
		var err error
		node.Do(func() { f, err = podnet.OpenNetNS(tc.path) })
		if f != nil {
			f.Close()
		}
		if !errors.Is(err, tc.want) && !(tc.path == "/proc/1/ns/net" && initUnreadable && errors.Is(err, os.ErrPermission)) {
			t.Errorf("OpenNetNS(%s): %v, want %v", tc.path, err, tc.want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("OpenNetNS(%s) took %v", tc.path, d)
		}
	}
}

// Neither AttachPod nor AdoptPod puts a pod's eth0 into the node's own
// namespace, however the path names it. (Only the test's node namespace is
// tried here: a regression must not land a TAP in the machine's. The
// process's and PID 1's are in TestOpenNetNS, which creates nothing.)
func TestAttachPodRefusesNodeNetNS(t *testing.T) {
	node := netnstest.New(t, "node")
	for _, path := range []string{node.Path, "/proc/thread-self/ns/net"} {
		p := podnet.Pod{NetNS: path, IfName: "eth0", IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
		if _, _, err := attach(t, node, p); !errors.Is(err, podnet.ErrNodeNetNS) {
			t.Errorf("AttachPod into %s: %v, want ErrNodeNetNS", path, err)
		}
		var err error
		node.Do(func() { _, _, err = podnet.AdoptPod(p) })
		if !errors.Is(err, podnet.ErrNodeNetNS) {
			t.Errorf("AdoptPod in %s: %v, want ErrNodeNetNS", path, err)
		}
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node netns has %v, want only lo", names)
	}
}

// An interface name the kernel would not keep as given ("eth%d" becomes
// eth0, eth1, ...) is refused before anything is created: it would leak a
// TAP that DetachPod could not find by name.
func TestAttachPodRefusesKernelPatterns(t *testing.T) {
	node, pod := netnstest.New(t, "node"), netnstest.New(t, "pod")
	for _, name := range []string{"eth%d", "a/b", "a:b", "a b", ".", "..", "0123456789abcdef"} {
		p := podnet.Pod{NetNS: pod.Path, IfName: name, IP: netip.MustParseAddr("10.244.1.5"), Gateway: netip.MustParseAddr("10.244.1.1"), MTU: 1450}
		if _, _, err := attach(t, node, p); err == nil {
			t.Errorf("AttachPod with ifName %q: no error", name)
		}
	}
	if names := linkNames(t, pod); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("pod netns has %v, want only lo", names)
	}
	if names := linkNames(t, node); !slices.Equal(names, []string{"lo"}) {
		t.Errorf("node netns has %v, want only lo", names)
	}
}
