package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestCNIBandwidth: pod rate limits given as a runtime gives them (the
// bandwidth capability of the shipped conflist, through cnitool's CAP_ARGS)
// hold in both directions, with ingress (to the pod) and egress (from it)
// not swapped: iperf3 through the limited pod measures at most 1.15 times
// each limit, while an unlimited pod on the same node gets more than 3
// times the larger one, and the router counts the dropped excess. CHECK
// compares the limits with the daemon's port; limits the reference
// bandwidth plugin refuses are error 7.
func TestCNIBandwidth(t *testing.T) {
	path := requireCNI(t)
	c, nodes := newCNICluster(t, path, 1)
	n := nodes[0]
	const (
		ingressRate = 50_000_000 // bit/s
		egressRate  = 20_000_000
		slack       = 1.15 // how far above a limit a measurement may be
	)
	// Bursts of 200 ms at the rate: TCP through the policer keeps near the
	// rate (with 20 ms it gets about a tenth of it), and the first burst
	// adds at most 1/15 to a 3-second average.
	limits := fmt.Sprintf(`{"bandwidth": {"ingressRate": %d, "ingressBurst": %d, "egressRate": %d, "egressBurst": %d}}`,
		ingressRate, ingressRate/5, egressRate, egressRate/5)
	pods := addNamespaces(t, c, "bw", 4)
	limited, unlimited, peer, refused := pods[0], pods[1], pods[2], pods[3]
	ips := map[*testbed.Netns]netip.Addr{}
	for _, p := range []*testbed.Netns{limited, unlimited, peer} {
		capArgs := ""
		if p == limited {
			capArgs = limits
		}
		res, err := n.CNI.Add(p, capArgs)
		if err != nil {
			t.Fatal(err)
		}
		ips[p] = wantPodResult(t, n, p, res)
	}

	if err := n.CNI.Check(limited, limits); err != nil {
		t.Errorf("CHECK with the limits the pod was added with: %v", err)
	}
	err := n.CNI.Check(limited, "")
	if want := fmt.Sprintf("bandwidth is ingress %d bit/s (burst %d bits), egress %d bit/s (burst %d bits) in taprouterd "+
		"but ingress unlimited, egress unlimited in runtimeConfig", ingressRate, ingressRate/5, egressRate, egressRate/5); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CHECK without limits: %v; want it to say %q", err, want)
	}

	dropsBefore, err := n.Daemon.Counter("drop_rate_limited")
	if err != nil {
		t.Fatal(err)
	}
	portsBefore := portDrops(t, n.Daemon)
	measure := func(what string, client, server *testbed.Netns) float64 {
		t.Helper()
		r, err := c.Bed.Iperf(client, server, ips[server], testbed.IperfOptions{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s (%s → %s): %.1f Mbit/s, %d retransmits", what, client.Name, server.Name, r.BitsPerSecond/1e6, r.Retransmits)
		return r.BitsPerSecond
	}
	in := measure("ingress of the limited pod", peer, limited)
	out := measure("egress of the limited pod", limited, peer)
	freeIn := measure("ingress of the unlimited pod", peer, unlimited)
	freeOut := measure("egress of the unlimited pod", unlimited, peer)
	if in <= 0 || in > slack*ingressRate {
		t.Errorf("ingress of the limited pod: %.1f Mbit/s; want more than 0 and at most %.1f (%.2f × ingressRate)", in/1e6, slack*ingressRate/1e6, slack)
	}
	if out <= 0 || out > slack*egressRate {
		t.Errorf("egress of the limited pod: %.1f Mbit/s; want more than 0 and at most %.1f (%.2f × egressRate)", out/1e6, slack*egressRate/1e6, slack)
	}
	// Not swapped: the ingress limit lets through more than the egress one.
	if in <= slack*egressRate {
		t.Errorf("ingress of the limited pod: %.1f Mbit/s, within the egress limit (%d bit/s): are the directions swapped?", in/1e6, egressRate)
	}
	for what, rate := range map[string]float64{"ingress": freeIn, "egress": freeOut} {
		if rate <= 3*ingressRate {
			t.Errorf("%s of the unlimited pod: %.1f Mbit/s; want more than 3 × %d bit/s, or the limits above prove nothing", what, rate/1e6, ingressRate)
		}
	}
	dropsAfter, err := n.Daemon.Counter("drop_rate_limited")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drop_rate_limited %d → %d", dropsBefore, dropsAfter)
	if dropsAfter <= dropsBefore {
		t.Errorf("drop_rate_limited %d → %d; want the policed excess counted", dropsBefore, dropsAfter)
	}
	// How many packets the policer drops depends on TCP, but each is counted
	// once router-wide and once on the limited pod's port, in both
	// directions, and no other port drops anything meanwhile.
	portsAfter := portDrops(t, n.Daemon)
	for p, ip := range ips {
		want := uint64(0)
		if p == limited {
			want = dropsAfter - dropsBefore
		}
		if got := portsAfter[ip.String()] - portsBefore[ip.String()]; got != want {
			t.Errorf("port of %s (%s) counted %d drops during the transfers, want %d (drop_rate_limited grew by %d)", p.Name, ip, got, want, dropsAfter-dropsBefore)
		}
	}

	// Limits the reference bandwidth plugin refuses: error 7, nothing taken.
	r, err := n.CNI.RunPlugin("taprouter",
		map[string]string{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "bw-refused", "CNI_NETNS": refused.Path(), "CNI_IFNAME": "eth0"},
		pluginConf(t, n, func(c map[string]any) {
			c["runtimeConfig"] = map[string]any{"bandwidth": map[string]uint64{"ingressRate": ingressRate}}
		}))
	if err != nil {
		t.Fatal(err)
	}
	var e cniError
	if jerr := json.Unmarshal(r.Stdout, &e); jerr != nil || r.ExitCode != 1 || e.Code != 7 || !strings.Contains(e.Msg, "runtimeConfig.bandwidth.ingressBurst: missing") {
		t.Errorf("ADD with a rate and no burst: exit %d, %s (%v); want error 7 naming runtimeConfig.bandwidth.ingressBurst", r.ExitCode, r.Stdout, jerr)
	}

	for _, p := range []*testbed.Netns{limited, unlimited, peer} {
		if err := n.CNI.Del(p, limits); err != nil {
			t.Fatal(err)
		}
	}
	wantNothingLeft(t, n, pods, []netip.Addr{ips[limited], ips[unlimited], ips[peer]})
}

// portDrops returns the drops of each port of d by the port's IP.
func portDrops(t *testing.T, d *testbed.Daemon) map[string]uint64 {
	t.Helper()
	ports, err := d.Ports()
	if err != nil {
		t.Fatal(err)
	}
	drops := make(map[string]uint64, len(ports))
	for _, p := range ports {
		drops[p.IP] = p.Drops
	}
	return drops
}
