package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/peers"
)

// node builds a Node; empty ip or cidr leaves the field out.
func node(name, ip, cidr string, ann map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	if cidr != "" {
		n.Spec.PodCIDR = cidr
		n.Spec.PodCIDRs = []string{cidr}
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalIP, Address: ip},
		}
	}
	return n
}

func peer(name, ip, cidr string) peers.Peer {
	return peers.Peer{Node: name, Addr: netip.MustParseAddr(ip), PodCIDRs: []netip.Prefix{netip.MustParsePrefix(cidr)}}
}

func mac(s string) link.HardwareAddr {
	m, err := link.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// handout is one call of OnChange.
type handout struct {
	self  Self
	peers []peers.Peer
	at    time.Time
}

func (h handout) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "self %s %s %v; peers:", h.self.Node, h.self.Addr, h.self.PodCIDRs)
	for _, p := range h.peers {
		fmt.Fprintf(&b, " {%s %s %v %q %s}", p.Node, p.Addr, p.PodCIDRs, p.Backend, p.VTEPMAC)
	}
	return b.String()
}

// fakeAPI is client-go's fake clientset with an outage switch and a handle
// on the informer's current watch.
type fakeAPI struct {
	cs      *fake.Clientset
	mu      sync.Mutex
	down    bool
	current watch.Interface
	expire  bool // the next watch fails with 410 Expired: the informer re-lists
	watches chan struct{}
	lists   int
	version int // the last resourceVersion handed out
}

var errDown = errors.New("dial tcp 192.0.2.1:6443: connect: connection refused")

func newFakeAPI(nodes ...*corev1.Node) *fakeAPI {
	f := &fakeAPI{watches: make(chan struct{}, 100)}
	objs := make([]runtime.Object, len(nodes))
	for i, n := range nodes {
		n = n.DeepCopy()
		n.ResourceVersion = f.nextVersion()
		objs[i] = n
	}
	f.cs = fake.NewClientset(objs...)
	// client-go's tracker leaves resourceVersion alone; the API server
	// gives every write a new one, which the watcher relies on to tell
	// a cache that has not seen its patch yet from a Node stripped again.
	f.cs.PrependReactor("*", "nodes", f.versionedWrite)
	f.cs.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lists++
		if f.down {
			return true, nil, errDown
		}
		return false, nil, nil
	})
	f.cs.PrependWatchReactor("nodes", func(a k8stesting.Action) (bool, watch.Interface, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.down {
			return true, nil, errDown
		}
		if f.expire {
			f.expire = false
			return true, nil, apierrors.NewResourceExpired("too old resource version: 1 (5)")
		}
		w, err := f.cs.Tracker().Watch(a.GetResource(), a.GetNamespace(), a.(k8stesting.WatchActionImpl).ListOptions)
		f.current = w
		f.watches <- struct{}{}
		return true, w, err
	})
	return f
}

func (f *fakeAPI) nextVersion() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	return fmt.Sprint(f.version)
}

var nodesResource = corev1.SchemeGroupVersion.WithResource("nodes")

