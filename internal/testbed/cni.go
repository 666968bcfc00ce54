package testbed

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/taprouter/taprouter/internal/inns"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// cniTimeout bounds one cnitool or plugin run.
const cniTimeout = 60 * time.Second

// CNI runs CNI plugins inside a node's namespace the way a container runtime
// does, with everything they keep on disk in the bed: the network
// configuration list in a private NETCONFPATH, host-local's leases in a
// private dataDir, and libcni's result cache, which cnitool always puts in
// /var/lib/cni, on a private directory bind-mounted over /var/lib in the
// mount namespace "ip netns exec" gives each command (the mount does not
// propagate to the machine).
type CNI struct {
	Node *Node
	// Network is the network's name, from the configuration list.
	Network string
	// Path is CNI_PATH: where the plugins are.
	Path string
	// ConfDir is NETCONFPATH: the directory holding the configuration list.
	ConfDir string
	// DataDir is the dataDir of every host-local IPAM in the list.
	DataDir string

	varLib string // bound over /var/lib for cnitool
}

// NewCNI writes conflist (a network configuration list) for node, with the
// dataDir of every host-local IPAM in it set to the bed's own directory.
// path is the CNI_PATH list of plugin directories.
func (b *Bed) NewCNI(node *Node, path []string, conflist []byte) (*CNI, error) {
	var list map[string]any
	if err := json.Unmarshal(conflist, &list); err != nil {
		return nil, fmt.Errorf("testbed: configuration list: %w", err)
	}
	c := &CNI{
		Node:    node,
		Path:    strings.Join(path, string(os.PathListSeparator)),
		ConfDir: b.file(node.Name + "-net.d"),
		DataDir: b.file(node.Name + "-cni-leases"),
		varLib:  b.file(node.Name + "-var-lib"),
	}
	c.Network, _ = list["name"].(string)
	plugins, _ := list["plugins"].([]any)
	for _, p := range plugins {
		if ipam, ok := p.(map[string]any)["ipam"].(map[string]any); ok && ipam["type"] == "host-local" {
			ipam["dataDir"] = c.DataDir
		}
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	for _, dir := range []string{c.ConfDir, c.DataDir, c.varLib} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(c.ConfDir, "10-"+c.Network+".conflist"), out, 0o644); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	return c, nil
}

// CNIToolError is a failed cnitool run.
type CNIToolError struct {
	Args   []string
	Output string // stdout and stderr
	Err    error
}

