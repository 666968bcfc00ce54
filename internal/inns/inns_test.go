package inns_test

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/taprouter/taprouter/internal/inns"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

func nsID(t *testing.T, path string) [2]uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

// Do moves its thread back before it releases it: the thread lives on
// in the namespace it came from. Before, the thread was left locked in the
// pod's namespace, to be destroyed — or, for the process's main thread,
// parked there for good.
func TestDoRestoresThread(t *testing.T) {
	path := netnstest.New(t, "inns").Path
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	orig := nsID(t, "/proc/self/ns/net")
	pod := nsID(t, path)
	for range 20 {
		var tid int
		var inside [2]uint64
		if err := inns.Do(ns, func() error {
			tid = unix.Gettid()
			inside = nsID(t, "/proc/thread-self/ns/net")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if inside != pod {
			t.Fatalf("fn ran in namespace %v, want the pod's %v", inside, pod)
		}
		task := fmt.Sprintf("/proc/self/task/%d/ns/net", tid)
		var st unix.Stat_t
		if err := unix.Stat(task, &st); err != nil {
			t.Fatalf("thread %d after Do: %v (want it alive, back in the process's namespace)", tid, err)
		}
		if got := [2]uint64{st.Dev, st.Ino}; got != orig {
			t.Fatalf("thread %d after Do is in namespace %v, want %v", tid, got, orig)
		}
	}
}
