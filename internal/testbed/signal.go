package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// openBeds are the beds New has made and Close not yet closed, for
// CloseOnSignal.
var openBeds struct {
	sync.Mutex
	beds         map[*Bed]struct{}
	shuttingDown bool // a signal came: New refuses
}

var errShuttingDown = errors.New("testbed: shutting down on a signal")

// register adds b to the open beds, before it creates anything.
func register(b *Bed) error {
	openBeds.Lock()
	defer openBeds.Unlock()
	if openBeds.shuttingDown {
		return errShuttingDown
	}
	if openBeds.beds == nil {
		openBeds.beds = map[*Bed]struct{}{}
	}
	openBeds.beds[b] = struct{}{}
	return nil
}

func unregister(b *Bed) {
	openBeds.Lock()
	delete(openBeds.beds, b)
	openBeds.Unlock()
}

// CloseOnSignal makes SIGINT and SIGTERM close every open bed (each waits
// for the namespaces and processes it is adding, see Close) and exit the
// program with status 130, until stop is called; stop called after a
// signal waits for that exit. It is for programs (the
// demo, the comparison benchmark), called once before their first bed, so
// that no signal finds a bed it cannot close: between two beds, or inside
// New. Tests close their beds in t.Cleanup.
func CloseOnSignal() (stop func()) {
	ch := make(chan os.Signal, 1)
	done, finished := make(chan struct{}), make(chan struct{})
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		defer close(finished)
		select {
		case sig := <-ch:
			closeAllAndExit(sig)
		case <-done:
			// A signal that came before stop's signal.Stop is still
			// in ch: it wins.
			select {
			case sig := <-ch:
				closeAllAndExit(sig)
			default:
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
		// Returns unless a signal came: then the program ends in
		// closeAllAndExit, not on its own way out while beds are still
		// being removed.
		<-finished
	}
}

// closeAllAndExit closes every open bed, refuses new ones and exits the
// program with status 130.
func closeAllAndExit(sig os.Signal) {
	openBeds.Lock()
	openBeds.shuttingDown = true
	beds := make([]*Bed, 0, len(openBeds.beds))
	for b := range openBeds.beds {
		beds = append(beds, b)
	}
	openBeds.Unlock()
	var wg sync.WaitGroup
	for _, b := range beds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Close()
			fmt.Fprintf(os.Stderr, "\n%v: test bed %s torn down\n", sig, b.prefix)
		}()
	}
	wg.Wait()
	os.Exit(130)
}
