// Scratch: measure one backend cross-node with profiles and counters. Not committed.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

func main() {
	backend := os.Args[1]
	secs := 8
	bed, err := testbed.New("/work/main/bin/taprouterd")
	if err != nil {
		panic(err)
	}
	defer bed.Close()
	defer bed.CloseOnInterrupt()()
	c, err := bed.AddCluster(testbed.Seed())
	if err != nil {
		panic(err)
	}
	var daemons map[string]*testbed.Daemon
	if backend == "kernel" {
		err = c.WireKernelPTP()
	} else if backend == "flannel" {
		err = c.WireKernelFlannel()
	} else {
		daemons, err = c.StartTaprouter(backend)
	}
	if err != nil {
		panic(err)
	}
	pa, pc := c.Pod("pa"), c.Pod("pc")
	if len(os.Args) > 2 && os.Args[2] == "same" {
		pc = c.Pod("pb")
	}
	pr, err := pa.Ping(pc.Addr(), testbed.PingOptions{Count: 200, Interval: 10 * time.Millisecond})
	fmt.Printf("ping: %+v %v\n", pr, err)
	var wg sync.WaitGroup
	for node, d := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
			}}}
			resp, err := client.Get(fmt.Sprintf("http://x/debug/pprof/profile?seconds=%d", secs-2))
			if err != nil {
				fmt.Println(err)
				return
			}
			defer resp.Body.Close()
			f, _ := os.Create("/tmp/prof-" + backend + "-" + node + ".pprof")
			io.Copy(f, resp.Body)
			f.Close()
		}()
	}
	r, err := bed.Iperf(pa.Netns, pc.Netns, pc.Addr(), testbed.IperfOptions{Duration: time.Duration(secs) * time.Second})
	fmt.Printf("iperf: %.2f Gbit/s %v\n", r.BitsPerSecond/1e9, err)
	wg.Wait()
	for node, d := range daemons {
		s, _ := d.Stats()
		keys := make([]string, 0)
		for k, v := range s {
			if v != 0 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		fmt.Printf("%s:", node)
		for _, k := range keys {
			fmt.Printf(" %s=%d", k, s[k])
		}
		fmt.Println()
	}
}
