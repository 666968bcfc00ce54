package api

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
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

// Peer is one applied peer node, as GET /v1/peers lists them (sorted by
// node name).
type Peer struct {
	Node     string   `json:"node"`
	Address  string   `json:"address"`
	PodCIDRs []string `json:"podCIDRs"`
	Backend  string   `json:"backend,omitempty"` // empty: this node's
	VTEPMAC  string   `json:"vtepMAC,omitempty"` // empty: derived from the address
	// ID is the router's stable ID for the peer: its FIB next hop
	// ("peer node2" in /v1/routes) and its slot in the tunnel.
	ID uint32 `json:"id"`
}

// RouterPort is one port of the router, as GET /v1/ports lists them.
type RouterPort struct {
	ID        uint32 `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"` // pod or host
	Device    string `json:"device"`
	IP        string `json:"ip,omitempty"`
	MAC       string `json:"mac,omitempty"`
	MTU       int    `json:"mtu"`
	RxPackets uint64 `json:"rxPackets"`
	RxBytes   uint64 `json:"rxBytes"`
	TxPackets uint64 `json:"txPackets"`
	TxBytes   uint64 `json:"txBytes"`
	Drops     uint64 `json:"drops"`
	// Down: the port's device failed (its TAP disappeared); DownReason says
	// how. (Same fields as router.PortInfo.)
	Down       bool   `json:"down,omitempty"`
	DownReason string `json:"downReason,omitempty"`
}

// Neighbour is one neighbour table entry.
type Neighbour struct {
	Port  string `json:"port"`
	IP    string `json:"ip"`
	MAC   string `json:"mac,omitempty"`
	State string `json:"state"`
}

// Backend is what the API serves; taprouterd's daemon implements it. Errors
// of type *Error keep their code; any other error is internal.
type Backend interface {
	Status() Status
	// Ready says whether the node forwards: the router runs, the host
	// port is up and the node's pod CIDR is known.
	Ready() Readiness
	Stats() map[string]uint64
	Ports() []RouterPort
	Routes() []Route
	Neighbours() []Neighbour
	// Peers are the applied peers, sorted by node name.
	Peers() []Peer
	// AddPort attaches a pod; created is false when an identical port
	// existed already (a retried ADD).
	AddPort(req PortRequest) (p Port, created bool, err error)
	GetPort(a Attachment) (Port, error)
	CheckPort(a Attachment) (CheckResult, error)
	// RemovePort detaches a pod; a port that does not exist is no error.
	RemovePort(a Attachment) error
	GC(req GCRequest) GCResult
}

// NewHandler serves the API for b.
func NewHandler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("GET /v1/ready", func(w http.ResponseWriter, _ *http.Request) {
		r := b.Ready()
		code := http.StatusOK
		if !r.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, r)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Stats{Counters: b.Stats()})
	})
	mux.HandleFunc("GET /v1/ports", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Ports()))
	})
	mux.HandleFunc("GET /v1/routes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Routes()))
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Peers()))
	})
	mux.HandleFunc("GET /v1/neighbours", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(b.Neighbours()))
	})
	mux.HandleFunc("POST /v1/ports", func(w http.ResponseWriter, r *http.Request) {
		var req PortRequest
		if !readJSON(w, r, &req) {
			return
		}
		p, created, err := b.AddPort(req)
		if err != nil {
			writeError(w, err)
			return
		}
		code := http.StatusOK
		if created {
			code = http.StatusCreated
		}
		writeJSON(w, code, p)
	})
	mux.HandleFunc("GET /v1/ports/{containerID}/{ifName}", func(w http.ResponseWriter, r *http.Request) {
		p, err := b.GetPort(attachment(r))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("GET /v1/ports/{containerID}/{ifName}/check", func(w http.ResponseWriter, r *http.Request) {
		res, err := b.CheckPort(attachment(r))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("DELETE /v1/ports/{containerID}/{ifName}", func(w http.ResponseWriter, r *http.Request) {
		if err := b.RemovePort(attachment(r)); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/gc", func(w http.ResponseWriter, r *http.Request) {
		var req GCRequest
		if !readJSON(w, r, &req) {
			return
		}
		// A partial failure still answers 200 with what was removed (and
		// the errors), so that the caller can release those addresses.
		res := b.GC(req)
		res.Removed = nonNil(res.Removed)
		writeJSON(w, http.StatusOK, res)
	})
	// The Go runtime's profiles (net/http/pprof), for `go tool pprof` over
	// the socket: only root reaches it (the socket is 0600), and a
	// profile costs nothing until asked for.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, NotFound("no such endpoint: "+r.Method+" "+r.URL.Path))
	})
	return mux
}

func attachment(r *http.Request) Attachment {
	return Attachment{ContainerID: r.PathValue("containerID"), IfName: r.PathValue("ifName")}
}

// maxBody bounds a request body.
const maxBody = 1 << 20

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One JSON value and nothing after it but white space.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		writeError(w, &Error{Message: "malformed JSON body: " + err.Error(), Code: CodeInvalid})
		return false
	}
	return true
}

var httpStatus = map[string]int{
	CodeInvalid:     http.StatusBadRequest,
	CodeNotFound:    http.StatusNotFound,
	CodeConflict:    http.StatusConflict,
	CodeUnavailable: http.StatusServiceUnavailable,
	CodeInternal:    http.StatusInternalServerError,
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Message: err.Error(), Code: CodeInternal}
	}
	code, ok := httpStatus[e.Code]
	if !ok {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, e)
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
