package daemon

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/taprouter/taprouter/api"
)

// Ready implements api.Backend: the node forwards when the router runs (set
// up and started, not closing), its host port is attached and not down, the
// host port's device is up in the node's namespace (the node reaches its
// pods through it), and the node's pod CIDR is known. It takes no lock that
// a port change holds, so that a probe is answered while a pod's namespace
// is slow to open.
func (d *Daemon) Ready() api.Readiness {
	var problems []string
	if !d.running.Load() {
		problems = append(problems, "the router is not running")
	}
	if !d.cfg.PodCIDR.IsValid() {
		problems = append(problems, "the node's pod CIDR is not known yet")
	}
	name := d.cfg.HostPort.Name
	attached := false
	for _, p := range d.router.Ports() {
		if p.Kind != "host" {
			continue
		}
		attached = true
		if p.Down {
			problems = append(problems, fmt.Sprintf("host port %s is down in the router: %s", p.Name, p.DownReason))
		}
	}
	if !attached {
		problems = append(problems, "the router has no host port")
	}
	switch l, err := netlink.LinkByName(name); {
	case err != nil:
		problems = append(problems, fmt.Sprintf("host port %s: %v", name, err))
	case l.Attrs().Flags&net.FlagUp == 0:
		problems = append(problems, fmt.Sprintf("host port %s is not up (ip link set %s up)", name, name))
	}
	return api.Readiness{Ready: len(problems) == 0, Problems: problems}
}
