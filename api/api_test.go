package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeBackend keeps ports in a map.
type fakeBackend struct {
	mu       sync.Mutex
	ports    map[Attachment]Port
	problems []string // what Ready reports missing
}

func (*fakeBackend) Status() Status           { return Status{Node: "node1", MTU: 1450, Gateway: "10.244.0.1"} }
func (*fakeBackend) Stats() map[string]uint64 { return map[string]uint64{"forwarded": 7} }
func (f *fakeBackend) Ready() Readiness {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Readiness{Ready: len(f.problems) == 0, Problems: f.problems}
}
func (*fakeBackend) Ports() []RouterPort { return []RouterPort{{ID: 1, Name: "pa", Kind: "pod"}} }
func (*fakeBackend) Routes() []Route {
	return []Route{{Prefix: "10.244.1.0/24", NextHop: "peer node2"}}
}
func (*fakeBackend) Neighbours() []Neighbour { return nil }
func (*fakeBackend) Peers() []Peer {
	return []Peer{{Node: "node2", Address: "192.168.49.3", PodCIDRs: []string{"10.244.1.0/24"}, ID: 1 << 16}}
}
func (f *fakeBackend) CheckPort(a Attachment) (CheckResult, error) {
	if _, err := f.GetPort(a); err != nil {
		return CheckResult{}, err
	}
	return CheckResult{Problems: []string{"eth0 MTU is 1500, want 1450"}}, nil
}

func (f *fakeBackend) AddPort(req PortRequest) (Port, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.IP == "" {
		return Port{}, false, Invalid("ip", "missing")
	}
	a := Attachment{req.ContainerID, req.IfName}
	if p, ok := f.ports[a]; ok {
		return p, false, nil
	}
	p := Port{ContainerID: req.ContainerID, IfName: req.IfName, IP: req.IP, MTU: 1450}
	f.ports[a] = p
	return p, true, nil
}

func (f *fakeBackend) GetPort(a Attachment) (Port, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.ports[a]
	if !ok {
		return Port{}, NotFound("no port " + a.ContainerID + "/" + a.IfName)
	}
	return p, nil
}

func (f *fakeBackend) RemovePort(a Attachment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, a)
	return nil
}

func (f *fakeBackend) GC(req GCRequest) GCResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	keep := map[Attachment]bool{}
	for _, a := range req.Valid {
		keep[a] = true
	}
	var res GCResult
	for a := range f.ports {
		if !keep[a] {
			delete(f.ports, a)
			res.Removed = append(res.Removed, a)
		}
	}
	return res
}

func serve(t *testing.T) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "t.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(&fakeBackend{ports: map[Attachment]Port{}})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(path), path
}

func TestSocket(t *testing.T) {
	_, path := serve(t)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
}

