package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/internal/testbed"
)

// scaleStats is taprouterd's memory at scale.
type scaleStats struct {
	mem          testbed.Memory
	ports, peers int // what the daemon reported holding when measured
	err          error
}

// measureScale starts one taprouterd (vxlan) on node1 of the demo topology
// with a config of peers other nodes, attaches ports pods through its API
// (POST /v1/ports, as the CNI plugin does: a TAP in each pod's own
// namespace), and reads its VmRSS and VmHWM. The peers' addresses
// (10.1.0.0/16) and pod ranges (10.128.0.0/9) are outside every namespace's
// networks; nothing is sent to them.
func measureScale(taprouterd string, ports, peers int) scaleStats {
	fmt.Printf("measuring taprouterd memory with %d ports and %d peers ...\n", ports, peers)
	st, err := scale(taprouterd, ports, peers)
	if err != nil {
		st.err = fmt.Errorf("memory at scale: %w", err)
	}
	return st
}

func scale(taprouterd string, ports, peers int) (scaleStats, error) {
	if ports > 240 || peers > 32000 {
		return scaleStats{}, fmt.Errorf("at most 240 ports (10.244.0.10 to .249) and 32000 peers (10.1.0.0/16 and 10.128.0.0/9 hold them)")
	}
	bed, err := testbed.New(taprouterd)
	if err != nil {
		return scaleStats{}, err
	}
	defer bed.Close()
	spec := testbed.Seed()[0] // node1, its pods added below
	spec.Pods = nil
	c, err := bed.AddCluster([]testbed.NodeSpec{spec})
	if err != nil {
		return scaleStats{}, err
	}
	node := c.Nodes[0]
	cfg := c.DaemonConfig(node, "vxlan")
	for i := 1; i <= peers; i++ {
		cfg.Peers = append(cfg.Peers, testbed.PeerConfig{
			Node:    fmt.Sprintf("node-%05d", i),
			Address: fmt.Sprintf("10.1.%d.%d", i/256, i%256),
			PodCIDR: fmt.Sprintf("10.%d.%d.0/24", 128+i/256, i%256),
		})
	}
	pods, err := podNamespaces(bed, ports)
	if err != nil {
		return scaleStats{}, err
	}
	d, err := bed.StartDaemon(node.Node, cfg)
	if err != nil {
		return scaleStats{}, err
	}
	client := api.NewClient(d.Socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i, pod := range pods {
		ip := spec.PodCIDR.Addr().As4()
		ip[3] = byte(10 + i)
		if _, err := client.AddPort(ctx, api.PortRequest{ContainerID: fmt.Sprintf("bench-%03d", i), IfName: "eth0",
			NetNS: pod.Path(), IP: netip.AddrFrom4(ip).String()}); err != nil {
			return scaleStats{}, fmt.Errorf("attach pod %d: %w", i, err)
		}
	}
	status, err := client.Status(ctx)
	if err != nil {
		return scaleStats{}, err
	}
	applied, err := client.Peers(ctx)
	if err != nil {
		return scaleStats{}, err
	}
	if status.Ports != ports || len(applied) != peers {
		return scaleStats{}, fmt.Errorf("taprouterd holds %d ports and %d peers, want %d and %d", status.Ports, len(applied), ports, peers)
	}
	mem, err := testbed.ProcessMemory(d.Pid())
	return scaleStats{mem: mem, ports: status.Ports, peers: len(applied)}, err
}

// podNamespaces creates n pod namespaces, a few at a time.
func podNamespaces(bed *testbed.Bed, n int) ([]*testbed.Netns, error) {
	pods := make([]*testbed.Netns, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			pods[i], errs[i] = bed.AddNetns(fmt.Sprintf("p%03d", i))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pods, nil
}
