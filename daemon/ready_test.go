package daemon

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// Ready names exactly what keeps the node from forwarding: a router that
// is not running, a missing host port, a host port device that is down,
// and it is ready when none of these holds.
func TestReady(t *testing.T) {
	node := netnstest.New(t, "ready")
	node.Do(func() {
		d := podDaemon(t, t.TempDir())
		d.cfg.HostPort.Name = "trready0"
		want := func(what string, problems ...string) {
			t.Helper()
			r := d.Ready()
			if r.Ready != (len(problems) == 0) || !slices.Equal(r.Problems, problems) {
				t.Errorf("%s: ready %v, problems %q; want ready %v, problems %q", what, r.Ready, r.Problems, len(problems) == 0, problems)
			}
		}
		want("before setup", "the router is not running", "the router has no host port",
			"host port trready0: Link not found")

		node.IP("addr", "add", "192.0.2.10/32", "dev", "lo") // the route's source, as the underlay address is
		hp, err := podnet.CreateHostPort("trready0", 1450, []netip.Prefix{d.cfg.PodCIDR}, netip.MustParseAddr("192.0.2.10"))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.router.SetHostPort(hp, "trready0"); err != nil {
			hp.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { podnet.RemoveHostPort("trready0") })
		d.router.Start()
		want("router started, daemon not yet", "the router is not running")
		d.running.Store(true)
		want("running")

		node.IP("link", "set", "trready0", "down")
		want("host port set down", "host port trready0 is not up (ip link set trready0 up)")
		node.IP("link", "set", "trready0", "up")
		want("host port set up again")

		d.running.Store(false) // as Close does first
		want("closing", "the router is not running")
	})
}
