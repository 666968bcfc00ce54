// Command taprouterd is taprouter's per-node daemon: a userspace router that
// serves the pods' TAP devices and forwards their traffic to each other and,
// through a vxlan, udp or direct tunnel, to the taprouterd of other nodes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/daemon"
)

const usage = `NAME
    taprouterd - userspace pod router for Kubernetes nodes

SYNOPSIS
    taprouterd --config FILE [--socket PATH] [--state-dir DIR]
               [--masquerade --cluster-cidr CIDR[,CIDR...]]
               [--masquerade-remove-on-exit] [--tap-offload=false]
               [--log-format console|json] [--log-level LEVEL] [--check]
    taprouterd --kubeconfig PATH|--in-cluster [--node-name NAME]
               [--config FILE] [other options as above]
    taprouterd ready [--socket PATH] [--live]     (probe: ready --help)
    taprouterd install-cni [OPTIONS]              (init: install-cni --help)

DESCRIPTION
    taprouterd runs in a node's network namespace. It gives every pod listed in
    the config a TAP device as eth0 (pod IP /32, default route via the gateway,
    MTU = underlay MTU - tunnel overhead), answers the pods' ARP for the
    gateway, and forwards their IPv4 traffic with its own FIB and neighbour
    table: to pods on the same node, to peer nodes through the configured
    backend (vxlan, udp or direct), and to the node itself through the host
    port (a TUN named taprouter0 with a route for the pod range). The kernel's
    routing table, ip_forward, iptables and the kernel vxlan module are not on
    the pod-to-pod path. Replies of the pods' flows that the node's kernel
    forwarded (kube-proxy DNATed a Service's ClusterIP to a pod) go back
    through the host port, so that the kernel reverses the NAT.

    With --masquerade, pods' traffic to destinations outside the cluster's
    pod CIDRs leaves the node with the node's address as its source: an
    iptables chain TAPROUTER-MASQ in the nat table of the node's namespace,
    jumped to from POSTROUTING, RETURNs traffic to the cluster CIDRs and
    MASQUERADEs traffic from them (as kindnet's masq agent does). Traffic
    between pods is never NATed. taprouterd checks the rules every 10s and
    puts back what someone deleted. The node must forward
    (net.ipv4.ip_forward=1).

    With --kubeconfig or --in-cluster, taprouterd is a Kubernetes node agent:
    it watches the Node objects (client-go informer; RBAC: nodes get, list,
    watch, patch). Its own Node gives the node's pod range (spec.podCIDRs)
    and underlay address (the first IPv4 InternalIP; the underlay interface
    is the one that holds it); it waits, and logs, until the Node has both.
    Every other Node with a podCIDR and an InternalIP is a peer, added,
    changed and removed as the Nodes are. It publishes on its own Node what
    peers need (taprouter.io/* annotations, and flannel's for the vxlan
    backend) and reads flannel's, so that it exchanges pod traffic with
    kernel flannel nodes. The config file is then optional and may set only
    what the Node does not say (backend, default vxlan; vxlan/udp settings;
    gateway, default the pod range's first address; hostPort; ports); peers
    in it are refused. If the API server goes away, forwarding continues on
    the last known Nodes and resumes following them when it is back. If its
    own Node's InternalIP or podCIDRs change, taprouterd exits with status 1
    so that kubelet starts it again with them (pods keep their TAPs).

    On SIGHUP it reads the config file again and applies its peers (added,
    changed and removed ones, each logged); other changes need a restart.

    On SIGTERM or SIGINT it removes the host port and its socket and leaves the
    pods' TAP devices in place; a signal while it is still starting takes
    effect once it has started.

OPTIONS
    --config FILE       YAML configuration (see README.md, "Configuration");
                        required unless in Kubernetes mode.
    --kubeconfig PATH   Kubernetes mode, with the API server and credentials
                        of this kubeconfig file.
    --in-cluster        Kubernetes mode, with the pod's service account (what
                        the DaemonSet in deploy/ uses).
    --node-name NAME    this node's Node object (default $NODE_NAME, else the
                        hostname, lowercased, as kubelet registers it).
    --socket PATH       unix socket of the status API
                        (default %s):
                        curl --unix-socket PATH http://taprouter/v1/stats
    --state-dir DIR     where the pods attached through the API are recorded
                        (default %s), so that a restarted
                        taprouterd re-adopts their TAP devices: pods keep
                        their IP and MAC.
    --masquerade        masquerade pods' traffic leaving the cluster (see
                        above); overrides masquerade.enabled in the config
                        file. --masquerade=false turns it off.
    --cluster-cidr CIDRS
                        the cluster's pod CIDRs, IPv4, comma-separated, e.g.
                        10.244.0.0/16; required with --masquerade. They must
                        contain this node's podCIDR and every peer's.
                        Overrides masquerade.clusterCIDRs.
    --masquerade-remove-on-exit
                        delete the masquerade rules on exit. By default they
                        stay, as kindnet's do: a restart does not cut the
                        pods' egress. Overrides masquerade.removeOnExit.
    --tap-offload       offer each pod's kernel checksum offload, TSO and
                        USO on its eth0 (IFF_VNET_HDR, TUNSETOFFLOAD; on by
                        default, probed: what the kernel refuses is left
                        out). The pod then hands taprouterd 64 KB TCP
                        super-frames (and UDP_SEGMENT super-datagrams), one
                        read each, which cross the router whole: one write
                        to a pod on this node, and (direct backend) one
                        write onto the underlay; taprouterd cuts them into
                        the segments and datagrams the pod's kernel would
                        have sent only for the vxlan and udp tunnels and
                        the host.
                        --tap-offload=false: plain TAPs, one read per
                        packet. Applies to adopted TAPs too (the pod sees
                        its eth0's offloads change across the restart).
    --log-format F      console (default) or json.
    --log-level L       debug, info (default), warn or error.
    --check             validate the config file, print a one-line summary, and
                        exit. It checks that each pod's netns path exists but
                        does not open it: a path that is not a network
                        namespace, or is the node's own, is found at start.
    --help              this text.

EXIT STATUS
    0 after a clean shutdown; 1 on a runtime error (e.g. the socket is taken);
    2 on a usage or config error, with one line naming the field:
    "taprouterd: config: gateway: ...". Errors the node's state reveals while
    setting up count as config errors and name the field too: no such underlay
    interface; a pod's netns path that is gone, that is not a network
    namespace (a plain file, a FIFO), that is not a pod's namespace (the
    node's own, or the initial one), or that does not open within %s.
`

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "ready":
			return runReady(os.Args[2:], os.Stdout, os.Stderr)
		case "install-cni":
			return runInstallCNI(os.Args[2:], os.Stdout, os.Stderr)
		}
	}
	fs := flag.NewFlagSet("taprouterd", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, usage, api.DefaultSocket, daemon.DefaultStateDir, daemon.DefaultNetNSTimeout)
	}
	cfgPath := fs.String("config", "", "")
	socket := fs.String("socket", api.DefaultSocket, "")
	logFormat := fs.String("log-format", "console", "")
	logLevel := fs.String("log-level", "info", "")
	stateDir := fs.String("state-dir", daemon.DefaultStateDir, "")
	check := fs.Bool("check", false, "")
	masquerade := fs.Bool("masquerade", false, "")
	clusterCIDR := fs.String("cluster-cidr", "", "")
	masqRemove := fs.Bool("masquerade-remove-on-exit", false, "")
	tapOffload := fs.Bool("tap-offload", true, "")
	kubeconfig := fs.String("kubeconfig", "", "")
	inCluster := fs.Bool("in-cluster", false, "")
	nodeName := fs.String("node-name", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "taprouterd: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	kubeMode := *kubeconfig != "" || *inCluster
	switch {
	case *kubeconfig != "" && *inCluster:
		fmt.Fprintln(os.Stderr, "taprouterd: --kubeconfig and --in-cluster exclude each other (see --help)")
		return 2
	case *cfgPath == "" && !kubeMode:
		fmt.Fprintln(os.Stderr, "taprouterd: --config FILE is required without --kubeconfig or --in-cluster (see --help)")
		return 2
	case *nodeName != "" && !kubeMode:
		fmt.Fprintln(os.Stderr, "taprouterd: --node-name needs --kubeconfig or --in-cluster (the config file names the node)")
		return 2
	}
	log, err := newLogger(*logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: %v\n", err)
		return 2
	}
	defer log.Sync()
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	flags := func(cfg *config.Config) error {
		return applyMasqueradeFlags(cfg, set, *masquerade, *clusterCIDR, *masqRemove)
	}
	if kubeMode {
		return runKube(log, *kubeconfig, *nodeName, *cfgPath, *socket, *stateDir, *check, flags)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: config: %v\n", err)
		return 2
	}
	if err := flags(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: %v\n", err)
		return 2
	}
	if *check {
		masq := "off"
		if cfg.Masquerade.Enabled {
			masq = "outside " + prefixes(cfg.Masquerade.ClusterCIDRs)
		}
		fmt.Printf("%s: valid (node %s, backend %s, %d peers, %d ports, masquerade %s)\n", *cfgPath, cfg.Node, cfg.Backend, len(cfg.Peers), len(cfg.Ports), masq)
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "taprouterd: must run as root (it creates TAP devices and enters pod namespaces)")
		return 1
	}

	var d *daemon.Daemon
	return runNode(log, *socket, func(<-chan struct{}) (node, error) {
		var err error
		d, err = daemon.New(cfg, daemon.Options{StateDir: *stateDir, NoTAPOffload: !*tapOffload}, log)
		return d, err
	}, func() error { return d.ReloadPeers(*cfgPath) })
}

