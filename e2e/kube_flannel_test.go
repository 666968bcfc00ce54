package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
	"github.com/taprouter/taprouter/link"
)

// flannelLease is what a flanneld reads from another Node to program its
// flannel.1 for it (pkg/subnet/kube: the Node's annotations and podCIDR).
type flannelLease struct {
	Node        string
	BackendType string
	VNI         uint32
	VTEPMAC     link.HardwareAddr
	PublicIP    netip.Addr
	PodCIDR     netip.Prefix
	// KubeSubnetManager is the kube-subnet-manager annotation: flannel
	// ignores a Node without "true".
	KubeSubnetManager string
}

// flannelLeaseOf reads node's flannel annotations and podCIDR from the API,
// as flanneld's kube subnet manager does, or fails the test.
func (kc *kubeCluster) flannelLeaseOf(t *testing.T, node string) flannelLease {
	t.Helper()
	out := kc.API.Kubectl(t, "", "get", "node", node, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-type}`+
		`{"\n"}{.metadata.annotations.flannel\.alpha\.coreos\.com/backend-data}`+
		`{"\n"}{.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip}`+
		`{"\n"}{.metadata.annotations.flannel\.alpha\.coreos\.com/kube-subnet-manager}`+
		`{"\n"}{.spec.podCIDR}`)
	f := strings.Split(out, "\n")
	if len(f) != 5 {
		t.Fatalf("node %s: flannel annotations %q: want 5 lines", node, out)
	}
	l := flannelLease{Node: node, BackendType: f[0], KubeSubnetManager: f[3]}
	var data struct {
		VNI     uint32
		VtepMAC string
	}
	if err := json.Unmarshal([]byte(f[1]), &data); err != nil {
		t.Fatalf("node %s: backend-data %q: %v", node, f[1], err)
	}
	var err error
	l.VNI = data.VNI
	if l.VTEPMAC, err = link.ParseMAC(data.VtepMAC); err != nil {
		t.Fatalf("node %s: backend-data VtepMAC %q: %v", node, data.VtepMAC, err)
	}
	if l.PublicIP, err = netip.ParseAddr(f[2]); err != nil {
		t.Fatalf("node %s: public-ip %q: %v", node, f[2], err)
	}
	if l.PodCIDR, err = netip.ParsePrefix(f[4]); err != nil {
		t.Fatalf("node %s: podCIDR %q: %v", node, f[4], err)
	}
	return l
}

// waitFlannelAnnotations waits up to timeout until node carries flannel's
// backend-data annotation (a taprouterd announces itself once started).
func (kc *kubeCluster) waitFlannelAnnotations(t *testing.T, node string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := kc.API.Kubectl(t, "", "get", "node", node, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-data}`)
		if out != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s has no flannel backend-data annotation %v after its taprouterd started", node, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubeFlannelNode: two nodes run taprouterd (vxlan) in Kubernetes mode
