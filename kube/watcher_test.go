package kube

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/taprouter/taprouter/peers"
)

const me = "node-a"

func TestAddChangeDelete(t *testing.T) {
	api := newFakeAPI(
		node(me, "192.168.49.2", "10.244.0.0/24", nil),
		node("node-c", "192.168.49.4", "10.244.2.0/24", nil),
		node("node-b", "192.168.49.3", "10.244.1.0/24", nil),
	)
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	us := self(me, "192.168.49.2", "10.244.0.0/24")
	b := peer("node-b", "192.168.49.3", "10.244.1.0/24")
	c := peer("node-c", "192.168.49.4", "10.244.2.0/24")
	r.expect(t, us, b, c) // sorted by name, not by creation
	api.waitWatch(t)

	d := peer("node-d", "192.168.49.5", "10.244.3.0/24")
	api.create(t, node("node-d", "192.168.49.5", "10.244.3.0/24", nil))
	r.expect(t, us, b, c, d)

	api.update(t, node("node-b", "192.168.49.13", "10.244.1.0/24", nil)) // InternalIP
	b = peer("node-b", "192.168.49.13", "10.244.1.0/24")
	r.expect(t, us, b, c, d)

	api.update(t, node("node-c", "192.168.49.4", "10.244.12.0/24", nil)) // podCIDR
	c = peer("node-c", "192.168.49.4", "10.244.12.0/24")
	r.expect(t, us, b, c, d)

	api.update(t, node("node-d", "192.168.49.5", "10.244.3.0/24", map[string]string{AnnotationBackend: "udp"}))
	d.Backend = "udp"
	r.expect(t, us, b, c, d)

	api.delete(t, "node-c")
	r.expect(t, us, b, d)

	// Our own address changes: self follows.
	api.update(t, node(me, "192.168.49.22", "10.244.0.0/24", nil))
	r.expect(t, self(me, "192.168.49.22", "10.244.0.0/24"), b, d)

	// A change that does not touch what peers need hands out nothing.
	n := node("node-b", "192.168.49.13", "10.244.1.0/24", map[string]string{"example.com/unrelated": "x"})
	n.Labels = map[string]string{"zone": "a"}
	api.update(t, n)
	r.none(t, 300*time.Millisecond)
}

