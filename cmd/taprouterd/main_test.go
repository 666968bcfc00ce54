package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/daemon"
)

// fakeNode counts runNode's calls; Serve blocks until Close.
type fakeNode struct {
	listens, closes atomic.Int32
	closed          chan struct{}
}

func (n *fakeNode) Listen(string) error { n.listens.Add(1); return nil }
func (n *fakeNode) Serve() error        { <-n.closed; return nil }
func (n *fakeNode) Close() error {
	if n.closes.Add(1) == 1 {
		close(n.closed)
	}
	return nil
}

// A SIGTERM while the node starts is caught (before, signal.Notify came
// only after daemon.New, and the signal killed the process, leaving the
// host port and the socket behind): the node is closed once it has
// started, and taprouterd exits 0. The signal is a real one, to this test
// process, which it would kill were it not caught.
func TestSignalDuringStart(t *testing.T) {
	n := &fakeNode{closed: make(chan struct{})}
	code := runNode(zap.NewNop(), "/nonexistent.sock", func(<-chan struct{}) (node, error) {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitDelivered(t, syscall.SIGTERM)
		return n, nil
	}, nil)
	if code != 0 || n.closes.Load() != 1 {
		t.Errorf("exit %d, Close called %d times; want 0 and 1", code, n.closes.Load())
	}
	if l := n.listens.Load(); l > 1 {
		t.Errorf("Listen called %d times", l)
	}
}

// waitDelivered waits until sig is no longer pending for the process (a
// thread took it: caught, or the process is dying of it).
func waitDelivered(t *testing.T, sig syscall.Signal) {
	for {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		pending := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "ShdPnd:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				pending = mask&(1<<(sig-1)) != 0
			}
		}
		if !pending {
			return
		}
		runtime.Gosched()
	}
}

// A start that fails is a config error (exit 2), and nothing is closed.
func TestStartFails(t *testing.T) {
	if code := runNode(zap.NewNop(), "/nonexistent.sock", func(<-chan struct{}) (node, error) { return nil, errors.New("ports[0].netns: gone") }, nil); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
}

// --help names every refusal of a pod's netns path that start reports as a
// config error, and says what --check does not look at.
func TestHelpText(t *testing.T) {
	text := fmt.Sprintf(usage, api.DefaultSocket, daemon.DefaultStateDir, daemon.DefaultNetNSTimeout)
	for _, want := range []string{"that is gone", "not a network\n    namespace", "not a pod's namespace (the\n    node's own", "does not open within 5s",
		"does not open it", "--check"} {
		if !strings.Contains(text, want) {
			t.Errorf("--help does not say %q", want)
		}
	}
	if strings.Contains(text, "%!") {
		t.Errorf("--help has a bad format verb:\n%s", text)
	}
	for i, line := range strings.Split(text, "\n") {
		if len(line) > 80 {
			t.Errorf("--help line %d is %d columns: %q", i+1, len(line), line)
		}
	}
}