// with a pod each from the CNI plugin; a third, node3, runs no taprouterd
// but the kernel's vxlan as flannel's vxlan backend sets it up: flannel.1
// (VNI 1, UDP 8472), its Node annotated as flanneld annotates it, and for
// each taprouter node an FDB entry, a permanent neighbour and an onlink
// route programmed from what that node's taprouterd published on its Node
// (read from the API). taprouterd must publish flannel's annotations
// (backend vxlan, VNI 1, VtepMAC 0a:58:<address>, public-ip,
// kube-subnet-manager), list node3 as a vxlan peer with flannel.1's MAC,
// and carry ping and TCP both ways between node3's pod and each taprouter
// pod, as VNI 1 on UDP 8472 with the VTEP MACs each side announced.
func TestKubeFlannelNode(t *testing.T) {
	requireCNI(t)
	specs := kubeSpecs(3)
	specs[2].Pods = []testbed.PodSpec{{Name: "node3p0", IP: addr("10.244.2.5")}}
	kc := newKubeCluster(t, specs)
	kubeconfig := kc.applyRBAC(t)
	node3 := kc.Nodes[2]
	var nodes []*kubeNode
	for _, n := range kc.Nodes[:2] {
		nodes = append(nodes, kc.startKubeNode(t, n, kubeconfig, "vxlan", 1))
	}
	// Unannotated, node3 is a peer of the daemons' own backend already.
	waitPeers(t, nodes[0].Daemon, []string{"node2", "node3"}, 5*time.Second)
	waitPeers(t, nodes[1].Daemon, []string{"node1", "node3"}, 5*time.Second)

	// What taprouterd publishes for flannel.
	for _, n := range nodes {
		kc.waitFlannelAnnotations(t, n.Name, 5*time.Second)
		got := kc.flannelLeaseOf(t, n.Name)
		want := flannelLease{Node: n.Name, BackendType: "vxlan", VNI: 1, VTEPMAC: testbed.TaprouterVTEPMAC(n.Addr),
			PublicIP: n.Addr, PodCIDR: n.Spec.PodCIDR, KubeSubnetManager: "true"}
		if got != want {
			t.Fatalf("%s's Node as flannel reads it: %+v, want %+v", n.Name, got, want)
		}
		raw := kc.API.Kubectl(t, "", "get", "node", n.Name, "-o", `jsonpath={.metadata.annotations.flannel\.alpha\.coreos\.com/backend-data}`)
		if want := fmt.Sprintf(`{"VNI":1,"VtepMAC":"%s"}`, testbed.TaprouterVTEPMAC(n.Addr)); raw != want {
			t.Errorf("%s's backend-data is %s, want flannel's %s", n.Name, raw, want)
		}
	}

	// node3 joins as a kernel flannel node: flannel.1 and its pod, then its
	// own annotations, as flanneld writes them once its device is up.
	if err := node3.WireKernelFlannelNode(); err != nil {
		t.Fatal(err)
	}
	// eth0 keeps a veth's default offloads: node3's vxlan packets carry
	// partial inner checksums and TCP super-segments, which taprouterd
	// completes and splits (see TestInteropFlannel).
	requireOffloads(t, node3, "tx-checksumming", "tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation")
	flannelMAC := node3.FlannelMAC()
	if flannelMAC.IsZero() || flannelMAC == testbed.TaprouterVTEPMAC(node3.Addr) {
		t.Fatalf("flannel.1's MAC %s: want the kernel's random one, not the derived one", flannelMAC)
	}
	kc.API.Kubectl(t, "", "annotate", "node", node3.Name,
		"flannel.alpha.coreos.com/backend-type=vxlan",
		fmt.Sprintf(`flannel.alpha.coreos.com/backend-data={"VNI":1,"VtepMAC":"%s"}`, flannelMAC),
		"flannel.alpha.coreos.com/public-ip="+node3.Addr.String(),
		"flannel.alpha.coreos.com/kube-subnet-manager=true")
	annotated := time.Now()
	// node3's flanneld programs flannel.1 for every other Node's lease.
	for _, n := range nodes {
		l := kc.flannelLeaseOf(t, n.Name)
		if err := node3.AddFlannelPeer(l.VTEPMAC, l.PublicIP, l.PodCIDR); err != nil {
			t.Fatal(err)
		}
	}

	// Each taprouterd follows node3's annotations: a vxlan peer at its
	// public-ip with flannel.1's MAC, next to the other taprouter node at
	// its derived MAC.
	for i, n := range nodes {
		other := nodes[1-i]
		want := []testbed.RouterPeer{
			{Node: other.Name, Address: other.Addr.String(), PodCIDRs: []string{other.Spec.PodCIDR.String()}, Backend: "vxlan", VTEPMAC: testbed.TaprouterVTEPMAC(other.Addr).String()},
			{Node: node3.Name, Address: node3.Addr.String(), PodCIDRs: []string{node3.Spec.PodCIDR.String()}, Backend: "vxlan", VTEPMAC: flannelMAC.String()},
		}
		if want[0].Node > want[1].Node {
			want[0], want[1] = want[1], want[0]
		}
		var got []testbed.RouterPeer
		for {
			ps, err := n.Daemon.Peers()
			if err != nil {
				t.Fatal(err)
			}
			got = ps
			for j := range got {
				got[j].ID = 0 // the daemon's own numbering
			}
			if reflect.DeepEqual(got, want) {
				break
			}
			if time.Since(annotated) > 5*time.Second {
				t.Fatalf("%s's peers 5 s after node3 was annotated:\n%+v\nwant\n%+v", n.Name, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("both taprouterds list node3 with flannel.1's MAC %s %v after its annotations", flannelMAC, time.Since(annotated).Round(time.Millisecond))

	pod3 := node3.Pods[0]
	for _, n := range nodes {
		pod := n.Pods[0]
		t.Run("vxlan-on-the-wire/"+n.Name, func(t *testing.T) {
			// Both directions, each a request and a reply: every packet
			// on node3's eth0 is VNI 1 to UDP 8472 between node3 and n,
			// with the VTEP MACs each side announced.
			var packets []testbed.Packet
			packets = append(packets, captureOnePing(t, kc.Bed, node3.Netns, "udp port 8472", pod3, pod)...)
			packets = append(packets, captureOnePing(t, kc.Bed, node3.Netns, "udp port 8472", pod, pod3)...)
			var from3, fromN int
			for _, p := range packets {
				vni, inner, ok := p.VXLAN()
				if !ok || vni != 1 || p.DstPort != 8472 || inner.Protocol != 1 || inner.TTL != 63 {
					t.Errorf("underlay packet %s → %s:%d: vxlan %v VNI %d, inner proto %d TTL %d; want ICMP with TTL 63 in VNI 1 to port 8472",
						p.Src, p.Dst, p.DstPort, ok, vni, inner.Protocol, inner.TTL)
				}
				switch {
				case p.Src == node3.Addr && p.Dst == n.Addr && inner.SrcMAC == flannelMAC && inner.DstMAC == testbed.TaprouterVTEPMAC(n.Addr):
					from3++
				case p.Src == n.Addr && p.Dst == node3.Addr && inner.SrcMAC == testbed.TaprouterVTEPMAC(n.Addr) && inner.DstMAC == flannelMAC:
					fromN++
				default:
					t.Errorf("vxlan packet %s → %s, inner %s → %s: want node3 ↔ %s between flannel.1's %s and %s",
						p.Src, p.Dst, inner.SrcMAC, inner.DstMAC, n.Name, flannelMAC, testbed.TaprouterVTEPMAC(n.Addr))
				}
			}
			if from3 != 2 || fromN != 2 {
				t.Errorf("vxlan packets: %d from node3, %d from %s; want 2 each (a request and a reply each way)", from3, fromN, n.Name)
			}
		})
		// Two routers each way: node3's kernel and n's taprouterd.
		t.Run("ping/kernel-to-taprouter/"+n.Name, func(t *testing.T) { mustPing(t, pod3.Netns, pod.Addr(), 62) })
		t.Run("ping/taprouter-to-kernel/"+n.Name, func(t *testing.T) { mustPing(t, pod.Netns, pod3.Addr(), 62) })
		t.Run("iperf3/kernel-to-taprouter/"+n.Name, func(t *testing.T) { flannelTransfer(t, kc.Bed, pod3, pod) })
		t.Run("iperf3/taprouter-to-kernel/"+n.Name, func(t *testing.T) { flannelTransfer(t, kc.Bed, pod, pod3) })
	}
	// The two taprouter nodes still reach each other (one router each).
	mustPing(t, nodes[0].Pods[0].Netns, nodes[1].Pods[0].Addr(), 62)
	for _, n := range nodes {
		// The kernel's TCP came as partial checksums and super-packets.
		checkOffloadCounters(t, n.Daemon, false)
	}
	// node3's flannel.1 is what flanneld would have: one FDB entry per
	// taprouter node, to its public-ip.
	out, err := node3.Run("bridge", "fdb", "show", "dev", "flannel.1")
	if err != nil {
		t.Fatal(err)
	}
	var fdb []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		fdb = append(fdb, strings.Join(f[:min(3, len(f))], " "))
	}
	slices.Sort(fdb)
	var wantFDB []string
	for _, n := range nodes {
		wantFDB = append(wantFDB, fmt.Sprintf("%s dst %s", testbed.TaprouterVTEPMAC(n.Addr), n.Addr))
	}
	if !slices.Equal(fdb, wantFDB) {
		t.Errorf("node3's flannel.1 FDB:\n%s\nwant entries %q", out, wantFDB)
	}
}

// flannelTransfer sends 50 MiB over TCP from → to with iperf3.
func flannelTransfer(t *testing.T, bed *testbed.Bed, from, to *testbed.Pod) {
	const size = 50 << 20
	r, err := bed.Iperf(from.Netns, to.Netns, to.Addr(), testbed.IperfOptions{Bytes: "50M"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.CheckTransfer(size); err != nil {
		t.Errorf("iperf3 %s → %s: %v", from.Spec.Name, to.Spec.Name, err)
	}
	t.Logf("iperf3 %s → %s: sent %d bytes, receiver counted %d in %.2f s, %.2f Gbit/s, %d retransmits",
		from.Spec.Name, to.Spec.Name, r.BytesSent, r.BytesReceived, r.Seconds, r.BitsPerSecond/1e9, r.Retransmits)
}
