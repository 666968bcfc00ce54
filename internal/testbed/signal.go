package testbed

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// CloseOnInterrupt makes SIGINT and SIGTERM close the bed and exit the
// program with status 130, until stop is called. It is for programs (the
// demo, the comparison benchmark); tests close their beds in t.Cleanup.
func (b *Bed) CloseOnInterrupt() (stop func()) {
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-ch:
			b.Close()
			fmt.Fprintf(os.Stderr, "\n%v: test bed %s torn down\n", sig, b.prefix)
			os.Exit(130)
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
