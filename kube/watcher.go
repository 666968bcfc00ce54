package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/taprouter/taprouter/peers"
)

// DefaultDebounce is how long the watcher gathers Node events before it
// computes the desired set once for all of them.
const DefaultDebounce = 50 * time.Millisecond

// Config configures a Watcher.
type Config struct {
	// Client talks to the API server (NewClientset).
	Client kubernetes.Interface
	// NodeName is this node's Node (NodeName).
	NodeName string
	// OnChange receives this node and the full desired peer set, sorted
	// by node name, whenever either differs from what it last received.
	// It is called from Run's goroutine, one call at a time; it must not
	// modify what it is given.
	OnChange func(self Self, desired []peers.Peer)
	// Announce is published on this node's Node (SetAnnouncement replaces
	// it); a zero Backend publishes nothing.
	// nothing.
	Announce Announcement
	// Log gets one line per state change; nil logs nothing.
	Log *zap.Logger
	// Debounce is the window that coalesces a burst of events; 0 means
	// DefaultDebounce.
	Debounce time.Duration
}

// Watcher is the Kubernetes source of truth: a shared informer on Nodes,
// turned into desired peer sets, and this node's announcement. Run it once.
type Watcher struct {
	cfg      Config
	log      *zap.Logger
	informer cache.SharedIndexInformer
	kick     chan struct{} // an event arrived since the last sync
	publish  chan struct{} // this node's Node changed: check the announcement

	// Owned by Run's goroutine.
	nodes      map[string]nodeInfo
	handedOut  bool
	lastSelf   Self
	lastPeers  []peers.Peer
	selfAbsent bool // logged that our Node does not exist

	announceMu sync.Mutex
	announce   Announcement // under announceMu: what publishLoop publishes

	apiMu     sync.Mutex
	apiFail   string // what is wrong with the API server, "" when nothing
	apiSynced bool
}

// New checks cfg and returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("kube: Config.Client is nil")
	case cfg.NodeName == "":
		return nil, errors.New("kube: Config.NodeName is empty")
	case cfg.OnChange == nil:
		return nil, errors.New("kube: Config.OnChange is nil")
	case cfg.Announce.Backend != "" && !isBackend(cfg.Announce.Backend):
		return nil, fmt.Errorf("kube: Announce.Backend %q: want vxlan, udp or direct", cfg.Announce.Backend)
	case cfg.Announce.PublicIP.IsValid() && !cfg.Announce.PublicIP.Is4():
		return nil, fmt.Errorf("kube: Announce.PublicIP %s is not IPv4", cfg.Announce.PublicIP)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &Watcher{
		cfg:      cfg,
		log:      log.With(zap.String("node", cfg.NodeName)),
		kick:     make(chan struct{}, 1),
		publish:  make(chan struct{}, 1),
		nodes:    make(map[string]nodeInfo),
		announce: cfg.Announce,
	}, nil
}

// SetAnnouncement replaces what this node publishes on its Node (the
// daemon knows its backend and VTEP MAC only once it has started from the
// Node); it is published at once, and again whenever the Node loses it.
// It may be called at any time, also before Run.
func (w *Watcher) SetAnnouncement(a Announcement) error {
	if a.Backend != "" && !isBackend(a.Backend) {
		return fmt.Errorf("kube: Announcement.Backend %q: want vxlan, udp or direct", a.Backend)
	}
	if a.PublicIP.IsValid() && !a.PublicIP.Is4() {
		return fmt.Errorf("kube: Announcement.PublicIP %s is not IPv4", a.PublicIP)
	}
	w.announceMu.Lock()
	w.announce = a
	w.announceMu.Unlock()
	signal(w.publish)
	return nil
}

func (w *Watcher) announcement() Announcement {
	w.announceMu.Lock()
	defer w.announceMu.Unlock()
	return w.announce
}

