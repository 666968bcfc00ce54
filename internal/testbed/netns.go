package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/taprouter/taprouter/link"
)

// commandTimeout bounds every short command (ip, sysctl, bridge).
const commandTimeout = 30 * time.Second

// Netns is a named network namespace, /var/run/netns/<Name>.
type Netns struct {
	Name string
}

// Path is the namespace's bind mount, as taprouterd's config wants it.
func (n *Netns) Path() string { return "/var/run/netns/" + n.Name }

// Command returns a command that runs inside the namespace through
// "ip netns exec", which also remounts /sys for it.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a short command inside the namespace and returns its combined
// output; the error includes the output.
func (n *Netns) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return output(n.Command(ctx, args[0], args[1:]...))
}

// IP runs "ip -n <ns> args...".
func (n *Netns) IP(args ...string) (string, error) {
	return run("ip", append([]string{"-n", n.Name}, args...)...)
}

func (n *Netns) delete() error {
	_, err := run("ip", "netns", "del", n.Name)
	return err
}

// run runs a short command in the caller's namespace. The test bed only uses
// it for commands that name their target namespace (ip -n, ip netns).
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return output(exec.CommandContext(ctx, name, args...))
}

func output(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Link is what "ip -j link show" says about a device.
type Link struct {
	Name string
	MAC  link.HardwareAddr
	MTU  int
	Up   bool
}

// Link describes the device dev in the namespace.
func (n *Netns) Link(dev string) (Link, error) {
	out, err := n.IP("-j", "link", "show", "dev", dev)
	if err != nil {
		return Link{}, err
	}
	var links []struct {
		Name      string   `json:"ifname"`
		Address   string   `json:"address"`
		MTU       int      `json:"mtu"`
		Flags     []string `json:"flags"`
		Operstate string   `json:"operstate"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return Link{}, fmt.Errorf("testbed: %s: cannot parse ip link output %q", n.Name, out)
	}
	l := links[0]
	mac, err := link.ParseMAC(l.Address)
	if err != nil {
		return Link{}, fmt.Errorf("testbed: %s: %s: %w", n.Name, dev, err)
	}
	up := false
	for _, f := range l.Flags {
		up = up || f == "UP"
	}
	return Link{Name: l.Name, MAC: mac, MTU: l.MTU, Up: up}, nil
}

// HasLink reports whether the namespace has a device named dev.
func (n *Netns) HasLink(dev string) (bool, error) {
	out, err := n.IP("-j", "link", "show")
	if err != nil {
		return false, err
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return false, fmt.Errorf("testbed: %s: cannot parse ip link output %q", n.Name, out)
	}
	for _, l := range links {
		if l.Name == dev {
			return true, nil
		}
	}
	return false, nil
}

// Neighbour is an entry of the kernel's neighbour (ARP) table.
type Neighbour struct {
	IP    netip.Addr
	MAC   link.HardwareAddr
	State string // REACHABLE, STALE, DELAY, PROBE, PERMANENT, FAILED, ...
}

// Neighbour returns the namespace's ARP entry for ip on dev; ok is false when
// there is none.
func (n *Netns) Neighbour(dev string, ip netip.Addr) (nb Neighbour, ok bool, err error) {
	out, err := n.IP("-j", "neigh", "show", "to", ip.String(), "dev", dev)
	if err != nil {
		return nb, false, err
	}
	var entries []struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		return nb, false, fmt.Errorf("testbed: %s: cannot parse ip neigh output %q", n.Name, out)
	}
	if len(entries) == 0 {
		return nb, false, nil
	}
	e := entries[0]
	nb.IP = ip
	nb.State = strings.Join(e.State, ",")
	if e.LLAddr != "" {
		if nb.MAC, err = link.ParseMAC(e.LLAddr); err != nil {
			return nb, false, err
		}
	}
	return nb, true, nil
}

// Sysctl sets a sysctl inside the namespace (the net.* ones are per
// namespace).
func (n *Netns) Sysctl(key, value string) error {
	_, err := n.Run("sysctl", "-q", "-w", key+"="+value)
	return err
}
