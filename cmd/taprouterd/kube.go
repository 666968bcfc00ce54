package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/daemon"
	"github.com/taprouter/taprouter/kube"
	"github.com/taprouter/taprouter/peers"
	"github.com/taprouter/taprouter/podnet"
)

// kubeNode is taprouterd in Kubernetes mode: the node's identity and its
// peers come from the Node objects (package kube), and the config file, if
// any, sets only the rest (config.ParseForNode).
type kubeNode struct {
	log     *zap.Logger
	doc     []byte                     // the config file, nil without --config
	flags   func(*config.Config) error // applies the command line's settings
	opts    daemon.Options
	watcher *kube.Watcher
	cancel  context.CancelFunc
	stopped chan struct{} // closed when the watcher's Run returned

	first   chan startResult // the daemon, once the own Node was complete
	restart chan struct{}    // closed when the own Node's address or range changed

	mu   sync.Mutex
	d    *daemon.Daemon // nil until the first change, and after a failed start
	self kube.Self      // what the daemon was started with
}

type startResult struct {
	d   *daemon.Daemon
	err error
}

// errQuit is start's answer to a signal that came before the own Node
// was complete.
var errQuit = errors.New("signalled before the Node was complete")

// startKube connects to the API server and starts the Node watcher; the
// daemon itself starts at the watcher's first change (start).
func startKube(log *zap.Logger, kubeconfig, nodeFlag string, doc []byte, flags func(*config.Config) error, opts daemon.Options) (*kubeNode, error) {
	name := kube.NodeName(nodeFlag)
	if name == "" {
		return nil, errors.New("--node-name: not given, $NODE_NAME is empty and the hostname unreadable")
	}
	rc, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	client, err := kube.NewClientset(rc)
	if err != nil {
		return nil, err
	}
	k := &kubeNode{log: log, doc: doc, flags: flags, opts: opts, first: make(chan startResult, 1), stopped: make(chan struct{}), restart: make(chan struct{})}
	k.watcher, err = kube.New(kube.Config{Client: client, NodeName: name, OnChange: k.change, Log: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go func() {
		defer close(k.stopped)
		if err := k.watcher.Run(ctx); err != nil {
			log.Error("Node watcher stopped", zap.Error(err))
		}
	}()
	log.Info("waiting for this node's Node object (podCIDR and InternalIP)", zap.String("node", name), zap.String("server", rc.Host))
	return k, nil
}

// start waits until the daemon has started from the own Node, or quit.
func (k *kubeNode) start(quit <-chan struct{}) (node, error) {
	select {
	case r := <-k.first:
		if r.err != nil {
			k.stop()
			return nil, r.err
		}
		return &kubeDaemon{Daemon: r.d, k: k}, nil
	case <-quit:
		k.stop()
		return nil, errQuit
	}
}

// stop ends the watcher and waits for it.
func (k *kubeNode) stop() {
	k.cancel()
	<-k.stopped
}

// change is the watcher's OnChange: the first complete Node starts the
// daemon; every call applies the desired peers.
func (k *kubeNode) change(self kube.Self, desired []peers.Peer) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.d == nil {
		if k.first == nil {
			return // the start failed: nothing to apply to
		}
		d, cfg, err := k.startDaemon(self)
		k.first <- startResult{d, err}
		if err != nil {
			k.first = nil
			return
		}
		k.d, k.self = d, self
		if err := k.watcher.SetAnnouncement(kube.Announcement{Backend: cfg.Backend, PublicIP: self.Addr, VTEPMAC: cfg.VXLAN.MAC, VNI: cfg.VXLAN.VNI}); err != nil {
			k.log.Error("cannot announce this node to its peers", zap.Error(err))
		}
	} else if self.Addr != k.self.Addr || !slices.Equal(self.PodCIDRs, k.self.PodCIDRs) {
		// The tunnel's socket, the host port's routes and the pods'
		// gateway hang on both: start again with the new ones (the
		// pods keep their TAPs, as over any restart).
		k.log.Warn("this node's InternalIP or podCIDRs changed: exiting to start again with them",
			zap.Stringer("was", k.self.Addr), zap.Stringer("now", self.Addr), zap.Any("podCIDRs", self.PodCIDRs))
		select {
		case <-k.restart:
		default:
			close(k.restart)
		}
		return
	}
	k.d.ApplyPeers("kubernetes", desired)
}

// startDaemon builds the node's configuration from its Node and the file,
// and starts the daemon.
func (k *kubeNode) startDaemon(self kube.Self) (*daemon.Daemon, *config.Config, error) {
	if len(self.PodCIDRs) == 0 {
		return nil, nil, fmt.Errorf("Node %s has no IPv4 podCIDR", self.Node)
	}
	ifname, err := podnet.InterfaceWithAddr(self.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("Node %s InternalIP %s: %w", self.Node, self.Addr, err)
	}
	if len(self.PodCIDRs) > 1 {
		k.log.Warn("the Node has several podCIDRs; taprouter routes the first", zap.Stringer("podCIDR", self.PodCIDRs[0]))
	}
	cfg, err := config.ParseForNode(k.doc, config.NodeFacts{
		Node: self.Node, PodCIDR: self.PodCIDRs[0], UnderlayAddress: self.Addr, UnderlayInterface: ifname,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	if err := k.flags(cfg); err != nil {
		return nil, nil, err
	}
	k.log.Info("this node's Node is complete", zap.String("node", self.Node), zap.Stringer("podCIDR", cfg.PodCIDR),
		zap.Stringer("internalIP", self.Addr), zap.String("underlay", ifname), zap.String("backend", cfg.Backend))
	d, err := daemon.New(cfg, k.opts, k.log)
	return d, cfg, err
}

// kubeDaemon is the daemon of Kubernetes mode: closing it also stops the
// watcher, first, so that no change arrives at a closed daemon.
type kubeDaemon struct {
	*daemon.Daemon
	k *kubeNode
}

// errNodeChanged ends Serve when the own Node's address or range changed.
var errNodeChanged = errors.New("this node's InternalIP or podCIDRs changed; restart to follow them")

// Serve answers the API until the daemon closes or the own Node changes
// what the daemon was started with.
func (d *kubeDaemon) Serve() error {
	served := make(chan error, 1)
	go func() { served <- d.Daemon.Serve() }()
	select {
	case err := <-served:
		return err
	case <-d.k.restart:
		return errNodeChanged
	}
}

func (d *kubeDaemon) Close() error {
	d.k.stop()
	return d.Daemon.Close()
}

// readDoc reads the optional config file of Kubernetes mode.
func readDoc(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

// checkFacts stand in for the Node in --check: the file's own fields are
// checked, the Node's are not known.
var checkFacts = config.NodeFacts{
	Node: "check", PodCIDR: netip.MustParsePrefix("10.244.0.0/24"),
	UnderlayAddress: netip.MustParseAddr("192.0.2.1"), UnderlayInterface: "eth0",
}
