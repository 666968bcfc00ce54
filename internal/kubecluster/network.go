package kubecluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// runHost runs a short command in the machine's namespaces (ip netns add,
// ip -n ..., mount): nothing it runs configures the root namespace.
func runHost(ctx context.Context, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// addNetns creates a network namespace (recorded first) with lo up, IPv6
// off and the given sysctls.
func (c *Cluster) addNetns(ctx context.Context, name string, sysctls ...string) error {
	if err := c.state.update(func(s *state) { s.Netns = append(s.Netns, name) }); err != nil {
		return err
	}
	if _, err := runHost(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	args := []string{"ip", "netns", "exec", name, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"}
	if _, err := runHost(ctx, append(args, sysctls...)...); err != nil {
		return err
	}
	_, err := runHost(ctx, "ip", "-n", name, "link", "set", "lo", "up")
	return err
}

// network makes the switch namespace with the underlay bridge, and the
// control plane's and each node's namespace with an eth0 on it.
func (c *Cluster) network(ctx context.Context) error {
	sw := c.Name + "-sw"
	if err := c.addNetns(ctx, sw); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "addr", "add", netip.PrefixFrom(Gateway, Underlay.Bits()).String(), "dev", "br0"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
	} {
		if _, err := runHost(ctx, argv...); err != nil {
			return err
		}
	}
	attach := func(ns string, addr netip.Addr, port string) error {
		for _, argv := range [][]string{
			{"ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "-n", sw, "link", "set", port, "master", "br0", "up"},
			{"ip", "-n", ns, "addr", "add", netip.PrefixFrom(addr, Underlay.Bits()).String(), "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			{"ip", "-n", ns, "route", "add", "default", "via", Gateway.String()},
		} {
			if _, err := runHost(ctx, argv...); err != nil {
				return err
			}
		}
		return nil
	}
	if err := c.addNetns(ctx, c.ControlPlane); err != nil {
		return err
	}
	if err := attach(c.ControlPlane, APIServerAddr, "cp"); err != nil {
		return err
	}
	for i := range c.Config.Nodes {
		name := fmt.Sprintf("node%d", i+1)
		ns := fmt.Sprintf("%s-n%d", c.Name, i+1)
		// ip_forward: every Kubernetes node forwards (kube-proxy's DNAT
		// of pod traffic, egress).
		if err := c.addNetns(ctx, ns, "net.ipv4.ip_forward=1"); err != nil {
			return err
		}
		if err := attach(ns, NodeAddr(i), fmt.Sprintf("n%d", i+1)); err != nil {
			return err
		}
		c.Nodes = append(c.Nodes, &Node{Name: name, Addr: NodeAddr(i).AsSlice(), Netns: ns})
	}
	return nil
}

// unmount detaches a mount (lazily: a namespace file may be busy).
func unmount(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
		return fmt.Errorf("umount %s: %w", path, err)
	}
	return nil
}

// stopPid sends SIGTERM to pid and waits up to grace for it to go, then
// SIGKILLs it.
func stopPid(pid int, grace time.Duration) {
	if pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// nameFree refuses a cluster name whose namespaces or cgroups exist: they
// are another cluster's (or someone's), and Down would remove them.
func nameFree(name string) error {
	found, _ := filepath.Glob("/run/netns/" + name + "-*")
	mounts, err := allCgroupMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		cgs, _ := filepath.Glob(filepath.Join(m, name+"-node*"))
		found = append(found, cgs...)
	}
	if len(found) > 0 {
		return fmt.Errorf("kubecluster: name %s is taken: %s exist (another cluster's? taprouter-cluster down, or another --name)", name, strings.Join(found, ", "))
	}
	return nil
}

// unmountUnder detaches every mount at or under dir, deepest first, until
// none is left (a mount stacked twice needs two).
func unmountUnder(dir string) error {
	for range 20 {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var points []string
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				points = append(points, f[4])
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			if err := unmount(p); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("mounts under %s remain after 20 rounds of unmounting", dir)
}