// Run watches Nodes until ctx is done and hands out desired sets to
// Config.OnChange: the first once the initial list is in and this node has
// its podCIDR and InternalIP, then one per change. While the API server is
// unreachable the last set stays; a re-list that changes nothing hands out
// nothing. Run returns nil when ctx is done, after its goroutines ended.
func (w *Watcher) Run(ctx context.Context) error {
	if w.informer != nil {
		return errors.New("kube: Watcher.Run called twice")
	}
	w.informer = w.newInformer()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { w.informer.RunWithContext(ctx) })
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return nil
	}
	w.apiMu.Lock()
	w.apiSynced = true
	w.apiMu.Unlock()
	w.log.Info("Node list synced", zap.Int("nodes", len(w.informer.GetStore().ListKeys())))
	wg.Go(func() { w.publishLoop(ctx) })
	timer := time.NewTimer(0)
	<-timer.C
	for {
		w.sync()
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		timer.Reset(w.cfg.Debounce)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		select {
		case <-w.kick: // included in this sync
		default:
		}
	}
}

func (w *Watcher) newInformer() cache.SharedIndexInformer {
	nodes := w.cfg.Client.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			l, err := nodes.List(ctx, opts)
			w.apiResult(ctx, err)
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			wi, err := nodes.Watch(ctx, opts)
			w.apiResult(ctx, err)
			return wi, err
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(lw, w.cfg.Client),
		&corev1.Node{},
		cache.SharedIndexInformerOptions{ResyncPeriod: 0},
	)
	// Errors are set before Run, so these cannot fail.
	_ = inf.SetTransform(slimNode)
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		w.apiResult(ctx, err)
	})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.event(obj) },
		UpdateFunc: func(_, obj any) { w.event(obj) },
		DeleteFunc: func(obj any) { w.event(obj) },
	})
	return inf
}

// event notes a Node event for the sync loop, and for the publisher when
// it concerns this node.
func (w *Watcher) event(obj any) {
	signal(w.kick)
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*corev1.Node); ok && n.Name == w.cfg.NodeName {
		signal(w.publish)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// apiResult records the outcome of a list, a watch or a dropped watch, and
// logs when the API server becomes unreachable and when it answers again.
// The reflector retries a watch refused by a closed port without calling
// its WatchErrorHandler, so only the calls themselves show every outage.
func (w *Watcher) apiResult(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // shutting down
	}
	fail := ""
	switch {
	case err == nil, apierrors.IsResourceExpired(err), apierrors.IsGone(err):
		// An expired resourceVersion is an answer: re-list.
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		fail = "denied"
	default:
		fail = "unreachable"
	}
	w.apiMu.Lock()
	was, synced := w.apiFail, w.apiSynced
	w.apiFail = fail
	w.apiMu.Unlock()
	switch {
	case fail == was:
	case fail == "denied":
		w.log.Error("API server denies listing or watching Nodes (RBAC: get, list, watch, patch on nodes)", zap.Error(err))
	case fail == "unreachable" && synced:
		w.log.Warn("API server unreachable, forwarding on last known state", zap.Error(err))
	case fail == "unreachable":
		w.log.Warn("API server unreachable, waiting for the first Node list", zap.Error(err))
	default:
		w.log.Info("API server reachable again, resyncing", zap.String("was", was))
	}
}

// sync computes the desired set from the informer's store and hands it
// out if it differs from the last one.
func (w *Watcher) sync() {
	objs := w.informer.GetStore().List()
	seen := make(map[string]bool, len(objs))
	desired := make([]peers.Peer, 0, len(objs))
	var self *nodeInfo
	for _, obj := range objs {
		n, ok := obj.(*corev1.Node)
		if !ok {
			continue
		}
		seen[n.Name] = true
		info, ok := w.nodes[n.Name]
		if !ok || info.resourceVersion != n.ResourceVersion || n.ResourceVersion == "" {
			info = w.parsed(n, info, ok)
		}
		if n.Name == w.cfg.NodeName {
			self = &info
			continue
		}
		if info.wait == "" {
			desired = append(desired, info.peer)
		}
	}
	for name := range w.nodes {
		if !seen[name] {
			delete(w.nodes, name)
			w.log.Info("Node deleted", zap.String("peer", name))
		}
	}
	if self == nil {
		if !w.selfAbsent {
			w.log.Warn("this node's Node object does not exist; waiting for it")
			w.selfAbsent = true
		}
		return
	}
	w.selfAbsent = false
	if self.wait != "" || !self.self.Addr.IsValid() {
		return // parsed logged why
	}
	slices.SortFunc(desired, func(a, b peers.Peer) int { return strings.Compare(a.Node, b.Node) })
	if w.handedOut && sameSelf(w.lastSelf, self.self) && samePeers(w.lastPeers, desired) {
		return
	}
	w.handedOut, w.lastSelf, w.lastPeers = true, self.self, desired
	w.cfg.OnChange(self.self, desired)
}