// applyMasqueradeFlags lets the flags that were set override the config
// file's masquerade fields, and validates the result in the flags' names.
func applyMasqueradeFlags(cfg *config.Config, set map[string]bool, enabled bool, cidrs string, remove bool) error {
	if !set["masquerade"] && !set["cluster-cidr"] && !set["masquerade-remove-on-exit"] {
		return nil // the file's own, validated with it
	}
	if set["masquerade"] {
		cfg.Masquerade.Enabled = enabled
	}
	if set["masquerade-remove-on-exit"] {
		cfg.Masquerade.RemoveOnExit = remove
	}
	if set["cluster-cidr"] {
		ps, err := config.ParseClusterCIDRs("--cluster-cidr", cidrs)
		if err != nil {
			return err
		}
		cfg.Masquerade.ClusterCIDRs = ps
	}
	return cfg.CheckMasquerade("--masquerade", "--cluster-cidr")
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// node is what runNode needs of a *daemon.Daemon.
type node interface {
	Listen(socket string) error
	Serve() error
	Close() error
}

// runKube runs taprouterd in Kubernetes mode (see kubeNode).
func runKube(log *zap.Logger, kubeconfig, nodeName, cfgPath, socket, stateDir string, check bool, flags func(*config.Config) error) int {
	doc, err := readDoc(cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: config: %v\n", err)
		return 2
	}
	if check {
		// Without the Node, check the file against a stand-in for it, and
		// the flags against no pod range (the stand-in's is not the node's).
		cfg, err := config.ParseForNode(doc, checkFacts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "taprouterd: config: %v\n", err)
			return 2
		}
		cfg.PodCIDR = netip.Prefix{}
		if err := flags(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "taprouterd: %v\n", err)
			return 2
		}
		name := cfgPath
		if name == "" {
			name = "no --config"
		}
		fmt.Printf("%s: valid for Kubernetes mode\n", name)
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "taprouterd: must run as root (it creates TAP devices and enters pod namespaces)")
		return 1
	}
	k, err := startKube(log, kubeconfig, nodeName, doc, flags, daemon.Options{StateDir: stateDir})
	if err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: %v\n", err)
		return 2
	}
	return runNode(log, socket, k.start, nil)
}

