package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/podnet"
)

// DefaultNetNSTimeout bounds opening a pod's network namespace.
const DefaultNetNSTimeout = 5 * time.Second

// maxNetNSOpens bounds the namespace opens in flight. An open that hangs
// (a hung file system) holds a goroutine and an OS thread until it ends,
// whoever stopped waiting for it: at most this many, whatever retries come.
const maxNetNSOpens = 16

var (
	// errNetNSTimeout: opening the path did not finish in time; the open
	// goes on and its file is closed when it ends.
	errNetNSTimeout = errors.New("did not open in time")
	// errNetNSBusy: maxNetNSOpens opens are hung already.
	errNetNSBusy = fmt.Errorf("not opened: %d namespace opens are in flight already (hung?)", maxNetNSOpens)
)

// nsOpen is one podnet.OpenNetNS call in flight.
type nsOpen struct {
	done      chan struct{} // closed when it ended; f and err are set
	f         *os.File
	err       error
	abandoned bool // under nsMu: no one waits for f, which the open closes
}

// netnsOpens tracks the opens in flight, at most one per path.
type netnsOpens struct {
	mu     sync.Mutex
	byPath map[string]*nsOpen
}

// openNetNS opens a pod's namespace with podnet.OpenNetNS (which refuses
// what is not a network namespace, and the node's own), giving up after
// Options.NetNSTimeout. It is called without d.mu held, so that a path that
// never opens holds up only its own request.
func (d *Daemon) openNetNS(path string) (*os.File, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.NetNSTimeout)
	defer cancel()
	return d.openNetNSCtx(ctx, path)
}

// openNetNSCtx opens path, giving up when ctx is done. An open of a path
// that is in flight already (hung, most likely) is not repeated: the caller
// waits for that one to end, then opens the path itself. An open beyond
// maxNetNSOpens in flight is refused at once with errNetNSBusy.
func (d *Daemon) openNetNSCtx(ctx context.Context, path string) (*os.File, error) {
	timeout := func(why string) error {
		return fmt.Errorf("%s %w (%v%s)", path, errNetNSTimeout, d.opts.NetNSTimeout, why)
	}
	o := &d.nsOpens
	for {
		if ctx.Err() != nil {
			return nil, timeout("")
		}
		o.mu.Lock()
		if prev, busy := o.byPath[path]; busy {
			o.mu.Unlock()
			select {
			case <-prev.done:
				continue
			case <-ctx.Done():
				return nil, timeout("; an earlier open of it has not ended either")
			}
		}
		if len(o.byPath) >= maxNetNSOpens {
			o.mu.Unlock()
			return nil, fmt.Errorf("%s %w", path, errNetNSBusy)
		}
		op := &nsOpen{done: make(chan struct{})}
		if o.byPath == nil {
			o.byPath = map[string]*nsOpen{}
		}
		o.byPath[path] = op
		o.mu.Unlock()
		go func() {
			f, err := d.openNS(path)
			o.mu.Lock()
			op.f, op.err = f, err
			delete(o.byPath, path)
			if op.abandoned && f != nil {
				f.Close()
			}
			o.mu.Unlock()
			close(op.done)
		}()
		select {
		case <-op.done:
			return op.f, op.err
		case <-ctx.Done():
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.byPath[path] != op { // it ended meanwhile: take it after all
			return op.f, op.err
		}
		op.abandoned = true
		return nil, timeout("")
	}
}

// openAll opens the namespaces at paths concurrently (at most
// maxNetNSOpens/2 at once, leaving room for the API's requests), all under
// one deadline, Options.NetNSTimeout from now: n hung paths delay the caller
// by one timeout, not n. ns[i] and errs[i] are path[i]'s.
func (d *Daemon) openAll(paths []string) (ns []*os.File, errs []error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.NetNSTimeout)
	defer cancel()
	ns, errs = make([]*os.File, len(paths)), make([]error, len(paths))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(paths), maxNetNSOpens/2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ns[i], errs[i] = d.openNetNSCtx(ctx, paths[i])
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	return ns, errs
}

// nsGone reports whether err says there is no network namespace at the
// path any more: the pod is gone, and its eth0 with it.
func nsGone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, podnet.ErrNotNetNS)
}

// nsUnavailable reports whether err says the namespace could not be opened
// now (it hung, or too many opens did), which a retry may overcome.
func nsUnavailable(err error) bool {
	return errors.Is(err, errNetNSTimeout) || errors.Is(err, errNetNSBusy)
}

// netnsError is the API's answer for a netns path that openNetNS refused:
// the request's fault (400), except a timeout or too many opens in flight,
// which may pass (503).
func netnsError(path string, err error) error {
	switch {
	case nsUnavailable(err):
		return api.Unavailable("netns: " + err.Error())
	case errors.Is(err, os.ErrNotExist):
		return api.Invalid("netns", fmt.Sprintf("%s: no such network namespace", path))
	}
	return api.Invalid("netns", err.Error())
}
