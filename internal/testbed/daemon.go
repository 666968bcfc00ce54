package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// DaemonReadyTimeout bounds how long StartDaemon waits for the control
// socket, taprouterd's readiness signal.
const DaemonReadyTimeout = 20 * time.Second

// DaemonConfig is taprouterd's YAML configuration as the daemon's contract
// documents it. Values are strings and plain numbers, not parsed types, so
// that tests can also write invalid configurations.
type DaemonConfig struct {
	Node     string         `yaml:"node,omitempty"`
	PodCIDR  string         `yaml:"podCIDR,omitempty"`
	Gateway  string         `yaml:"gateway,omitempty"`
	Backend  string         `yaml:"backend,omitempty"`
	Underlay UnderlayConfig `yaml:"underlay"`
	VXLAN    *VXLANConfig   `yaml:"vxlan,omitempty"`
	UDP      *UDPConfig     `yaml:"udp,omitempty"`
	// Masquerade is the egress masquerade; nil leaves it off.
	Masquerade *MasqueradeConfig `yaml:"masquerade,omitempty"`
	Peers      []PeerConfig      `yaml:"peers,omitempty"`
	Ports      []PortConfig      `yaml:"ports,omitempty"`

	// LogFormat is taprouterd's --log-format (not part of the file);
	// empty means console.
	LogFormat string `yaml:"-"`
}

// UnderlayConfig is the node's interface toward the other nodes.
type UnderlayConfig struct {
	Interface string `yaml:"interface,omitempty"`
	Address   string `yaml:"address,omitempty"`
}

// VXLANConfig configures the vxlan backend.
type VXLANConfig struct {
	VNI  int    `yaml:"vni"`
	Port int    `yaml:"port"`
	MAC  string `yaml:"mac,omitempty"`
}

// UDPConfig configures the udp backend.
type UDPConfig struct {
	Port int `yaml:"port"`
}

// MasqueradeConfig configures the egress masquerade.
type MasqueradeConfig struct {
	Enabled      bool     `yaml:"enabled"`
	ClusterCIDRs []string `yaml:"clusterCIDRs,omitempty"`
	RemoveOnExit bool     `yaml:"removeOnExit,omitempty"`
}

// PeerConfig is another node.
type PeerConfig struct {
	Node    string `yaml:"node,omitempty"`
	Address string `yaml:"address,omitempty"`
	PodCIDR string `yaml:"podCIDR,omitempty"`
	VTEPMAC string `yaml:"vtepMAC,omitempty"`
}

// PortConfig is a pod taprouterd attaches.
type PortConfig struct {
	Name  string `yaml:"name,omitempty"`
	Netns string `yaml:"netns,omitempty"`
	IP    string `yaml:"ip,omitempty"`
	MTU   int    `yaml:"mtu,omitempty"`
}

// YAML renders the configuration.
func (c DaemonConfig) YAML() []byte {
	b, err := yaml.Marshal(c)
	if err != nil {
		panic("testbed: marshal DaemonConfig: " + err.Error()) // plain structs always marshal
	}
	return b
}

// Daemon is a running taprouterd.
type Daemon struct {
	*Process
	// Node is the namespace it runs in.
	Node *Node
	// Config is the configuration it was started with.
	Config DaemonConfig
	// Socket is its control socket.
	Socket string
	// ConfigPath is the file its config was written to.
	ConfigPath string

	api apiClient
}

