package api

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/taprouter/taprouter/router"
)

// DefaultSocket is where taprouterd listens unless told otherwise.
const DefaultSocket = "/run/taprouter/taprouterd.sock"

// Stats is the body of GET /v1/stats.
type Stats struct {
	Counters map[string]uint64 `json:"counters"`
}

// Route is one FIB entry.
type Route struct {
	Prefix  string `json:"prefix"`
	NextHop string `json:"nexthop"`
}

// Neighbour is one neighbour table entry.
type Neighbour struct {
	Port  string `json:"port"`
	IP    string `json:"ip"`
	MAC   string `json:"mac,omitempty"`
	State string `json:"state"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Backend is what the API reads; taprouterd's daemon implements it.
type Backend interface {
	Stats() map[string]uint64
	Ports() []router.PortInfo
	Routes() []Route
	Neighbours() []Neighbour
}

// NewHandler serves the API for b.
func NewHandler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Stats{Counters: b.Stats()})
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Ports()))
	})
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Routes()))
	})
	mux.HandleFunc("GET /v1/neighbours", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Neighbours()))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, Error{Error: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Listen opens the unix socket at path, root-only (0600), in a directory
// created 0700 if missing. A stale socket file from a crashed daemon is
// replaced; a live one (another daemon answers) is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, errors.New(path + ": another taprouterd is listening there")
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
