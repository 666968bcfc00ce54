package cluster

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"

	"github.com/taprouter/taprouter/internal/kubecluster"
)

// live are the clusters up now, by Dir: a test binary stopped by a signal
// (Ctrl-C, CI's timeout) skips t.Cleanup, and the clusters' daemons run in
// sessions of their own, so TestMain takes them down itself.
var live sync.Map

func TestMain(m *testing.M) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		live.Range(func(dir, _ any) bool {
			fmt.Fprintf(os.Stderr, "cluster tests: %v: taking down the cluster in %s\n", s, dir)
			if err := kubecluster.Down(dir.(string)); err != nil {
				fmt.Fprintf(os.Stderr, "cluster tests: %v\n", err)
			}
			return true
		})
		os.Exit(1)
	}()
	os.Exit(m.Run())
}
