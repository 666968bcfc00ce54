package daemon

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/podnet/netnstest"
)

// The underlay's subnets are reserved from peers' pod ranges, except one
// that holds this node's own pod range. (found by attack review)
func TestUnderlayReserved(t *testing.T) {
	node := netnstest.New(t, "resv")
	node.Do(func() {
		node.IP("link", "add", "ul0", "type", "veth", "peer", "name", "ul0p")
		node.IP("addr", "add", "192.168.77.2/24", "dev", "ul0")
		node.IP("addr", "add", "10.0.0.5/8", "dev", "ul0")
		node.IP("addr", "add", "192.168.78.9/32", "dev", "ul0")
		got, err := underlayReserved("ul0", netip.MustParsePrefix("10.244.0.0/24"))
		if want := []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")}; err != nil || !slices.Equal(got, want) {
			t.Fatalf("underlayReserved = %v, %v; want %v", got, err, want)
		}
	})
}

// A node route never replaces a route of another device to the same
// prefix: a peer whose pod range is, say, docker0's subnet or the
// underlay's would otherwise take the node's traffic to it and, on
// removal, leave no route at all. (found by attack review)
func TestNodeRouteKeepsForeignRoute(t *testing.T) {
	node := netnstest.New(t, "nroute")
	node.Do(func() {
		node.IP("link", "add", "other0", "type", "veth", "peer", "name", "other0p")
		node.IP("link", "set", "other0", "up")
		node.IP("link", "set", "other0p", "up")
		node.IP("addr", "add", "172.30.0.1/24", "dev", "other0")
		node.IP("link", "add", "hp0", "type", "veth", "peer", "name", "hp0p")
		node.IP("link", "set", "hp0", "up")
		node.IP("link", "set", "hp0p", "up")
		node.IP("route", "add", "172.31.0.0/24", "dev", "other0", "metric", "100")
		nr := &nodeRoutes{dev: "hp0"}
		for _, c := range []string{"172.30.0.0/24", "172.31.0.0/24"} {
			err := nr.AddRoute(netip.MustParsePrefix(c))
			if err == nil || !strings.Contains(err.Error(), "other0") {
				t.Errorf("AddRoute(%s) = %v, want an error naming other0", c, err)
			}
		}
		if out := node.IP("route", "show", "172.30.0.0/24"); !strings.Contains(out, "dev other0") || strings.Contains(out, "hp0") {
			t.Errorf("route to 172.30.0.0/24 now %q, want other0's alone", out)
		}
		if out := node.IP("route", "show", "172.31.0.0/24"); strings.Contains(out, "hp0") {
			t.Errorf("route to 172.31.0.0/24 now %q, want other0's alone", out)
		}
		p := netip.MustParsePrefix("10.244.1.0/24")
		for i := 0; i < 2; i++ { // a route of our own is replaced: idempotent
			if err := nr.AddRoute(p); err != nil {
				t.Fatalf("AddRoute(%s) #%d: %v", p, i, err)
			}
		}
		if out := node.IP("route", "show", p.String()); strings.Count(out, "\n") != 1 || !strings.Contains(out, "dev hp0") {
			t.Errorf("route to %s: %q, want one via hp0", p, out)
		}
		if err := nr.DelRoute(p); err != nil {
			t.Fatal(err)
		}
		if out := node.IP("route", "show", p.String()); out != "" {
			t.Errorf("after DelRoute: %q", out)
		}
	})
}