// versionedWrite does creates, updates and the watcher's merge patches of
// metadata.annotations (the only patch it makes) with a new
// resourceVersion each, as the API server does.
func (f *fakeAPI) versionedWrite(a k8stesting.Action) (bool, runtime.Object, error) {
	tr := f.cs.Tracker()
	switch a.GetVerb() { // not a type switch: an UpdateAction is also a CreateAction
	case "create":
		n := a.(k8stesting.CreateAction).GetObject().(*corev1.Node).DeepCopy()
		n.ResourceVersion = f.nextVersion()
		return true, n, tr.Create(nodesResource, n, "")
	case "update":
		n := a.(k8stesting.UpdateAction).GetObject().(*corev1.Node).DeepCopy()
		n.ResourceVersion = f.nextVersion()
		return true, n, tr.Update(nodesResource, n, "")
	case "patch":
		a := a.(k8stesting.PatchAction)
		if a.GetPatchType() != types.MergePatchType {
			return true, nil, fmt.Errorf("fake API: %s patch not supported", a.GetPatchType())
		}
		var p struct {
			Metadata struct {
				Annotations map[string]*string `json:"annotations"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(a.GetPatch(), &p); err != nil {
			return true, nil, err
		}
		obj, err := tr.Get(nodesResource, "", a.GetName())
		if err != nil {
			return true, nil, err
		}
		n := obj.(*corev1.Node).DeepCopy()
		for k, v := range p.Metadata.Annotations {
			if v == nil {
				delete(n.Annotations, k)
				continue
			}
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			n.Annotations[k] = *v
		}
		n.ResourceVersion = f.nextVersion()
		return true, n, tr.Update(nodesResource, n, "")
	}
	return false, nil, nil
}

// breakWatch ends the informer's watch, as a dropped connection does.
func (f *fakeAPI) breakWatch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil {
		f.current.Stop()
		f.current = nil
	}
}

func (f *fakeAPI) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeAPI) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

// waitWatch waits until the informer has a watch open: changes made before
// that could fall between its list and its watch, which the fake does not
// replay.
func (f *fakeAPI) waitWatch(t *testing.T) {
	t.Helper()
	f.waitWatchWithin(t, 10*time.Second)
}

// waitWatchWithin is waitWatch with a timeout: after failed watches
// client-go's reflector backs off (up to 30 s with as much jitter again).
func (f *fakeAPI) waitWatchWithin(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-f.watches:
	case <-time.After(timeout):
		t.Fatalf("the informer opened no watch in %v", timeout)
	}
}

func (f *fakeAPI) update(t *testing.T, n *corev1.Node) {
	t.Helper()
	if _, err := f.cs.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) create(t *testing.T, n *corev1.Node) {
	t.Helper()
	if _, err := f.cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) delete(t *testing.T, name string) {
	t.Helper()
	if err := f.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// running is a Watcher under test with its handouts and logs.
type running struct {
	w     *Watcher
	got   chan handout
	logs  *observer.ObservedLogs
	errc  chan error
	start time.Time
}

func startWatcher(t *testing.T, cfg Config) *running {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	r := &running{got: make(chan handout, 1000), logs: logs, errc: make(chan error, 1), start: time.Now()}
	cfg.Log = zap.New(core)
	cfg.OnChange = func(self Self, desired []peers.Peer) {
		r.got <- handout{self: self, peers: desired, at: time.Now()}
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.errc <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

// next returns the next handout, failing t after timeout.
func (r *running) next(t *testing.T, timeout time.Duration) handout {
	t.Helper()
	select {
	case h := <-r.got:
		return h
	case <-time.After(timeout):
		t.Fatalf("no handout within %v; logs:\n%s", timeout, r.dump())
		return handout{}
	}
}

// expect fails t unless the next handout is exactly self and want.
func (r *running) expect(t *testing.T, self Self, want ...peers.Peer) handout {
	t.Helper()
	h := r.next(t, 5*time.Second)
	if want == nil {
		want = []peers.Peer{}
	}
	exp := handout{self: self, peers: want}
	if !sameSelf(h.self, self) || !samePeers(h.peers, want) {
		t.Fatalf("handout\n got %s\nwant %s", h, exp)
	}
	return h
}

// none fails t if a handout arrives within d.
func (r *running) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case h := <-r.got:
		t.Fatalf("unexpected handout %s", h)
	case <-time.After(d):
	}
}

// count returns how many log lines contain msg.
func (r *running) count(msg string) int {
	return r.logs.FilterMessageSnippet(msg).Len()
}

// waitCount waits up to 5 s for n log lines containing msg (the watcher
// logs after the API call it reports has returned), then 200 ms more, and
// returns how many there are: exactly n unless too few came or more
// followed.
func (r *running) waitCount(msg string, n int) int {
	for deadline := time.Now().Add(5 * time.Second); r.count(msg) < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return r.count(msg)
}

func (r *running) dump() string {
	var b strings.Builder
	for _, e := range r.logs.All() {
		fmt.Fprintf(&b, "  %s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}

func self(name, ip, cidr string) Self {
	return Self{Node: name, Addr: netip.MustParseAddr(ip), PodCIDRs: []netip.Prefix{netip.MustParsePrefix(cidr)}}
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
