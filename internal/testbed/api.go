package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// apiClient speaks taprouterd's HTTP+JSON control API over its unix socket.
type apiClient struct {
	http *http.Client
}

func newAPIClient(socket string) apiClient {
	var d net.Dialer
	return apiClient{http: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
		},
	}}
}

// get decodes the JSON answer of GET path into v.
func (c apiClient) get(path string, v any) error {
	resp, err := c.http.Get("http://taprouterd" + path)
	if err != nil {
		return fmt.Errorf("testbed: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("testbed: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("testbed: GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("testbed: GET %s: %w in %s", path, err, body)
	}
	return nil
}

// Stats returns GET /v1/stats's counters.
func (d *Daemon) Stats() (map[string]uint64, error) {
	var s struct {
		Counters map[string]uint64 `json:"counters"`
	}
	if err := d.api.get("/v1/stats", &s); err != nil {
		return nil, err
	}
	if s.Counters == nil {
		return nil, fmt.Errorf("testbed: GET /v1/stats: no \"counters\" object")
	}
	return s.Counters, nil
}

// Counter returns one counter; a counter the daemon does not report is an
// error.
func (d *Daemon) Counter(name string) (uint64, error) {
	s, err := d.Stats()
	if err != nil {
		return 0, err
	}
	v, ok := s[name]
	if !ok {
		return 0, fmt.Errorf("testbed: taprouterd on %s reports no counter %q", d.Node.Name, name)
	}
	return v, nil
}

// WaitCounter polls the counter until it reaches at least want or timeout
// passes, and returns the last value seen.
func (d *Daemon) WaitCounter(name string, want uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		v, err := d.Counter(name)
		if err != nil || v >= want || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RouterNeighbour is an entry of GET /v1/neighbours.
type RouterNeighbour struct {
	Port  string `json:"port"`
	IP    string `json:"ip"`
	MAC   string `json:"mac"`
	State string `json:"state"`
}

// Neighbours returns the router's neighbour table.
func (d *Daemon) Neighbours() ([]RouterNeighbour, error) {
	var v []RouterNeighbour
	return v, d.api.get("/v1/neighbours", &v)
}

// RouterRoute is an entry of GET /v1/routes.
type RouterRoute struct {
	Prefix  string `json:"prefix"`
	Nexthop string `json:"nexthop"`
}

// Routes returns the router's FIB.
func (d *Daemon) Routes() ([]RouterRoute, error) {
	var v []RouterRoute
	return v, d.api.get("/v1/routes", &v)
}

// RouterPort is an entry of GET /v1/ports.
type RouterPort struct {
	Name  string `json:"name"`
	IP    string `json:"ip"`
	MAC   string `json:"mac"`
	MTU   int    `json:"mtu"`
	Drops uint64 `json:"drops"` // packets from or to the port that were dropped
}

// Ports returns the router's pod ports.
func (d *Daemon) Ports() ([]RouterPort, error) {
	var v []RouterPort
	return v, d.api.get("/v1/ports", &v)
}

// RouterPeer is one entry of GET /v1/peers.
type RouterPeer struct {
	Node     string   `json:"node"`
	Address  string   `json:"address"`
	PodCIDRs []string `json:"podCIDRs"`
	Backend  string   `json:"backend,omitempty"` // empty: the daemon's own
	VTEPMAC  string   `json:"vtepMAC,omitempty"` // empty: derived from Address
	ID       uint32   `json:"id"`
}

// Peers returns GET /v1/peers.
func (d *Daemon) Peers() ([]RouterPeer, error) {
	var ps []RouterPeer
	return ps, d.api.get("/v1/peers", &ps)
}

// ReloadConfig rewrites the daemon's config file with cfg and sends it
// SIGHUP, on which it applies the file's peers.
func (d *Daemon) ReloadConfig(cfg DaemonConfig) error {
	if err := os.WriteFile(d.ConfigPath, cfg.YAML(), 0o644); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	d.Config = cfg
	return d.Signal(syscall.SIGHUP)
}
