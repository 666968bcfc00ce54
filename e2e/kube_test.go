package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// TestKubeHarness checks the harness the Kubernetes tests stand on: the
// API server on the underlay answers from every node's namespace, and the
// real kube-proxy in each node's namespace programs a Service created
// through the API (its DNAT to the endpoint, exactly once).
func TestKubeHarness(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	kc := newKubeCluster(t, testbed.Seed())
	out := kc.API.Kubectl(t, "", "get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[0].address}{\"\\n\"}{end}")
	if want := "node1 10.244.0.0/24 192.168.49.2\nnode2 10.244.1.0/24 192.168.49.3\n"; out != want {
		t.Fatalf("nodes:\n%s\nwant:\n%s", out, want)
	}
	svcIP := netip.MustParseAddr("10.96.0.50")
	kc.createService(t, "web", svcIP, 80, 8080, kc.Pod("pc").Addr(), "node2")
	for _, n := range kc.Nodes {
		kc.startKubeProxy(t, n)
		deadline := time.Now().Add(10 * time.Second)
		for {
			rules, err := n.Run("iptables-save", "-t", "nat")
			if err != nil {
				t.Fatal(err)
			}
			dnat := strings.Count(rules, "-j DNAT --to-destination 10.244.1.5:8080")
			if dnat == 2 { // tcp and udp
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("kube-proxy on %s: %d DNAT rules to 10.244.1.5:8080, want 2 (tcp, udp):\n%s", n.Name, dnat, rules)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
