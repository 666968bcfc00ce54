package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend counts the AddPort calls that get through decoding.
type countingBackend struct {
	fakeBackend
	adds atomic.Int32
}

func (b *countingBackend) AddPort(req PortRequest) (Port, bool, error) {
	b.adds.Add(1)
	return b.fakeBackend.AddPort(req)
}

func serveLimited(t *testing.T, h http.Handler, lim Limits) (path string, l *limitListener) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "t.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, wrapped := NewServer(h, ln, lim)
	go srv.Serve(wrapped)
	t.Cleanup(func() { srv.Close() })
	return path, wrapped.(*limitListener)
}

func post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	c := NewClient(path)
	resp, err := c.http.Post("http://taprouterd/v1/ports", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A body is one JSON value: anything after it but white space is a 400,
// and the backend never sees the request.
func TestTrailingData(t *testing.T) {
	b := &countingBackend{fakeBackend: fakeBackend{ports: map[Attachment]Port{}}}
	path, _ := serveLimited(t, NewHandler(b), DefaultLimits())
	const req = `{"containerID": "c1", "ifName": "eth0", "ip": "10.244.0.7"}`
	for _, body := range []string{req + `{"containerID": "c2"}`, req + ` x`, req + `]`, req + `"`} {
		if code, answer := post(t, path, body); code != http.StatusBadRequest || !strings.Contains(answer, "malformed JSON body") {
			t.Errorf("POST %q: %d %s, want 400 malformed JSON body", body, code, answer)
		}
	}
	if n := b.adds.Load(); n != 0 {
		t.Errorf("the backend saw %d requests with trailing data, want 0", n)
	}
	// Unlike the daemon's state file, a request may not carry fields the
	// API does not know.
	if code, answer := post(t, path, `{"containerID": "c1", "ifName": "eth0", "ip": "10.244.0.7", "surprise": 1}`); code != http.StatusBadRequest || !strings.Contains(answer, `unknown field \"surprise\"`) {
		t.Errorf("POST with an unknown field: %d %s, want 400 naming it", code, answer)
	}
	if code, answer := post(t, path, req+" \n\t"); code != http.StatusCreated {
		t.Errorf("POST with trailing white space: %d %s, want 201", code, answer)
	}
}

// Idle connections cannot take every slot: at the limit, a new connection
// closes the one idle the longest and is served at once.
func TestConnLimitEvictsIdle(t *testing.T) {
	const max = 8
	lim := DefaultLimits()
	lim.MaxConns = max
	path, l := serveLimited(t, NewHandler(&fakeBackend{ports: map[Attachment]Port{}}), lim)
	var idle []net.Conn
	for range 200 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	c := NewClient(path)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status with 200 idle connections open: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("status took %v with 200 idle connections open", d)
	}
	if open := len(l.slots); open > max {
		t.Errorf("%d connections open, want at most %d", open, max)
	}
	// The first ones were closed to make room.
	idle[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest idle connection: read %d, %v; want EOF (closed by the server)", n, err)
	}
}

// acceptSignal announces each connection its listener accepted.
type acceptSignal struct {
	net.Listener
	accepted chan struct{}
}

func (l acceptSignal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return c, err
}

// When every connection is busy with a request, a new one waits for a
// slot rather than exceed the limit.
func TestConnLimitWaitsForBusy(t *testing.T) {
	const max = 2
	release := make(chan struct{})
	inside := make(chan struct{}, max)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			inside <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusNoContent)
	})
	lim := DefaultLimits()
	lim.MaxConns = max
	path := filepath.Join(t.TempDir(), "t.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, max+1)
	srv, wrapped := NewServer(h, acceptSignal{ln, accepted}, lim)
	go srv.Serve(wrapped)
	t.Cleanup(func() { srv.Close() })
	l := wrapped.(*limitListener)
	get := func(p string) error {
		c := NewClient(path)
		resp, err := c.http.Get("http://taprouterd" + p)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	errs := make(chan error, max+1)
	for range max {
		go func() { errs <- get("/slow") }()
	}
	for range max {
		<-inside
		<-accepted
	}
	fast := make(chan error, 1)
	go func() { fast <- get("/fast") }()
	<-accepted // the third connection is in, and waits for a slot
	select {
	case err := <-fast:
		t.Fatalf("a request beyond %d busy connections was served (%v)", max, err)
	case <-time.After(200 * time.Millisecond): // a window to see it served, not a synchronisation
	}
	if open := len(l.slots); open != max {
		t.Errorf("%d connections open, want %d", open, max)
	}
	close(release)
	if err := <-fast; err != nil {
		t.Fatalf("the waiting request: %v", err)
	}
	for range max {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A zero Limits is DefaultLimits, not a server that never accepts (a
// MaxConns of 0 made the slot channel unbuffered: every Accept blocked).
func TestZeroLimits(t *testing.T) {
	path, l := serveLimited(t, NewHandler(&fakeBackend{ports: map[Attachment]Port{}}), Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := NewClient(path).Status(ctx); err != nil {
		t.Fatalf("status with Limits{}: %v", err)
	}
	if got, want := cap(l.slots), DefaultLimits().MaxConns; got != want {
		t.Errorf("room for %d connections, want %d", got, want)
	}
	srv, _ := NewServer(http.NotFoundHandler(), l.Listener, Limits{MaxConns: 3, IdleTimeout: time.Second})
	if def := DefaultLimits(); srv.ReadHeaderTimeout != def.ReadHeaderTimeout || srv.ReadTimeout != def.ReadTimeout ||
		srv.WriteTimeout != def.WriteTimeout || srv.IdleTimeout != time.Second {
		t.Errorf("timeouts %v %v %v %v, want the defaults but IdleTimeout 1s", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// A connection that sends no request is closed after ReadHeaderTimeout.
func TestReadHeaderTimeout(t *testing.T) {
	lim := DefaultLimits()
	lim.ReadHeaderTimeout = 200 * time.Millisecond
	path, _ := serveLimited(t, NewHandler(&fakeBackend{ports: map[Attachment]Port{}}), lim)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /v1/status HTTP/1.1\r\n")) // and never the rest
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(c)
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("a stalled request was closed after %v, want about 200ms", d)
	}
}