// StartDaemon writes cfg to a file, runs b.Taprouterd inside node with its own
// control socket, and waits until the socket accepts connections.
func (b *Bed) StartDaemon(node *Node, cfg DaemonConfig) (*Daemon, error) {
	if b.Taprouterd == "" {
		return nil, errors.New("testbed: no taprouterd binary given to testbed.New")
	}
	path := b.file(node.Name + ".yaml")
	if err := os.WriteFile(path, cfg.YAML(), 0o644); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	socket := b.file(node.Name + ".sock")
	format := cfg.LogFormat
	if format == "" {
		format = "console"
	}
	p, err := b.Start(node.Netns, "taprouterd-"+node.Name,
		b.Taprouterd, "--config", path, "--socket", socket, "--state-dir", b.StateDir(node),
		"--log-format", format, "--log-level", "info")
	if err != nil {
		return nil, err
	}
	d := &Daemon{Process: p, Node: node, Config: cfg, Socket: socket, ConfigPath: path, api: newAPIClient(socket)}
	if err := d.waitReady(DaemonReadyTimeout); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return d, nil
}

// StartKubeDaemon runs b.Taprouterd inside node in Kubernetes mode: with
// --kubeconfig kubeconfig and --node-name node.Name, doc (if not empty) as
// its --config, and args appended; it waits until the socket accepts
// connections, which taprouterd opens once the node's Node is complete.
func (b *Bed) StartKubeDaemon(node *Node, kubeconfig string, doc []byte, args ...string) (*Daemon, error) {
	if b.Taprouterd == "" {
		return nil, errors.New("testbed: no taprouterd binary given to testbed.New")
	}
	socket := b.file(node.Name + ".sock")
	argv := []string{b.Taprouterd, "--kubeconfig", kubeconfig, "--node-name", node.Name, "--socket", socket,
		"--state-dir", b.StateDir(node), "--log-format", "console", "--log-level", "info"}
	var path string
	if len(doc) > 0 {
		path = b.file(node.Name + ".yaml")
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
		argv = append(argv, "--config", path)
	}
	p, err := b.Start(node.Netns, "taprouterd-"+node.Name, append(argv, args...)...)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Process: p, Node: node, Socket: socket, ConfigPath: path, api: newAPIClient(socket)}
	if err := d.waitReady(DaemonReadyTimeout); err != nil {
		p.Stop(5 * time.Second)
		return nil, err
	}
	return d, nil
}

// StateDir is the --state-dir of node's daemons: the same for every daemon
// started on node, so that a restarted daemon finds its predecessor's state.
func (b *Bed) StateDir(node *Node) string { return filepath.Join(b.dir, node.Name+"-state") }

func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.DialTimeout("unix", d.Socket, time.Second); err == nil {
			c.Close()
			return nil
		}
		if exited, err := d.Exited(); exited {
			return fmt.Errorf("testbed: taprouterd on %s exited during setup (%v); log:\n%s", d.Node.Name, err, d.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: taprouterd on %s: control socket %s not ready after %v; log:\n%s", d.Node.Name, d.Socket, timeout, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Terminate sends SIGTERM and waits up to 10 s for a clean exit.
func (d *Daemon) Terminate() error {
	if err := d.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return d.Wait(10 * time.Second)
}

// ConfigResult is how taprouterd ended when run to completion.
type ConfigResult struct {
	ExitCode int
	Output   string // stdout and stderr combined
	// Started is true when the daemon did not exit by itself within the
	// timeout (it accepted the configuration and was killed).
	Started bool
}

// RunDaemonToExit runs taprouterd inside ns with the raw configuration
// document config and returns how it ended; a daemon still running after
// timeout is killed and reported as Started.
func (b *Bed) RunDaemonToExit(ns *Netns, config []byte, timeout time.Duration) (ConfigResult, error) {
	path := b.file("config.yaml")
	if err := os.WriteFile(path, config, 0o644); err != nil {
		return ConfigResult{}, fmt.Errorf("testbed: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, b.Taprouterd, "--config", path, "--socket", b.file("once.sock"), "--state-dir", b.file("once-state"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	res := ConfigResult{Output: string(out)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.Started = true
		res.ExitCode = -1
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		return res, fmt.Errorf("testbed: run taprouterd: %w", err)
	}
	return res, nil
}

// OutputLines returns the non-empty lines of the output.
func (r ConfigResult) OutputLines() []string {
	var lines []string
	for _, l := range strings.Split(r.Output, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
