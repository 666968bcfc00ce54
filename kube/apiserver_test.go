package kube

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/taprouter/taprouter/internal/k8stest"
	"github.com/taprouter/taprouter/peers"
)

// realClient starts etcd and kube-apiserver (skipping without them) and
// returns a clientset that dials into their namespace.
func realClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	c := k8stest.Start(t)
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// createNode creates n through the API, then sets its status addresses
// (status is a subresource).
func createNode(t testing.TB, cs kubernetes.Interface, n *corev1.Node) {
	t.Helper()
	ctx := context.Background()
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Status.Addresses) > 0 && len(created.Status.Addresses) == 0 {
		created.Status.Addresses = n.Status.Addresses
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func setAddress(t testing.TB, cs kubernetes.Interface, name, ip string) {
	t.Helper()
	ctx := context.Background()
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func patchNode(t testing.TB, cs kubernetes.Interface, name, patch string) {
	t.Helper()
	if _, err := cs.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKubeAPIServer runs the watcher against the real kube-apiserver: exact
// desired sets after every kind of change, the time from the API call to
// the handout, and the annotations published on our Node.
func TestKubeAPIServer(t *testing.T) {
	cs := realClient(t)
	createNode(t, cs, node(me, "192.168.49.2", "10.244.0.0/24", nil))
	createNode(t, cs, node("node-b", "192.168.49.3", "10.244.1.0/24", nil))
	createNode(t, cs, node("node-c", "192.168.49.4", "", nil)) // no podCIDR yet

	r := startWatcher(t, Config{Client: cs, NodeName: me, Announce: Announcement{Backend: "vxlan"}})
	us := self(me, "192.168.49.2", "10.244.0.0/24")
	b := peer("node-b", "192.168.49.3", "10.244.1.0/24")
	first := r.expect(t, us, b)
	t.Logf("start to first handout: %v", first.at.Sub(r.start).Round(time.Millisecond))

	var lat []string
	step := func(name string, change func(), want ...peers.Peer) {
		t.Helper()
		t0 := time.Now()
		change()
		h := r.expect(t, us, want...)
		d := h.at.Sub(t0)
		lat = append(lat, fmt.Sprintf("%s %v", name, d.Round(100*time.Microsecond)))
		if d > time.Second {
			t.Errorf("%s: handed out after %v, want within 1s", name, d)
		}
	}
	c := peer("node-c", "192.168.49.4", "10.244.2.0/24")
	step("podCIDR arrives", func() {
		patchNode(t, cs, "node-c", `{"spec":{"podCIDR":"10.244.2.0/24","podCIDRs":["10.244.2.0/24"]}}`)
	}, b, c)
	d := peer("node-d", "192.168.49.5", "10.244.3.0/24")
	step("add", func() { createNode(t, cs, node("node-d", "192.168.49.5", "10.244.3.0/24", nil)) }, b, c, d)
	b = peer("node-b", "192.168.49.13", "10.244.1.0/24")
	step("InternalIP", func() { setAddress(t, cs, "node-b", "192.168.49.13") }, b, c, d)
	c.Backend, c.VTEPMAC = "vxlan", mac("6e:1f:33:44:55:66")
	c.Addr = mustAddr("192.168.49.40")
	step("flannel annotations", func() {
		patchNode(t, cs, "node-c", `{"metadata":{"annotations":{`+
			`"flannel.alpha.coreos.com/backend-type":"vxlan",`+
			`"flannel.alpha.coreos.com/backend-data":"{\"VNI\":1,\"VtepMAC\":\"6e:1f:33:44:55:66\"}",`+
			`"flannel.alpha.coreos.com/public-ip":"192.168.49.40",`+
			`"flannel.alpha.coreos.com/kube-subnet-manager":"true"}}}`)
	}, b, c, d)
	c.Backend = "udp"
	step("taprouter annotation over flannel's", func() {
		patchNode(t, cs, "node-c", `{"metadata":{"annotations":{"taprouter.io/backend":"udp"}}}`)
	}, b, c, d)
	step("delete", func() {
		if err := cs.CoreV1().Nodes().Delete(context.Background(), "node-b", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}, c, d)
	t.Logf("change → handout: %s", strings.Join(lat, ", "))

	// A change to nothing peers read hands out nothing.
	patchNode(t, cs, "node-d", `{"metadata":{"labels":{"zone":"a"}}}`)
	r.none(t, 500*time.Millisecond)

	// Our annotations, read back from the API server.
	want := map[string]string{
		AnnotationBackend:        "vxlan",
		AnnotationPublicIP:       "192.168.49.2",
		AnnotationVTEPMAC:        "0a:58:c0:a8:31:02",
		FlannelBackendType:       "vxlan",
		FlannelBackendData:       `{"VNI":1,"VtepMAC":"0a:58:c0:a8:31:02"}`,
		FlannelPublicIP:          "192.168.49.2",
		FlannelKubeSubnetManager: "true",
	}
	var got map[string]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), me, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got = n.Annotations; equalMaps(got, want) {
			break
		}
	}
	if !equalMaps(got, want) {
		t.Fatalf("our Node's annotations\n got %v\nwant %v", got, want)
	}
	if n := r.waitCount("published this node's annotations", 1); n != 1 {
		t.Errorf("published %d times, want 1:\n%s", n, r.dump())
	}
}

// TestKubeWatcherScale measures the watcher at TAPROUTER_KUBE_SCALE Nodes (5000 in the
// issue's benchmark) in the real API server: the time from Run to the full
// set, the RSS it adds, and the latency of one change at that size. It
// skips unless the variable is set: creating the Nodes takes minutes.
func TestKubeWatcherScale(t *testing.T) {
	count, _ := strconv.Atoi(os.Getenv("TAPROUTER_KUBE_SCALE"))
	if count <= 0 {
		t.Skip("set TAPROUTER_KUBE_SCALE=5000 to run")
	}
	cs := realClient(t)
	t0 := time.Now()
	createNode(t, cs, node(me, "10.0.0.1", "10.128.0.0/24", nil))
	names := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range names {
				n := node(fmt.Sprintf("node-%05d", i), fmt.Sprintf("10.%d.%d.%d", 1+i>>16, i>>8&255, i&255+0),
					fmt.Sprintf("10.%d.%d.0/24", 128+i>>8, i&255), nil)
				if i&255 == 0 {
					n.Status.Addresses[1].Address = fmt.Sprintf("10.%d.%d.%d", 1+i>>16, i>>8&255, 1)
				}
				createNode(t, cs, n)
			}
		})
	}
	for i := 1; i < count; i++ {
		names <- i
	}
	close(names)
	wg.Wait()
	t.Logf("created %d Nodes in %v", count, time.Since(t0).Round(time.Millisecond))

	runtime.GC()
	rssBefore := vmRSS(t)
	r := startWatcher(t, Config{Client: cs, NodeName: me})
	h := r.next(t, 2*time.Minute)
	full := h.at.Sub(r.start)
	if len(h.peers) != count-1 {
		t.Fatalf("first handout has %d peers, want %d", len(h.peers), count-1)
	}
	rssAfter := vmRSS(t)
	runtime.GC()
	rssGC := vmRSS(t)

	var lat []time.Duration
	for i := range 5 {
		c0 := time.Now()
		patchNode(t, cs, "node-00042", fmt.Sprintf(`{"metadata":{"annotations":{"taprouter.io/backend":"%s"}}}`, []string{"udp", "direct"}[i%2]))
		h := r.next(t, 10*time.Second)
		lat = append(lat, h.at.Sub(c0).Round(100*time.Microsecond))
		if len(h.peers) != count-1 || h.peers[41].Backend != []string{"udp", "direct"}[i%2] {
			t.Fatalf("change %d: %d peers, node-00042 backend %q", i, len(h.peers), h.peers[41].Backend)
		}
	}
	t.Logf("\nNODES  RUN→FULL SET  RSS BEFORE  RSS AT FULL SET  AFTER GC   ONE CHANGE → HANDOUT (5 runs)\n%-6d %-13v %-11s %-16s %-10s %v",
		count, full.Round(time.Millisecond), mib(rssBefore), mib(rssAfter)+" (+"+mib(rssAfter-rssBefore)+")",
		mib(rssGC), lat)
}

func vmRSS(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
