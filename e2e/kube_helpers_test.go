package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/k8stest"
	"github.com/taprouter/taprouter/internal/kubecluster"
	"github.com/taprouter/taprouter/internal/testbed"
)

// The Kubernetes tests (TestKube*) run a real etcd and kube-apiserver in a
// namespace on the test's underlay (the control-plane host), and the real
// kube-proxy in each node's namespace; they skip when make k8s-tools has not
// built the binaries into bin/k8s.

// controlPlaneAddr is the control-plane host's underlay address.
var controlPlaneAddr = netip.MustParseAddr("192.168.49.250")

// clusterCIDR is the pod range of every test cluster: kube-proxy's
// --cluster-cidr and taprouterd's.
const clusterCIDR = "10.244.0.0/16"

// kubeCluster is a testbed cluster with a control plane whose Node objects
// describe its nodes.
type kubeCluster struct {
	*testbed.Cluster
	API *k8stest.Cluster
	// Host is the control plane's namespace on the underlay.
	Host *testbed.Netns
}

// newKubeCluster builds specs and a control plane, and creates a Node object
// for each node (podCIDR from the spec, InternalIP its underlay address).
func newKubeCluster(t *testing.T, specs []testbed.NodeSpec) *kubeCluster {
	t.Helper()
	if _, err := k8stest.BinDir(); err != nil {
		t.Skip(err)
	}
	c := newCluster(t, specs)
	host, err := c.Bed.AddUnderlayHost("cp", controlPlaneAddr)
	if err != nil {
		t.Fatal(err)
	}
	kc := &kubeCluster{Cluster: c, API: k8stest.StartIn(t, host.Name, controlPlaneAddr), Host: host}
	for _, n := range c.Nodes {
		kc.createNode(t, n.Spec)
	}
	return kc
}

// createNode creates the Node object of spec, with its InternalIP.
func (kc *kubeCluster) createNode(t *testing.T, spec testbed.NodeSpec) {
	t.Helper()
	kc.API.Kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Node
metadata:
  name: %s
spec:
  podCIDR: %s
  podCIDRs: [%s]
`, spec.Name, spec.PodCIDR, spec.PodCIDR), "apply", "-f", "-")
	kc.setInternalIP(t, spec.Name, spec.Addr)
}

// setInternalIP sets the Node's addresses (status, as kubelet reports
// them): InternalIP addr and Hostname its name.
func (kc *kubeCluster) setInternalIP(t *testing.T, node string, addr netip.Addr) {
	t.Helper()
	kc.API.Kubectl(t, "", "patch", "node", node, "--subresource=status", "--type=merge", "-p",
		fmt.Sprintf(`{"status":{"addresses":[{"type":"InternalIP","address":"%s"},{"type":"Hostname","address":"%s"}]}}`, addr, node))
}

// startKubeProxy runs the real kube-proxy (iptables mode) in the node's
// namespace as that node, and waits until it has programmed the
// KUBE-SERVICES chain.
func (kc *kubeCluster) startKubeProxy(t *testing.T, n *testbed.ClusterNode) *testbed.Process {
	t.Helper()
	dir := filepath.Join(kc.Bed.Dir(), "kube-proxy-"+n.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	config := kubecluster.KubeProxyConfig(kc.API.Kubeconfig, n.Name, clusterCIDR)
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := kc.Bed.Start(n.Netns, "kube-proxy-"+n.Name, filepath.Join(kc.API.BinDir, "kube-proxy"), "--config", path, "-v", "2")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := n.Run("iptables", "-t", "nat", "-S", "KUBE-SERVICES")
		if err == nil && strings.Contains(out, "KUBE-SVC-") {
			return p // the kubernetes Service is programmed
		}
		if exited, perr := p.Exited(); exited {
			t.Fatalf("kube-proxy on %s exited: %v\n%s", n.Name, perr, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-proxy on %s programmed no Service in 30 s (%v: %s)\n%s", n.Name, err, out, p.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// createService creates a ClusterIP Service name with clusterIP ip, port
// port → targetPort, and an EndpointSlice with one endpoint, pod on node
// (created by hand, as the endpointslice controller would for a pod).
func (kc *kubeCluster) createService(t *testing.T, name string, ip netip.Addr, port, targetPort int, pod netip.Addr, node string) {
	t.Helper()
	kc.API.Kubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: default
spec:
  type: ClusterIP
  clusterIP: %[2]s
  ports:
  - name: tcp
    protocol: TCP
    port: %[3]d
    targetPort: %[4]d
  - name: udp
    protocol: UDP
    port: %[3]d
    targetPort: %[4]d
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-1
  namespace: default
  labels:
    kubernetes.io/service-name: %[1]s
addressType: IPv4
ports:
- name: tcp
  protocol: TCP
  port: %[4]d
- name: udp
  protocol: UDP
  port: %[4]d
endpoints:
- addresses: [%[5]s]
  nodeName: %[6]s
  conditions:
    ready: true
`, name, ip, port, targetPort, pod, node), "apply", "-f", "-")
}