// A burst of changes within the debounce window is handed out once.
func TestBurstCoalesced(t *testing.T) {
	api := newFakeAPI(node(me, "192.168.49.2", "10.244.0.0/24", nil))
	// A window far longer than 20 creates take on a loaded machine (under
	// -race in CI they once took over 200 ms): the test is about
	// coalescing, not about the window's length.
	r := startWatcher(t, Config{Client: api.cs, NodeName: me, Debounce: 2 * time.Second})
	us := self(me, "192.168.49.2", "10.244.0.0/24")
	r.expect(t, us)
	api.waitWatch(t)
	var want []peers.Peer
	for i := range 20 {
		name := "node-" + string(rune('b'+i))
		ip := "192.168.49." + itoa(10+i)
		cidr := "10.244." + itoa(1+i) + ".0/24"
		api.create(t, node(name, ip, cidr, nil))
		want = append(want, peer(name, ip, cidr))
	}
	h := r.expect(t, us, want...)
	if d := h.at.Sub(r.start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	r.none(t, 2500*time.Millisecond)
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestPodCIDRArrivesLate(t *testing.T) {
	api := newFakeAPI(
		node(me, "192.168.49.2", "", nil),
		node("node-b", "192.168.49.3", "", nil),
	)
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	api.waitWatch(t)
	r.none(t, 300*time.Millisecond) // our own Node has no podCIDR: nothing to forward with

	// Changes while we wait log nothing new.
	api.update(t, node(me, "192.168.49.2", "", map[string]string{"example.com/x": "1"}))
	r.none(t, 300*time.Millisecond)
	if n := r.count("waiting for this node's Node"); n != 1 {
		t.Errorf("logged the wait for our podCIDR %d times, want 1:\n%s", n, r.dump())
	}

	us := self(me, "192.168.49.2", "10.244.0.0/24")
	api.update(t, node(me, "192.168.49.2", "10.244.0.0/24", nil))
	r.expect(t, us) // node-b has no podCIDR yet: not a peer
	if n := r.count("waiting for Node"); n != 1 {
		t.Errorf("logged the wait for node-b %d times, want 1:\n%s", n, r.dump())
	}
	api.update(t, node("node-b", "192.168.49.3", "10.244.1.0/24", nil))
	r.expect(t, us, peer("node-b", "192.168.49.3", "10.244.1.0/24"))
	if n := r.count("Node ready"); n != 2 {
		t.Errorf("logged %d Node ready lines, want 2 (us, node-b):\n%s", n, r.dump())
	}
}

func TestOwnNodeMissing(t *testing.T) {
	api := newFakeAPI(node("node-b", "192.168.49.3", "10.244.1.0/24", nil))
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	api.waitWatch(t)
	r.none(t, 300*time.Millisecond)
	api.create(t, node(me, "192.168.49.2", "10.244.0.0/24", nil))
	r.expect(t, self(me, "192.168.49.2", "10.244.0.0/24"), peer("node-b", "192.168.49.3", "10.244.1.0/24"))
	if n := r.count("does not exist"); n != 1 {
		t.Errorf("logged the missing Node %d times, want 1", n)
	}
}

func TestFlannelPeer(t *testing.T) {
	flannel := map[string]string{
		FlannelBackendType:       "vxlan",
		FlannelBackendData:       `{"VNI":1,"VtepMAC":"6e:1f:33:44:55:66"}`,
		FlannelPublicIP:          "192.168.49.30",
		FlannelKubeSubnetManager: "true",
	}
	api := newFakeAPI(
		node(me, "192.168.49.2", "10.244.0.0/24", nil),
		node("flannel-1", "192.168.49.3", "10.244.1.0/24", flannel),
	)
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	f := peer("flannel-1", "192.168.49.30", "10.244.1.0/24")
	f.Backend, f.VTEPMAC = "vxlan", mac("6e:1f:33:44:55:66")
	r.expect(t, self(me, "192.168.49.2", "10.244.0.0/24"), f)
}

// Hostile annotations: the node is used with the next source or the
// default, logged once, and never poisons the others.
func TestHostileAnnotations(t *testing.T) {
	huge := strings.Repeat("a", 200_000)
	api := newFakeAPI(
		node(me, "192.168.49.2", "10.244.0.0/24", nil),
		node("node-b", "192.168.49.3", "10.244.1.0/24", map[string]string{
			AnnotationBackend:  huge,
			AnnotationVTEPMAC:  "ff:ff:ff:ff:ff:ff",
			AnnotationPublicIP: "127.0.0.1",
			FlannelBackendType: "vxlan",
			FlannelBackendData: `{"VNI":1,"VtepMAC":`,
		}),
		node("node-c", "192.168.49.4", "10.244.2.0/24", map[string]string{
			FlannelBackendType: "wireguard",
			FlannelPublicIP:    "::1",
		}),
	)
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	b := peer("node-b", "192.168.49.3", "10.244.1.0/24")
	b.Backend = "vxlan" // flannel's backend-type is the next valid source
	c := peer("node-c", "192.168.49.4", "10.244.2.0/24")
	r.expect(t, self(me, "192.168.49.2", "10.244.0.0/24"), b, c)
	if n := r.count("annotations skipped"); n != 2 {
		t.Errorf("logged %d annotation problems, want 2 (one per node):\n%s", n, r.dump())
	}
	for _, e := range r.logs.All() {
		if s := e.ContextMap(); len(strings.Join(anyStrings(s["problems"]), "")) > 2000 {
			t.Errorf("a log line carries the hostile value: %d bytes", len(strings.Join(anyStrings(s["problems"]), "")))
		}
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	var s []string
	for _, x := range l {
		str, _ := x.(string)
		s = append(s, str)
	}
	return s
}

// A re-list and an outage that change nothing hand out nothing; both are
// logged once.
func TestRelistAndOutageHandOutNothing(t *testing.T) {
	api := newFakeAPI(
		node(me, "192.168.49.2", "10.244.0.0/24", nil),
		node("node-b", "192.168.49.3", "10.244.1.0/24", nil),
	)
	r := startWatcher(t, Config{Client: api.cs, NodeName: me})
	us := self(me, "192.168.49.2", "10.244.0.0/24")
	b := peer("node-b", "192.168.49.3", "10.244.1.0/24")
	r.expect(t, us, b)
	api.waitWatch(t)

	// The watch expires: the informer re-lists the same Nodes.
	lists := api.listCount()
	api.mu.Lock()
	api.expire = true
	api.mu.Unlock()
	api.breakWatch()
	api.waitWatch(t)
	if api.listCount() == lists {
		t.Fatal("the informer did not re-list")
	}
	r.none(t, 300*time.Millisecond)

	// The API server goes away.
	api.setDown(true)
	api.breakWatch()
	deadline := time.Now().Add(10 * time.Second)
	for r.count("API server unreachable") == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let the informer fail a few more times
	r.none(t, 0)
	api.setDown(false)
	// The reflector retries with backoff (seen: over 10 s on a loaded
	// machine); the same bound as e2e's TestKubeAPIOutage.
	api.waitWatchWithin(t, 65*time.Second)
	r.none(t, 300*time.Millisecond)
	if n := r.count("API server unreachable, forwarding on last known state"); n != 1 {
		t.Errorf("logged the outage %d times, want 1:\n%s", n, r.dump())
	}
	if n := r.count("API server reachable again"); n != 1 {
		t.Errorf("logged the recovery %d times, want 1:\n%s", n, r.dump())
	}

	// Still live afterwards.
	api.delete(t, "node-b")
	r.expect(t, us)
}

func TestAnnounce(t *testing.T) {
	api := newFakeAPI(node(me, "192.168.49.2", "10.244.0.0/24", map[string]string{
		"example.com/keep": "yes",
	}))
	r := startWatcher(t, Config{Client: api.cs, NodeName: me, Announce: Announcement{Backend: "vxlan"}})
	r.expect(t, self(me, "192.168.49.2", "10.244.0.0/24"))
	want := map[string]string{
		"example.com/keep":       "yes",
		AnnotationBackend:        "vxlan",
		AnnotationPublicIP:       "192.168.49.2",
		AnnotationVTEPMAC:        "0a:58:c0:a8:31:02",
		FlannelBackendType:       "vxlan",
		FlannelBackendData:       `{"VNI":1,"VtepMAC":"0a:58:c0:a8:31:02"}`,
		FlannelPublicIP:          "192.168.49.2",
		FlannelKubeSubnetManager: "true",
	}
	waitAnnotations(t, api, want)

	// Someone strips them (or the Node is registered again): published again.
	n := node(me, "192.168.49.2", "10.244.0.0/24", map[string]string{"example.com/keep": "yes"})
	api.update(t, n)
	waitAnnotations(t, api, want)
	if n := r.waitCount("published this node's annotations", 2); n != 2 {
		t.Errorf("published %d times, want 2:\n%s", n, r.dump())
	}
	patches := 0
	for _, a := range api.cs.Actions() {
		if a.GetVerb() == "patch" {
			patches++
		}
	}
	if patches != 2 {
		t.Errorf("%d patches, want 2", patches)
	}
}

// Switching away from vxlan removes flannel's annotations.
func TestAnnounceDirectRemovesFlannel(t *testing.T) {
	api := newFakeAPI(node(me, "192.168.49.2", "10.244.0.0/24", map[string]string{
		FlannelBackendType:       "vxlan",
		FlannelBackendData:       `{"VNI":1,"VtepMAC":"6e:1f:33:44:55:66"}`,
		FlannelPublicIP:          "192.168.49.2",
		FlannelKubeSubnetManager: "true",
		AnnotationVTEPMAC:        "0a:58:c0:a8:31:02",
	}))
	startWatcher(t, Config{Client: api.cs, NodeName: me, Announce: Announcement{
		Backend: "direct", PublicIP: mustAddr("192.168.50.2"),
	}})
	waitAnnotations(t, api, map[string]string{
		AnnotationBackend:  "direct",
		AnnotationPublicIP: "192.168.50.2",
	})
}

func waitAnnotations(t *testing.T, api *fakeAPI, want map[string]string) {
	t.Helper()
	var got map[string]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		n, err := api.cs.CoreV1().Nodes().Get(context.Background(), me, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got = n.Annotations
		if equalMaps(got, want) {
			return
		}
	}
	t.Fatalf("annotations\n got %v\nwant %v", got, want)
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNew(t *testing.T) {
	api := newFakeAPI()
	ok := Config{Client: api.cs, NodeName: me, OnChange: func(Self, []peers.Peer) {}}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"no client":     func(c *Config) { c.Client = nil },
		"no node":       func(c *Config) { c.NodeName = "" },
		"no callback":   func(c *Config) { c.OnChange = nil },
		"bad backend":   func(c *Config) { c.Announce.Backend = "ipip" },
		"IPv6 underlay": func(c *Config) { c.Announce = Announcement{Backend: "vxlan", PublicIP: mustAddr("fd00::1")} },
	} {
		c := ok
		edit(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestNodeName(t *testing.T) {
	t.Setenv("NODE_NAME", "from-env")
	if got := NodeName("from-flag"); got != "from-flag" {
		t.Errorf("flag: %q", got)
	}
	if got := NodeName(""); got != "from-env" {
		t.Errorf("env: %q", got)
	}
	t.Setenv("NODE_NAME", "")
	if got := NodeName(""); got == "" || got != strings.ToLower(got) {
		t.Errorf("hostname: %q", got)
	}
}