// runNode starts the node and serves its API on socket until SIGTERM or
// SIGINT; on SIGHUP it calls reload (if not nil). The signals are caught before start: setting up can take a while
// (a pod namespace that does not open delays it by its timeout), and a
// signal meanwhile must not kill the process with the host port and the
// router's socket left behind; the node is closed once start returns.
func runNode(log *zap.Logger, socket string, start func(quit <-chan struct{}) (node, error), reload func() error) int {
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	// quit closes at a signal while start waits for something outside the
	// process (Kubernetes mode waits for its Node); the signal is kept for
	// the check after start.
	quit, started := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			sigs <- s
			close(quit)
		case <-started:
		}
	}()
	d, err := start(quit)
	close(started)
	if errors.Is(err, errQuit) {
		log.Info("shutting down: signalled before this node's Node was complete")
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: config: %v\n", err)
		return 2
	}
	stop := func() {
		if err := d.Close(); err != nil {
			log.Warn("shutdown incomplete", zap.Error(err))
		}
		log.Info("stopped; pod TAP devices left in place")
	}
	select {
	case s := <-sigs:
		log.Info("shutting down: signalled while starting", zap.Stringer("signal", s))
		stop()
		return 0
	default:
	}
	if err := d.Listen(socket); err != nil {
		fmt.Fprintf(os.Stderr, "taprouterd: %v\n", err)
		d.Close()
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	code := 0
loop:
	for {
		select {
		case <-hups:
			if reload == nil {
				continue
			}
			log.Info("SIGHUP: reloading peers from the config file")
			if err := reload(); err != nil {
				log.Warn("reload failed", zap.Error(err))
			}
		case s := <-sigs:
			log.Info("shutting down", zap.Stringer("signal", s))
			break loop
		case err := <-served:
			log.Error("api stopped", zap.Error(err))
			code = 1
			break loop
		}
	}
	stop()
	return code
}

func newLogger(format, level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.Set(level); err != nil {
		return nil, fmt.Errorf("--log-level: %q: want debug, info, warn or error", level)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.DisableStacktrace = true // errors are one line; stack traces are for panics
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	switch format {
	case "json":
	case "console":
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	default:
		return nil, fmt.Errorf("--log-format: %q: want console or json", format)
	}
	return zc.Build()
}
