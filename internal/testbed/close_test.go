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
// comparison in the middle of building its topology: nothing the bed
// created outlives Close, and what is added after it is refused.
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
		if err := b.Close(); err != nil {
			t.Errorf("round %d: Close: %v", round, err)
		}
		wg.Wait()
		n := <-added
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, b.Prefix()+"-") {
				left = append(left, line)
			}
		}
		if len(left) != 0 {
			t.Errorf("round %d: %d namespaces added, these outlived Close: %v", round, n, left)
			for _, name := range left {
				exec.Command("ip", "netns", "del", strings.Fields(name)[0]).Run()
			}
		}
		if pids, _ := exec.Command("pgrep", "-x", "-f", "sleep "+sleepArg).Output(); len(pids) != 0 {
			t.Errorf("round %d: processes outlived Close: %s", round, pids)
			exec.Command("pkill", "-x", "-f", "sleep "+sleepArg).Run()
		}
	}
}
