// Package inns runs code inside a network namespace on a thread that is
// moved back before it is released, so that no goroutine ever runs in a
// namespace it did not ask for. It is the module's one namespace switch.
package inns

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a locked OS thread that has entered ns, and then moves
// the thread back to the namespace it came from before releasing it, as
// containernetworking/plugins' ns.Do does. Should the way back fail, the
// thread stays locked, so that the runtime destroys it with its goroutine
// rather than let other goroutines run in the pod's namespace.
//
// Every namespace switch in the module goes through here (podnet's for the
// daemon, and the test helpers'). A locked thread that
// ends is not always destroyed: if it is the process's main thread, the
// runtime parks it forever instead, still in the namespace it was in (and
// /proc/PID/ns/net shows that namespace); hence the way back, always.
func Do(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open the thread's netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread() // a failed setns changes nothing
			errc <- fmt.Errorf("enter the pod's netns: %w", err)
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			// Locked for good: the thread dies with this goroutine.
			errc <- errors.Join(err, fmt.Errorf("leave the pod's netns: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// DoPath is Do for the namespace bound at path (/var/run/netns/NAME,
// /proc/PID/ns/net).
func DoPath(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return Do(ns, fn)
}
