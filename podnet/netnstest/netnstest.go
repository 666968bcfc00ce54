// Package netnstest gives tests throwaway network namespaces and a way to run
// code inside them.
//
// Tests run in the machine's root namespace but must create devices,
// addresses and routes only in namespaces they own. New makes such a
// namespace (named after the test process, so concurrent test binaries do not
// collide) and deletes it in t.Cleanup; Do runs a function on an OS thread
// that has entered it, which is how a test "is" a node: a device or socket
// opened inside Do lives in the namespace and keeps working from any
// goroutine afterwards.
package netnstest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

var seq atomic.Uint32

// NS is a network namespace owned by one test.
type NS struct {
	Name string // name for ip netns, e.g. "trt-node-1234-1"
	Path string // bind mount, e.g. /var/run/netns/trt-node-1234-1
	t    testing.TB
}

// New creates a namespace, brings its loopback up and disables IPv6 in it,
// so that the kernel sends no neighbour discovery or MLD frames that tests
// would have to filter out. The namespace is deleted when the test ends. New
// skips the test unless it runs as root.
func New(t testing.TB, label string) *NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	name := fmt.Sprintf("trt-%s-%d-%d", label, os.Getpid(), seq.Add(1))
	ns := &NS{Name: name, Path: "/var/run/netns/" + name, t: t}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.IP("link", "set", "lo", "up")
	ns.MustExec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// Do runs fn on a locked OS thread inside ns and then moves the thread back.
// Goroutines that fn starts do not run inside ns.
func (ns *NS) Do(fn func()) {
	ns.t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatalf("get current netns: %v", err)
	}
	defer orig.Close()
	target, err := netns.GetFromPath(ns.Path)
	if err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatalf("open netns %s: %v", ns.Path, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		ns.t.Fatalf("enter netns %s: %v", ns.Name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime destroys it when the
			// test goroutine exits instead of reusing it in the wrong
			// namespace.
			ns.t.Errorf("leave netns %s: %v", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// IP runs "ip -n <ns> args..." and returns its output; it fails the test on
// error.
func (ns *NS) IP(args ...string) string {
	ns.t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// WaitActive waits until ifname is up with carrier (UP, LOWER_UP) and has
// its real qdisc. Until the
// kernel's link watch activates a device that was just set up, it has the
// noop qdisc, which silently drops every frame sent through it.
func (ns *NS) WaitActive(ifname string) {
	ns.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var links []struct {
			Flags []string `json:"flags"`
			Qdisc string   `json:"qdisc"`
		}
		out := ns.IP("-j", "link", "show", ifname)
		if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
			ns.t.Fatalf("ip -n %s -j link show %s: %v: %s", ns.Name, ifname, err, out)
		}
		if slices.Contains(links[0].Flags, "UP") && slices.Contains(links[0].Flags, "LOWER_UP") && links[0].Qdisc != "noop" {
			return
		}
		if time.Now().After(deadline) {
			ns.t.Fatalf("%s in netns %s not active after 5s: %s", ifname, ns.Name, out)
		}
	}
}

// Command returns a command that runs inside ns (through ip netns exec).
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// MustExec runs a command inside ns and returns its output; it fails the
// test on error.
func (ns *NS) MustExec(name string, args ...string) string {
	ns.t.Helper()
	out, err := ns.Command(name, args...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("in netns %s: %s %s: %v: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start starts cmd (from Command) in the background; it is killed and
// reaped when the test ends if the test has not waited for it.
func (ns *NS) Start(cmd *exec.Cmd) {
	ns.t.Helper()
	if err := cmd.Start(); err != nil {
		ns.t.Fatalf("in netns %s: start %s: %v", ns.Name, strings.Join(cmd.Args, " "), err)
	}
	ns.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
}
