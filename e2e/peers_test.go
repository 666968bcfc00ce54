package e2e

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// threeNodes is the seed plus node3 (192.168.49.4, pod pd 10.244.2.5).
func threeNodes() []testbed.NodeSpec {
	return append(testbed.Seed(), testbed.NodeSpec{
		Name: "node3", Addr: addr("192.168.49.4"),
		PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), Gateway: addr("10.244.2.1"),
		Pods: []testbed.PodSpec{{Name: "pd", IP: addr("10.244.2.5")}},
	})
}

// innerPackets returns the inner IPv4 packets of the vxlan datagrams in ps.
func innerPackets(ps []testbed.Packet) []testbed.Packet {
	var out []testbed.Packet
	for _, p := range ps {
		if _, inner, ok := p.VXLAN(); ok {
			out = append(out, inner)
		}
	}
	return out
}

// TestRemovePeerUnderTraffic: pa on node1 pings pc (node2) and pd (node3)
// every 10 ms; meanwhile node3 is removed from node1's config and node1's
// taprouterd reloads it (SIGHUP). Captured on node2's underlay: exactly zero
// packets for node3's pod range arrive at node2, before, during or after
// the change, while pa's packets to pc keep arriving.
func TestRemovePeerUnderTraffic(t *testing.T) {
	c := newCluster(t, threeNodes())
	daemons := startTaprouter(t, c, "vxlan")
	pa, pc, pd := c.Pod("pa"), c.Pod("pc"), c.Pod("pd")
	mustPing(t, pa.Netns, pc.Addr(), 62)
	mustPing(t, pa.Netns, pd.Addr(), 62)
	node2 := c.Node("node2")
	capture, err := c.Bed.StartCapture(node2.Netns, "eth0", "udp port 8472", 0)
	if err != nil {
		t.Fatal(err)
	}
	const count = 300
	results := make([]testbed.PingResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, dst := range []netip.Addr{pc.Addr(), pd.Addr()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = pa.Ping(dst, testbed.PingOptions{Count: count, Interval: 10 * time.Millisecond, Deadline: 15 * time.Second})
		}()
	}
	time.Sleep(time.Second)
	d1 := daemons["node1"]
	cfg := d1.Config
	var kept []testbed.PeerConfig
	for _, p := range cfg.Peers {
		if p.Node != "node3" {
			kept = append(kept, p)
		}
	}
	cfg.Peers = kept
	if err := d1.ReloadConfig(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ps, err := d1.Peers()
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0].Node == "node2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node1's peers after the reload: %+v, want node2 only", ps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // the last replies reach the capture
	if err := capture.Stop(); err != nil {
		t.Logf("stopping tcpdump: %v", err)
	}
	pkts, err := capture.Packets()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("ping %d: %v", i, e)
		}
	}
	node3Range := netip.MustParsePrefix("10.244.2.0/24")
	wrong, toPC := 0, 0
	for _, p := range innerPackets(pkts) {
		switch {
		case node3Range.Contains(p.Dst):
			wrong++
		case p.Dst == pc.Addr():
			toPC++
		}
	}
	rc, rd := results[0], results[1]
	t.Logf("pa → pc %d/%d replies, pa → pd %d/%d; at node2: %d vxlan datagrams, %d to pc, %d to node3's range", rc.Received, rc.Transmitted, rd.Received, rd.Transmitted, len(pkts), toPC, wrong)
	if wrong != 0 {
		t.Fatalf("%d packets for node3's pod range arrived at node2", wrong)
	}
	// Exact unless tcpdump itself lost packets (its buffer overflowed on a
	// loaded machine: it says how many), then a lower bound.
	switch dropped := capture.Dropped(); {
	case rc.Transmitted != count:
		t.Errorf("pa sent %d echoes to pc, want %d", rc.Transmitted, count)
	case dropped <= 0 && toPC != count:
		t.Errorf("node2 got %d of pa's %d echoes to pc, want all", toPC, count)
	case dropped > 0 && toPC < count-dropped:
		t.Errorf("node2 got %d of pa's %d echoes to pc, the capture dropped %d: want at least %d", toPC, count, dropped, count-dropped)
	case dropped > 0:
		t.Logf("the capture at node2 dropped %d packets (tcpdump's count): %d of %d echoes seen", dropped, toPC, count)
	}
	if rd.Received == 0 || rd.Received == rd.Transmitted {
		t.Errorf("pa → pd: %d/%d replies: want some before the removal and none after", rd.Received, rd.Transmitted)
	}
	if got := rc.Received; got < count*9/10 {
		t.Errorf("pa → pc: %d/%d replies while node3 was removed", got, count)
	}
}

// TestNodeToRemotePod: the node's namespace reaches a pod on another node
// (ping and TCP) through its host port, with the pod range's network
// address as source, and the replies come back through the tunnel: on
// node1's underlay, pc's replies to 10.244.0.0.
func TestNodeToRemotePod(t *testing.T) {
	for _, backend := range []string{"vxlan", "direct"} {
		t.Run(backend, func(t *testing.T) {
			c := newCluster(t, testbed.Seed())
			startTaprouter(t, c, backend)
			node1, pc := c.Node("node1"), c.Pod("pc")
			hostAddr := addr("10.244.0.0")
			filter := "udp port 8472"
			if backend == "direct" {
				filter = fmt.Sprintf("ip src %s and ip dst %s", pc.Addr(), hostAddr)
			}
			capture, err := c.Bed.StartCapture(node1.Netns, "eth0", filter, 0)
			if err != nil {
				t.Fatal(err)
			}
			mustPing(t, node1.Netns, pc.Addr(), 62)
			r, err := c.Bed.Iperf(node1.Netns, pc.Netns, pc.Addr(), testbed.IperfOptions{Bytes: "10M"})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CheckTransfer(10 << 20); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			capture.Stop()
			pkts, err := capture.Packets()
			if err != nil {
				t.Fatal(err)
			}
			if backend == "vxlan" {
				pkts = innerPackets(pkts)
			}
			echoReplies, tcp := 0, 0
			for _, p := range pkts {
				if p.Src != pc.Addr() || p.Dst != hostAddr {
					continue
				}
				switch p.Protocol {
				case 1:
					echoReplies++
				case 6:
					tcp++
				}
			}
			t.Logf("replies to %s through the tunnel: %d echo replies, %d TCP segments", hostAddr, echoReplies, tcp)
			if echoReplies != 5 || tcp == 0 {
				t.Fatalf("captured %d echo replies (want 5) and %d TCP segments (want some) from %s to %s on node1's underlay", echoReplies, tcp, pc.Addr(), hostAddr)
			}
		})
	}
}
