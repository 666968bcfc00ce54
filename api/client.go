package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a taprouterd over its unix socket. The CNI plugin and
// tests use it.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the daemon listening at socket.
func NewClient(socket string) *Client {
	return &Client{socket: socket, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}},
	}}
}

// ErrDaemonUnreachable wraps every error of reaching the daemon at all (no
// socket, connection refused): the daemon is not running.
var ErrDaemonUnreachable = errors.New("taprouterd is not reachable")

// Status asks GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Ready asks GET /v1/ready. A daemon that answers "not ready" (HTTP 503
// with a Readiness body) is no error: err is nil and r.Ready false.
func (c *Client) Ready(ctx context.Context) (Readiness, error) {
	var r Readiness
	return r, c.doAccepting(ctx, http.MethodGet, "/v1/ready", nil, &r, http.StatusServiceUnavailable)
}

// Stats asks GET /v1/stats.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, http.MethodGet, "/v1/stats", nil, &s)
}

// Peers asks GET /v1/peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, http.MethodGet, "/v1/peers", nil, &ps)
}

// AddPort asks POST /v1/ports.
func (c *Client) AddPort(ctx context.Context, req PortRequest) (Port, error) {
	var p Port
	return p, c.do(ctx, http.MethodPost, "/v1/ports", req, &p)
}

// GetPort asks GET /v1/ports/{containerID}/{ifName}.
func (c *Client) GetPort(ctx context.Context, a Attachment) (Port, error) {
	var p Port
	return p, c.do(ctx, http.MethodGet, portPath(a), nil, &p)
}

// CheckPort asks GET /v1/ports/{containerID}/{ifName}/check.
func (c *Client) CheckPort(ctx context.Context, a Attachment) (CheckResult, error) {
	var r CheckResult
	return r, c.do(ctx, http.MethodGet, portPath(a)+"/check", nil, &r)
}

// RemovePort asks DELETE /v1/ports/{containerID}/{ifName}.
func (c *Client) RemovePort(ctx context.Context, a Attachment) error {
	return c.do(ctx, http.MethodDelete, portPath(a), nil, nil)
}

// GC asks POST /v1/gc.
func (c *Client) GC(ctx context.Context, req GCRequest) (GCResult, error) {
	var r GCResult
	return r, c.do(ctx, http.MethodPost, "/v1/gc", req, &r)
}

func portPath(a Attachment) string {
	return "/v1/ports/" + url.PathEscape(a.ContainerID) + "/" + url.PathEscape(a.IfName)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	return c.doAccepting(ctx, method, path, body, out, 0)
}

// doAccepting is do, decoding an answer with HTTP status also into out as
// it does a 2xx one.
func (c *Client) doAccepting(ctx context.Context, method, path string, body, out any, also int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://taprouterd"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w at %s: %v", ErrDaemonUnreachable, c.socket, op.Err)
		}
		return fmt.Errorf("taprouterd at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("taprouterd at %s: reading the answer: %w", c.socket, err)
	}
	if resp.StatusCode >= 300 && resp.StatusCode != also {
		e := &Error{}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e = &Error{Message: fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode), Code: CodeInternal}
		}
		return e
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("taprouterd at %s: bad answer to %s %s: %w", c.socket, method, path, err)
	}
	return nil
}