func TestClientServer(t *testing.T) {
	c, _ := serve(t)
	ctx := context.Background()
	st, err := c.Stats(ctx)
	if err != nil || st.Counters["forwarded"] != 7 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if s, err := c.Status(ctx); err != nil || s.MTU != 1450 {
		t.Fatalf("status %+v %v", s, err)
	}
	if ps, err := c.Peers(ctx); err != nil || len(ps) != 1 || ps[0].Node != "node2" || ps[0].ID != 1<<16 || len(ps[0].PodCIDRs) != 1 || ps[0].PodCIDRs[0] != "10.244.1.0/24" {
		t.Fatalf("peers %+v %v", ps, err)
	}
	req := PortRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/x", IP: "10.244.0.7"}
	p, err := c.AddPort(ctx, req)
	if err != nil || p.IP != "10.244.0.7" {
		t.Fatalf("add: %+v %v", p, err)
	}
	if _, err := c.AddPort(ctx, req); err != nil {
		t.Fatalf("retried add: %v", err)
	}
	a := Attachment{"c1", "eth0"}
	if got, err := c.GetPort(ctx, a); err != nil || got != p {
		t.Fatalf("get: %+v %v", got, err)
	}
	if res, err := c.CheckPort(ctx, a); err != nil || res.OK || len(res.Problems) != 1 {
		t.Fatalf("check: %+v %v", res, err)
	}
	// Errors keep their code and field.
	_, err = c.AddPort(ctx, PortRequest{ContainerID: "c2", IfName: "eth0"})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInvalid || e.Field != "ip" {
		t.Fatalf("invalid add: %v", err)
	}
	if _, err := c.GetPort(ctx, Attachment{"nope", "eth0"}); ErrorCode(err) != CodeNotFound {
		t.Fatalf("get unknown: %v", err)
	}
	// DELETE is idempotent.
	for range 2 {
		if err := c.RemovePort(ctx, a); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	c.AddPort(ctx, PortRequest{ContainerID: "c3", IfName: "eth0", IP: "10.244.0.8"})
	c.AddPort(ctx, PortRequest{ContainerID: "c4", IfName: "eth0", IP: "10.244.0.9"})
	res, err := c.GC(ctx, GCRequest{Valid: []Attachment{{"c4", "eth0"}}})
	if err != nil || len(res.Removed) != 1 || res.Removed[0].ContainerID != "c3" {
		t.Fatalf("gc: %+v %v", res, err)
	}
}

// GET /v1/ready answers 200 {"ready": true} when the backend is ready, and
// 503 with the problems when not; the client returns both without error.
func TestReady(t *testing.T) {
	b := &fakeBackend{ports: map[Attachment]Port{}}
	path, _ := serveLimited(t, NewHandler(b), DefaultLimits())
	c := NewClient(path)
	get := func() (int, string) {
		resp, err := c.http.Get("http://taprouterd/v1/ready")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	ctx := context.Background()
	if code, body := get(); code != http.StatusOK || body != "{\n  \"ready\": true\n}\n" {
		t.Errorf("ready: %d %q, want 200 {\"ready\": true}", code, body)
	}
	if r, err := c.Ready(ctx); err != nil || !r.Ready || r.Problems != nil {
		t.Errorf("client, ready: %+v %v; want ready, no problems, no error", r, err)
	}
	b.mu.Lock()
	b.problems = []string{"host port taprouter0 is down", "the node's pod CIDR is not known yet"}
	b.mu.Unlock()
	want := "{\n  \"ready\": false,\n  \"problems\": [\n    \"host port taprouter0 is down\",\n    \"the node's pod CIDR is not known yet\"\n  ]\n}\n"
	if code, body := get(); code != http.StatusServiceUnavailable || body != want {
		t.Errorf("not ready: %d %q, want 503 %q", code, body, want)
	}
	r, err := c.Ready(ctx)
	if err != nil || r.Ready || len(r.Problems) != 2 || r.Problems[0] != "host port taprouter0 is down" || r.Problems[1] != "the node's pod CIDR is not known yet" {
		t.Errorf("client, not ready: %+v %v; want not ready with both problems and no error", r, err)
	}
	// Only GET is served (as for every endpoint, another method is 404).
	err = c.do(ctx, http.MethodPost, "/v1/ready", struct{}{}, nil)
	if ErrorCode(err) != CodeNotFound || err.Error() != "no such endpoint: POST /v1/ready" {
		t.Errorf("POST /v1/ready: %v, want not-found", err)
	}
}

// A daemon that is not there is an error, not "not ready".
func TestReadyDaemonDown(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if r, err := c.Ready(context.Background()); !errors.Is(err, ErrDaemonUnreachable) || r.Ready {
		t.Fatalf("got %+v %v, want ErrDaemonUnreachable", r, err)
	}
}

func TestClientDaemonDown(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Status(context.Background())
	if !errors.Is(err, ErrDaemonUnreachable) {
		t.Fatalf("got %v, want ErrDaemonUnreachable", err)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	c, _ := serve(t)
	err := c.do(context.Background(), http.MethodGet, "/v2/nothing", nil, nil)
	if ErrorCode(err) != CodeNotFound {
		t.Fatalf("got %v", err)
	}
}

// TestPprof: the runtime's profiles are served: a CPU profile (gzipped
// protobuf), the heap profile, and the index listing them.
func TestPprof(t *testing.T) {
	h := NewHandler(&fakeBackend{ports: map[Attachment]Port{}})
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/profile?seconds=1", "\x1f\x8b"},
		{"/debug/pprof/heap", "\x1f\x8b"},
		{"/debug/pprof/", "goroutine"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String()[:min(rec.Body.Len(), 4096)], tc.want) {
			t.Errorf("GET %s: %d, body starts %.40q; want 200 with %q", tc.path, rec.Code, rec.Body.String(), tc.want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/debug/pprof/heap", nil))
	if rec.Code == http.StatusOK {
		t.Errorf("POST /debug/pprof/heap: 200, want refused")
	}
}
