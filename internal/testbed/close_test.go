package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCloseWhileAdding closes beds while another goroutine adds namespaces
// and starts processes in them, as a signal does to the demo or the
// comparison in the middle of building its topology: when Close returns
// (and CloseOnSignal exits the program) nothing the bed created is left,
// and what is added after it is refused.
func TestCloseWhileAdding(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	// The sleeps' argument is this process's own, so that pgrep finds no
	// other's.
	sleepArg := fmt.Sprintf("600.%d", os.Getpid())
	for round := range 12 {
		b, err := New("")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		added := make(chan int, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; ; i++ {
				ns, err := b.AddNetns(fmt.Sprintf("n%d", i))
				if err != nil {
					break
				}
				n++
				if _, err := b.Start(ns, "sleep", "sleep", sleepArg); err != nil {
					break
				}
			}
			added <- n
		}()
		// Each round closes at a different point of an add.
		time.Sleep(time.Duration(20+round*7) * time.Millisecond)
		// Two Closes at once, as a signal's and the program's own: each
		// returns when everything is gone. What is left is looked at
		// before the adding goroutine has ended, as a program that exits
		// after Close would leave it.
		lefts := make(chan []string, 2)
		for range 2 {
			go func() {
				if err := b.Close(); err != nil {
					t.Errorf("round %d: Close: %v", round, err)
				}
				lefts <- namespacesOf(t, b)
			}()
		}
		for range 2 {
			if left := <-lefts; len(left) != 0 {
				t.Errorf("round %d: these outlived Close: %v", round, left)
				for _, name := range left {
					exec.Command("ip", "netns", "del", name).Run()
				}
			}
		}
		if pids, _ := exec.Command("pgrep", "-x", "-f", "sleep "+sleepArg).Output(); len(pids) != 0 {
			t.Errorf("round %d: processes outlived Close: %s", round, pids)
			exec.Command("pkill", "-x", "-f", "sleep "+sleepArg).Run()
		}
		wg.Wait()
		if n := <-added; n == 0 {
			t.Errorf("round %d: Close came before the first namespace: the round tested nothing", round)
		}
		if ns, err := b.AddNetns("late"); err == nil {
			t.Errorf("round %d: AddNetns after Close made %s", round, ns.Name)
			ns.delete()
		}
		if left := namespacesOf(t, b); len(left) != 0 {
			t.Errorf("round %d: namespaces after a refused AddNetns: %v", round, left)
		}
	}
}

// namespacesOf lists the namespaces named for b.
func namespacesOf(t *testing.T, b *Bed) []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Error(err)
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], b.Prefix()+"-") {
			names = append(names, f[0])
		}
	}
	return names
}
