package daemon

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/podnet"
)

// DefaultNetNSTimeout bounds opening a pod's network namespace.
const DefaultNetNSTimeout = 5 * time.Second

// errNetNSTimeout: opening the path did not finish in time (a hung file
// system); the open goes on in the background and is closed when it ends.
var errNetNSTimeout = errors.New("did not open in time")

// openNetNS opens a pod's namespace with podnet.OpenNetNS (which refuses
// what is not a network namespace, and the node's own), giving up after
// Options.NetNSTimeout. It is called without d.mu held, so that a path that
// never opens holds up only its own request.
func (d *Daemon) openNetNS(path string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := d.openNS(path)
		done <- result{f, err}
	}()
	timer := time.NewTimer(d.opts.NetNSTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.f, r.err
	case <-timer.C:
		go func() {
			if r := <-done; r.f != nil {
				r.f.Close()
			}
		}()
		return nil, fmt.Errorf("%s %w (%v)", path, errNetNSTimeout, d.opts.NetNSTimeout)
	}
}

// nsGone reports whether err says there is no network namespace at the
// path any more: the pod is gone, and its eth0 with it.
func nsGone(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, podnet.ErrNotNetNS)
}

// netnsError is the API's answer for a netns path that openNetNS refused:
// the request's fault (400), except a timeout, which may pass (503).
func netnsError(path string, err error) error {
	switch {
	case errors.Is(err, errNetNSTimeout):
		return api.Unavailable("netns: " + err.Error())
	case errors.Is(err, os.ErrNotExist):
		return api.Invalid("netns", fmt.Sprintf("%s: no such network namespace", path))
	}
	return api.Invalid("netns", err.Error())
}
