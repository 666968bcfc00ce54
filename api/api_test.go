package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/taprouter/taprouter/router"
)

type fakeBackend struct{}

func (fakeBackend) Stats() map[string]uint64 { return map[string]uint64{"forwarded": 7} }
func (fakeBackend) Ports() []router.PortInfo {
	return []router.PortInfo{{ID: 1, Name: "pa", Kind: "pod"}}
}
func (fakeBackend) Routes() []Route         { return []Route{{Prefix: "10.244.1.0/24", NextHop: "peer node2"}} }
func (fakeBackend) Neighbours() []Neighbour { return nil }

func TestServeOverUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "t.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(fakeBackend{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	get := func(p string, v any) int {
		resp, err := c.Get("http://taprouter" + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	var st Stats
	if get("/v1/stats", &st); st.Counters["forwarded"] != 7 {
		t.Errorf("stats %+v", st)
	}
	var nb []Neighbour
	if get("/v1/neighbours", &nb); nb == nil {
		t.Error("neighbours: null instead of []")
	}
	var e Error
	if code := get("/v2/nothing", &e); code != 404 || e.Error == "" {
		t.Errorf("unknown path: %d %+v", code, e)
	}
}