// parsed parses n, remembers it and logs what changed in what it says
// about itself: waiting for a podCIDR or an address, skipped annotations.
func (w *Watcher) parsed(n *corev1.Node, old nodeInfo, known bool) nodeInfo {
	info := parseNode(n)
	if n.Name == w.cfg.NodeName && info.wait == "" && !info.self.Addr.IsValid() {
		// This node needs its own InternalIP, whatever it announces.
		info.wait = "no IPv4 InternalIP yet"
	}
	w.nodes[n.Name] = info
	log := w.log.With(zap.String("peer", n.Name))
	if n.Name == w.cfg.NodeName {
		log = w.log
	}
	if info.wait != old.wait || !known {
		switch {
		case info.wait != "" && n.Name == w.cfg.NodeName:
			log.Warn("waiting for this node's Node: cannot forward before it has them", zap.String("reason", info.wait))
		case info.wait != "":
			log.Info("waiting for Node", zap.String("reason", info.wait))
		case known:
			log.Info("Node ready", zap.Stringer("addr", info.peer.Addr), zap.Stringers("podCIDRs", info.peer.PodCIDRs))
		}
	}
	if !slices.Equal(info.problems, old.problems) && len(info.problems) > 0 {
		log.Warn("Node annotations skipped, using the next source or the default", zap.Strings("problems", info.problems))
	}
	return info
}

// publishLoop keeps this node's annotations equal to the announcement: it
// patches them when the Node lacks them (also after the Node was deleted
// and registered again), and retries with a backoff while patches fail.
func (w *Watcher) publishLoop(ctx context.Context) {
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	var retry <-chan time.Time
	var patchedUID types.UID
	var patchedFrom string // resourceVersion the last patch was made on
	failing := false
	signal(w.publish)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.publish:
		case <-retry:
			retry = nil
		}
		obj, ok, _ := w.informer.GetStore().GetByKey(w.cfg.NodeName)
		if !ok {
			continue
		}
		n := obj.(*corev1.Node)
		internal := parseNode(n).self.Addr
		a := w.announcement()
		if a.Backend == "" {
			continue // nothing to announce (yet)
		}
		if !a.PublicIP.IsValid() && !internal.IsValid() {
			continue // nothing to announce yet; sync logs why
		}
		want := a.annotations(internal)
		if annotationsMatch(n.Annotations, want) {
			continue
		}
		if patchedFrom != "" && n.UID == patchedUID && n.ResourceVersion == patchedFrom {
			continue // the cache has not seen our patch yet
		}
		err := w.patch(ctx, want)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				w.log.Warn("cannot publish this node's annotations; retrying", zap.Error(err))
				failing = true
			}
			retry = time.After(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		if failing {
			w.log.Info("published this node's annotations again")
		} else {
			w.log.Info("published this node's annotations", zap.Any("annotations", want))
		}
		failing, backoff = false, minBackoff
		patchedUID, patchedFrom = n.UID, n.ResourceVersion
	}
}

// patch merges want into the Node's metadata.annotations (nil removes):
// the only write the watcher makes, so RBAC needs only patch on nodes.
func (w *Watcher) patch(ctx context.Context, want map[string]*string) error {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = w.cfg.Client.CoreV1().Nodes().Patch(ctx, w.cfg.NodeName, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: "taprouterd"})
	return err
}
