package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/taprouter/taprouter/internal/testbed"
)

// scaleNodes is how many Node objects TestKubeScale creates:
// $TAPROUTER_KUBE_SCALE, else 5000 (the benchmark).
func scaleNodes() int {
	if n, err := strconv.Atoi(os.Getenv("TAPROUTER_KUBE_SCALE")); err == nil && n > 1 {
		return n
	}
	return 5000
}

// TestKubeScale is the 5,000-Node benchmark: the Nodes are created in the
// real API server first, then one real taprouterd starts in Kubernetes
// mode. It prints the time from the daemon's start until it holds the full
// peer set (its API answers only then, and GET /v1/peers lists every
// other Node), its RSS, and the latency from one Node's InternalIP change
// to the daemon's peer change at that size (5 changes). It asserts exact
// peer counts and addresses, not times.
func TestKubeScale(t *testing.T) {
	requireDaemon(t)
	count := scaleNodes()
	kc := newKubeCluster(t, kubeSpecs(1))
	cs, err := kubernetes.NewForConfig(kc.API.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now()
	idx := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 16 {
		wg.Go(func() {
			for i := range idx {
				if err := createScaleNode(ctx, cs, i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := 1; i < count; i++ {
		idx <- i
	}
	close(idx)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	created := time.Since(t0)

	n := kc.Nodes[0]
	start := time.Now()
	d, err := kc.Bed.StartKubeDaemon(n.Node, kc.API.Kubeconfig, []byte("backend: vxlan\n"))
	if err != nil {
		t.Fatal(err)
	}
	var full time.Duration
	for {
		ps, err := d.Peers()
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == count-1 {
			full = time.Since(start)
			break
		}
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("taprouterd holds %d peers 2 minutes after start, want %d", len(ps), count-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rss := processRSS(t, d.Pid())

	var lat []time.Duration
	for i := range 5 {
		addr := fmt.Sprintf("10.2.0.%d", 10+i)
		c0 := time.Now()
		setScaleAddress(t, ctx, cs, "node-00042", addr)
		for {
			ps, err := d.Peers()
			if err != nil {
				t.Fatal(err)
			}
			j := slices.IndexFunc(ps, func(p testbed.RouterPeer) bool { return p.Node == "node-00042" })
			if len(ps) == count-1 && j >= 0 && ps[j].Address == addr {
				lat = append(lat, time.Since(c0).Round(100*time.Microsecond))
				break
			}
			if time.Since(c0) > 10*time.Second {
				t.Fatalf("change %d: node-00042 not at %s 10 s after its InternalIP changed", i, addr)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	t.Logf("\nNODES  CREATED IN  START → FULL PEER SET  TAPROUTERD RSS  NODE CHANGE → PEER CHANGE (5 runs, sorted; median %v)\n%-6d %-11v %-21v %-15s %v",
		lat[2], count, created.Round(time.Millisecond), full.Round(time.Millisecond), fmt.Sprintf("%.1f MiB", float64(rss)/(1<<20)), lat)
}

// createScaleNode creates node-<i> with podCIDR 10.(128+i/256).(i%256).0/24
// and InternalIP 10.1.(i/256).(i%256), outside every namespace's networks:
// nothing is ever sent to them.
func createScaleNode(ctx context.Context, cs kubernetes.Interface, i int) error {
	name := fmt.Sprintf("node-%05d", i)
	cidr := fmt.Sprintf("10.%d.%d.0/24", 128+i/256, i%256)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDR: cidr, PodCIDRs: []string{cidr}}}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.1.%d.%d", i/256, i%256)}}
	_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func setScaleAddress(t *testing.T, ctx context.Context, cs kubernetes.Interface, name, addr string) {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// processRSS is VmRSS of process pid, in bytes.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	m, err := testbed.ProcessMemory(pid)
	if err != nil {
		t.Fatal(err)
	}
	return int64(m.RSS)
}