// SIGHUP while serving calls reload, once per signal, and does not stop
// the node; SIGTERM then does.
func TestSIGHUPReloads(t *testing.T) {
	n := &fakeNode{closed: make(chan struct{})}
	reloaded := make(chan struct{}, 4)
	done := make(chan int, 1)
	go func() {
		done <- runNode(zap.NewNop(), "/nonexistent.sock", func(<-chan struct{}) (node, error) { return n, nil }, func() error {
			reloaded <- struct{}{}
			return errors.New("a bad file: logged, the node goes on")
		})
	}()
	for n.listens.Load() == 0 {
		runtime.Gosched()
	}
	for range 2 {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		<-reloaded
	}
	if n.closes.Load() != 0 {
		t.Fatal("SIGHUP closed the node")
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 || n.closes.Load() != 1 {
		t.Errorf("exit %d, Close called %d times; want 0 and 1", code, n.closes.Load())
	}
}

// The masquerade flags override the file's fields, and are validated under
// their own names.
func TestMasqueradeFlags(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{PodCIDR: netip.MustParsePrefix("10.244.0.0/24"),
			Peers: []config.Peer{{Node: "node2", PodCIDR: netip.MustParsePrefix("10.244.1.0/24")}}}
	}
	cfg := base()
	if err := applyMasqueradeFlags(cfg, map[string]bool{"masquerade": true, "cluster-cidr": true}, true, "10.244.0.0/16", false); err != nil {
		t.Fatal(err)
	}
	if m := cfg.Masquerade; !m.Enabled || len(m.ClusterCIDRs) != 1 || m.ClusterCIDRs[0] != netip.MustParsePrefix("10.244.0.0/16") || m.RemoveOnExit {
		t.Errorf("masquerade %+v", m)
	}
	// --masquerade=false turns off what the file turned on.
	cfg = base()
	cfg.Masquerade.Enabled = true
	if err := applyMasqueradeFlags(cfg, map[string]bool{"masquerade": true}, false, "", false); err != nil || cfg.Masquerade.Enabled {
		t.Errorf("--masquerade=false: %+v, %v", cfg.Masquerade, err)
	}
	for _, tc := range []struct {
		set   []string
		cidrs string
		want  string
	}{
		{[]string{"masquerade"}, "", "--cluster-cidr: missing: the cluster's pod CIDR(s), required with --masquerade"},
		{[]string{"masquerade", "cluster-cidr"}, "10.244.0.0/16,nonsense", `--cluster-cidr: "nonsense" is not an IPv4 prefix like 10.244.0.0/16`},
		{[]string{"masquerade", "cluster-cidr"}, "10.9.0.0/16", "--cluster-cidr: 10.9.0.0/16 does not contain podCIDR 10.244.0.0/24"},
		{[]string{"masquerade", "cluster-cidr"}, "10.244.0.0/24", "--cluster-cidr: 10.244.0.0/24 does not contain peers[0].podCIDR 10.244.1.0/24 (node node2)"},
	} {
		set := map[string]bool{}
		for _, s := range tc.set {
			set[s] = true
		}
		err := applyMasqueradeFlags(base(), set, true, tc.cidrs, false)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v %q: error %v, want %q", tc.set, tc.cidrs, err, tc.want)
		}
	}
}

// A signal while start waits for something outside the process (Kubernetes
// mode waits for its Node to be complete) closes quit; start gives up and
// taprouterd exits 0 without a node to close.
func TestSignalWhileWaitingForNode(t *testing.T) {
	gaveUp := make(chan struct{})
	code := runNode(zap.NewNop(), "/nonexistent.sock", func(quit <-chan struct{}) (node, error) {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		<-quit
		close(gaveUp)
		return nil, errQuit
	}, nil)
	select {
	case <-gaveUp:
	default:
		t.Fatal("start returned without quit closing")
	}
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// --check in Kubernetes mode checks the file and the flags without the
// Node: a cluster CIDR is not held against the stand-in's pod range (it
// once was: 10.0.0.0/16 "does not contain podCIDR 10.244.0.0/24"), a bad
// one still fails.
func TestKubeCheck(t *testing.T) {
	flags := func(cidrs string) func(*config.Config) error {
		return func(cfg *config.Config) error {
			return applyMasqueradeFlags(cfg, map[string]bool{"masquerade": true, "cluster-cidr": true}, true, cidrs, false)
		}
	}
	if code := runKube(zap.NewNop(), "", "", "", "", "", true, flags("10.0.0.0/16")); code != 0 {
		t.Errorf("--check --masquerade --cluster-cidr 10.0.0.0/16: exit %d, want 0", code)
	}
	if code := runKube(zap.NewNop(), "", "", "", "", "", true, flags("10.0.0.0/33")); code != 2 {
		t.Errorf("--check --cluster-cidr 10.0.0.0/33: exit %d, want 2", code)
	}
}
