// Command taprouter-cluster runs a whole Kubernetes cluster on this machine,
// networked by taprouter, for people and for the tests (make cluster-up,
// make cluster-down); see package internal/kubecluster.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/taprouter/taprouter/internal/kubecluster"
)

const usage = `NAME
    taprouter-cluster - a Kubernetes cluster in network namespaces, networked by taprouter

SYNOPSIS
    taprouter-cluster up [--dir DIR] [--name NAME] [--nodes N] [--backend B]
                         [--bin-dir DIR] [--image FILE]... [--manifests PATH]...
                         [--keep-on-failure]
    taprouter-cluster down [--dir DIR]

DESCRIPTION
    up starts etcd, kube-apiserver, kube-controller-manager and
    kube-scheduler in a control-plane network namespace (192.168.49.250),
    and N nodes (192.168.49.2, .3, ...), each a network namespace with its
    own hostname and mount namespace, running containerd, kubelet and
    kube-proxy. It imports the image tarballs into every node's containerd,
    installs CoreDNS, applies the manifests (taprouter's deploy/: its
    DaemonSet installs the CNI plugin on every node), waits until every
    node is Ready and kube-system's pods run, and returns, leaving the
    cluster running. It prints:

        KUBECONFIG=DIR/admin.kubeconfig
        NETNS=NAME-cp

    The API server is reachable only from inside the cluster's namespaces,
    never from the machine's own: run clients with
        ip netns exec NAME-cp kubectl --kubeconfig DIR/admin.kubeconfig get pods -A
    and upstream e2e specs with bin/k8s/e2e.test the same way.

    down removes the cluster whose state is in DIR: it stops the kubelets,
    removes every pod sandbox (so each pod's CNI DEL runs), kills every
    process in the cluster's namespaces and cgroups, and removes cgroups,
    mounts, namespaces and DIR. It also cleans up after an up that failed
    or was killed. Nothing is ever configured in the machine's root network
    namespace.

OPTIONS
    --dir DIR         the cluster's state, certificates, configuration and
                      logs (default /tmp/taprouter-cluster); not under /run,
                      /var/lib, /var/log or /opt, which nodes mount over.
    --name NAME       prefix of its namespaces and cgroups, 1-10 of a-z0-9
                      (default trc).
    --nodes N         number of nodes (default 3).
    --backend B       taprouter's backend: vxlan, udp or direct (default:
                      what the manifests say, vxlan).
    --bin-dir DIR     the binaries of make k8s-tools (default bin/k8s).
    --image FILE      an image tarball to import into every node; repeat.
                      Default: every bin/images/*.tar (make images).
    --manifests PATH  a manifest file or directory to apply; repeat
                      (default deploy).
    --keep-on-failure when up fails, leave what it made (for its logs in
                      DIR/logs); remove it with down.

EXIT STATUS
    0 when the cluster is up (or down), 1 on failure (up removes what it
    made), 2 on a usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "taprouter-cluster: no command (up, down, help); see taprouter-cluster --help\n")
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet("taprouter-cluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // a flag error says what was wrong; --help prints the manual
	for _, a := range args[1:] {
		if a == "-h" || a == "--help" || a == "-help" {
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	dir := fs.String("dir", "/tmp/taprouter-cluster", "")
	var name, backend, binDir *string
	var nodes *int
	var keep *bool
	var images, manifests multi
	if cmd == "up" {
		name = fs.String("name", "trc", "")
		nodes = fs.Int("nodes", 3, "")
		backend = fs.String("backend", "", "")
		binDir = fs.String("bin-dir", "bin/k8s", "")
		fs.Var(&images, "image", "")
		fs.Var(&manifests, "manifests", "")
		keep = fs.Bool("keep-on-failure", false, "")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "taprouter-cluster %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2
	}
	switch cmd {
	case "down":
		if err := kubecluster.Down(*dir); err != nil {
			fmt.Fprintf(stderr, "taprouter-cluster down: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "cluster in %s removed\n", *dir)
		return 0
	case "up":
	default:
		fmt.Fprintf(stderr, "taprouter-cluster: unknown command %q (up, down, help)\n", cmd)
		return 2
	}
	if len(images) == 0 {
		found, _ := filepath.Glob("bin/images/*.tar")
		if len(found) == 0 {
			fmt.Fprintf(stderr, "taprouter-cluster up: no --image and no bin/images/*.tar here (run make images, or run from the repository)\n")
			return 2
		}
		images = found
	}
	if len(manifests) == 0 {
		manifests = multi{"deploy"}
	}
	abs := func(paths []string) []string {
		out := make([]string, len(paths))
		for i, p := range paths {
			out[i], _ = filepath.Abs(p)
		}
		return out
	}
	bin, _ := filepath.Abs(*binDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t0 := time.Now()
	c, err := kubecluster.Up(ctx, kubecluster.Config{
		Dir: *dir, Name: *name, Nodes: *nodes, BinDir: bin, Images: abs(images),
		Manifests: abs(manifests), Backend: *backend, KeepOnFailure: *keep,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "taprouter-cluster: "+format+"\n", args...) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "taprouter-cluster up: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "taprouter-cluster: up in %.1f s; logs in %s/logs; remove it with: taprouter-cluster down --dir %s\n",
		time.Since(t0).Seconds(), c.Dir, c.Dir)
	fmt.Fprintf(stdout, "KUBECONFIG=%s\nNETNS=%s\n", c.Kubeconfig, c.ControlPlane)
	return 0
}
