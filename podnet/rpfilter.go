package podnet

import (
	"bytes"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ipv4DevconfRPFilter is IPV4_DEVCONF_RP_FILTER (include/uapi/linux/ip.h):
// the index of rp_filter among an interface's IPv4 settings.
const ipv4DevconfRPFilter = 8

// RPFilter returns net.ipv4.conf.<ifname>.rp_filter of the calling
// thread's namespace (0 off, 1 strict, 2 loose).
func RPFilter(ifname string) (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + ifname + "/rp_filter")
	if err != nil {
		return 0, err
	}
	var v int
	if _, err := fmt.Sscanf(string(bytes.TrimSpace(b)), "%d", &v); err != nil {
		return 0, fmt.Errorf("rp_filter of %s: %q: %w", ifname, b, err)
	}
	return v, nil
}

// SetRPFilter sets net.ipv4.conf.<ifname>.rp_filter to mode in the
// calling thread's namespace through rtnetlink (RTM_SETLINK with the
// interface's IPv4 devconf in IFLA_AF_SPEC), as `ip link` would, not
// through /proc/sys: in a container /proc/sys is read-only even with
// CAP_NET_ADMIN, which is all this needs. It returns whether the value
// changed.
func SetRPFilter(ifname string, mode int) (changed bool, err error) {
	if mode < 0 || mode > 2 {
		return false, fmt.Errorf("rp_filter %d: want 0, 1 or 2", mode)
	}
	if cur, err := RPFilter(ifname); err == nil && cur == mode {
		return false, nil
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	conf := spec.AddRtAttr(unix.AF_INET, nil).AddRtAttr(unix.IFLA_INET_CONF, nil)
	conf.AddRtAttr(ipv4DevconfRPFilter, nl.Uint32Attr(uint32(mode)))
	req.AddData(spec)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return false, fmt.Errorf("set rp_filter of %s to %d: %w", ifname, mode, err)
	}
	if cur, err := RPFilter(ifname); err != nil || cur != mode {
		return false, fmt.Errorf("set rp_filter of %s to %d: reads %d after (%v)", ifname, mode, cur, err)
	}
	return true, nil
}
