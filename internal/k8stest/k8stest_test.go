package k8stest

import (
	"testing"
)

// TestNodeRoundTripK8s starts the control plane, creates a Node with a pod CIDR
// and an InternalIP through kubectl and reads exactly those back.
func TestNodeRoundTripK8s(t *testing.T) {
	c := Start(t)
	c.Kubectl(t, `apiVersion: v1
kind: Node
metadata:
  name: node-1
spec:
  podCIDR: 10.244.1.0/24
  podCIDRs: [10.244.1.0/24]
status:
  addresses:
  - type: InternalIP
    address: 198.51.100.11
`, "create", "-f", "-")
	got := c.Kubectl(t, "", "get", "node", "node-1", "-o",
		`jsonpath={.metadata.name} {.spec.podCIDR} {.spec.podCIDRs} {.status.addresses[?(@.type=="InternalIP")].address}`)
	if want := `node-1 10.244.1.0/24 ["10.244.1.0/24"] 198.51.100.11`; got != want {
		t.Errorf("node read back as %q, want %q", got, want)
	}
	if got := c.Kubectl(t, "", "get", "nodes", "-o", "name"); got != "node/node-1\n" {
		t.Errorf("kubectl get nodes -o name = %q, want %q", got, "node/node-1\n")
	}
}
