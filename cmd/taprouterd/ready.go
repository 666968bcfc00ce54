package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/taprouter/taprouter/api"
)

const readyUsage = `NAME
    taprouterd ready - ask a running taprouterd whether it forwards

SYNOPSIS
    taprouterd ready [--socket PATH] [--timeout D] [--live]

DESCRIPTION
    Asks GET /v1/ready on the daemon's socket and exits 0 when the daemon
    answers "ready": the router runs, the host port is attached and up, and
    the node's pod CIDR is known. Otherwise it prints what is missing, one
    line, and exits 1. It is the DaemonSet's exec probe (the image has no
    curl): kubelet shows the line in the pod's events.

OPTIONS
    --socket PATH   the daemon's API socket
                    (default %s).
    --timeout D     how long to wait for the answer (default %s).
    --live          liveness instead: exit 0 when the daemon answers at
                    all, ready or not (it is alive while it waits for its
                    pod CIDR); 1 only when it does not answer in time.

EXIT STATUS
    0 ready (alive, with --live); 1 not ready or not answering; 2 usage.
`

// defaultReadyTimeout stays under the probes' timeoutSeconds (3).
const defaultReadyTimeout = 2 * time.Second

// runReady is `taprouterd ready`.
func runReady(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("taprouterd ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, readyUsage, api.DefaultSocket, defaultReadyTimeout) }
	socket := fs.String("socket", api.DefaultSocket, "")
	timeout := fs.Duration("timeout", defaultReadyTimeout, "")
	live := fs.Bool("live", false, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "taprouterd ready: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	r, err := api.NewClient(*socket).Ready(ctx)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "not answering: %v\n", err)
		return 1
	case r.Ready:
		fmt.Fprintln(stdout, "ready")
		return 0
	case *live:
		fmt.Fprintf(stdout, "alive, not ready: %s\n", strings.Join(r.Problems, "; "))
		return 0
	default:
		fmt.Fprintf(stdout, "not ready: %s\n", strings.Join(r.Problems, "; "))
		return 1
	}
}