func (e *CNIToolError) Error() string {
	return fmt.Sprintf("cnitool %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Output))
}

// Tool runs "cnitool args..." in the node's namespace with the private
// configuration and cache; capArgs, if not empty, is CAP_ARGS (runtime
// capabilities such as portMappings and bandwidth, as JSON). It returns stdout; a failure
// is a *CNIToolError.
func (c *CNI) Tool(capArgs string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	// $0 is the directory to bind over /var/lib; "$@" is cnitool's command.
	script := `mount --bind "$0" /var/lib && exec cnitool "$@"`
	cmd := c.Node.Command(ctx, "sh", append([]string{"-c", script, c.varLib}, args...)...)
	// cnitool is found in CNI_PATH, next to the plugins.
	cmd.Env = append(os.Environ(), "NETCONFPATH="+c.ConfDir, "CNI_PATH="+c.Path, "CAP_ARGS="+capArgs,
		"PATH="+c.Path+string(os.PathListSeparator)+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &CNIToolError{Args: args, Output: stdout.String() + stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Add runs "cnitool add" for pod and returns the result the chain printed.
func (c *CNI) Add(pod *Netns, capArgs string) (*current.Result, error) {
	out, err := c.Tool(capArgs, "add", c.Network, pod.Path())
	if err != nil {
		return nil, err
	}
	res := &current.Result{}
	if err := json.Unmarshal(out, res); err != nil {
		return nil, fmt.Errorf("testbed: cnitool add %s: result: %w in %s", pod.Name, err, out)
	}
	return res, nil
}

// Del runs "cnitool del" for pod.
func (c *CNI) Del(pod *Netns, capArgs string) error {
	_, err := c.Tool(capArgs, "del", c.Network, pod.Path())
	return err
}

// Check runs "cnitool check" for pod; capArgs is CAP_ARGS, as for Add.
func (c *CNI) Check(pod *Netns, capArgs string) error {
	_, err := c.Tool(capArgs, "check", c.Network, pod.Path())
	return err
}

// ContainerID is the container ID cnitool gives pod's attachment: a hash of
// its netns path.
func ContainerID(pod *Netns) string {
	sum := sha512.Sum512([]byte(pod.Path()))
	return fmt.Sprintf("cnitool-%x", sum[:10])
}

// Leases lists the addresses host-local has handed out (one file each).
func (c *CNI) Leases() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.DataDir, c.Network))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	var leases []string
	for _, e := range entries {
		// host-local's own files: the lock and the last address per range.
		if name := e.Name(); name != "lock" && !strings.HasPrefix(name, "last_reserved_ip.") {
			leases = append(leases, name)
		}
	}
	slices.Sort(leases)
	return leases, nil
}

// PluginRun is how one direct run of a plugin ended.
type PluginRun struct {
	Stdout   []byte
	Stderr   string
	ExitCode int
}

// RunPlugin runs the plugin binary name from c.Path inside the node's
// namespace as a runtime does: with exactly the CNI variables in env (plus
// CNI_PATH) and stdin.
func (c *CNI) RunPlugin(name string, env map[string]string, stdin []byte) (PluginRun, error) {
	var bin string
	for _, dir := range filepath.SplitList(c.Path) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			bin = filepath.Join(dir, name)
			break
		}
	}
	if bin == "" {
		return PluginRun{}, fmt.Errorf("testbed: no plugin %s in %s", name, c.Path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	args := []string{"-i", "CNI_PATH=" + c.Path}
	for k, v := range env {
		args = append(args, k+"="+v)
	}
	cmd := c.Node.Command(ctx, "env", append(args, bin)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := PluginRun{Stdout: stdout.Bytes(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.ExitCode = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("testbed: run %s: %w", name, err)
	}
	return r, nil
}

// Do runs f on an OS thread switched into the namespace: sockets f opens
// belong to the namespace, and can be used from any goroutine afterwards.
func (n *Netns) Do(f func() error) error {
	if err := inns.DoPath(n.Path(), f); err != nil {
		return fmt.Errorf("testbed: %s: %w", n.Name, err)
	}
	return nil
}

// Unreachable sends an ICMP echo request from inside the namespace to each
// of dsts, resends to the silent ones every 200 ms, and returns those that
// never answered within timeout. One raw socket checks a whole row of a
// mesh at once, where ping would take a process per pair.
func (n *Netns) Unreachable(dsts []netip.Addr, timeout time.Duration) ([]netip.Addr, error) {
	var conn *icmp.PacketConn
	if err := n.Do(func() (err error) {
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return nil, fmt.Errorf("testbed: %s: icmp socket: %w", n.Name, err)
	}
	defer conn.Close()
	const id = 0x7470 // "tp"; each namespace has its own socket, so any ID is ours
	pending := map[netip.Addr]int{}
	for i, d := range dsts {
		pending[d] = i
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1500)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for dst, seq := range pending {
			req := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("taprouter")}}
			b, err := req.Marshal(nil)
			if err != nil {
				return nil, err
			}
			if _, err := conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return nil, fmt.Errorf("testbed: %s: echo to %s: %w", n.Name, dst, err)
			}
		}
		round := time.Now().Add(200 * time.Millisecond)
		if round.After(deadline) {
			round = deadline
		}
		conn.SetReadDeadline(round)
		for len(pending) > 0 {
			size, peer, err := conn.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("testbed: %s: icmp read: %w", n.Name, err)
			}
			msg, err := icmp.ParseMessage(1, buf[:size]) // 1: ICMP for IPv4
			if err != nil || msg.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			from, ok := netip.AddrFromSlice(peer.(*net.IPAddr).IP.To4())
			if echo, isEcho := msg.Body.(*icmp.Echo); ok && isEcho && echo.ID == id && pending[from] == echo.Seq {
				delete(pending, from)
			}
		}
	}
	var silent []netip.Addr
	for d := range pending {
		silent = append(silent, d)
	}
	slices.SortFunc(silent, netip.Addr.Compare)
	return silent, nil
}

// OpenFDs counts the daemon's open file descriptors, from /proc.
func (d *Daemon) OpenFDs() (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("testbed: taprouterd on %s: %w", d.Node.Name, err)
	}
	return len(entries), nil
}
