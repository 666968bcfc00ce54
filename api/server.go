package api

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound what the API's clients can hold of the daemon. A zero (or
// negative) field takes DefaultLimits' value: no field can mean "no limit",
// and a MaxConns of 0 does not mean that no connection is ever served.
type Limits struct {
	// MaxConns is the most connections open at once. A connection that
	// arrives at the limit makes room by closing the one idle the longest
	// (accepted but no request read yet, or between requests); when every
	// connection is busy with a request, it waits until one is done.
	MaxConns int
	// The http.Server's timeouts: for reading a request's header, the
	// whole request, writing the answer, and waiting for the next request
	// on a kept-alive connection.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// DefaultLimits returns taprouterd's limits. The socket is root's alone
// (0600); these keep a leaking or stuck local client from taking the
// daemon's file descriptors or goroutines, not an attacker out.
func DefaultLimits() Limits {
	return Limits{
		MaxConns:          128,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
	}
}

// withDefaults fills lim's zero fields from DefaultLimits.
func (lim Limits) withDefaults() Limits {
	def := DefaultLimits()
	if lim.MaxConns <= 0 {
		lim.MaxConns = def.MaxConns
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&lim.ReadHeaderTimeout, &def.ReadHeaderTimeout}, {&lim.ReadTimeout, &def.ReadTimeout},
		{&lim.WriteTimeout, &def.WriteTimeout}, {&lim.IdleTimeout, &def.IdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return lim
}

// NewServer returns a server for h with lim's timeouts, and ln wrapped to
// keep at most lim.MaxConns connections open; serve it with
// srv.Serve(listener). Zero fields of lim take DefaultLimits' values.
func NewServer(h http.Handler, ln net.Listener, lim Limits) (srv *http.Server, listener net.Listener) {
	lim = lim.withDefaults()
	l := &limitListener{Listener: ln, slots: make(chan struct{}, lim.MaxConns), idled: make(chan struct{}, 1),
		done: make(chan struct{}), idle: map[*limitConn]uint64{}}
	srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ConnState:         l.connState,
	}
	return srv, l
}

// limitListener keeps at most cap(slots) connections open; see
// Limits.MaxConns.
type limitListener struct {
	net.Listener
	slots chan struct{} // one token per open connection
	idled chan struct{} // a connection became idle
	done  chan struct{} // closed by Close
	once  sync.Once

	mu   sync.Mutex
	idle map[*limitConn]uint64 // the idle connections, by when they became idle
	seq  uint64
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		default:
		}
		if l.closeOldestIdle() {
			continue
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		case <-l.idled:
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// closeOldestIdle closes the connection idle the longest, if any.
func (l *limitListener) closeOldestIdle() bool {
	l.mu.Lock()
	var oldest *limitConn
	for c, t := range l.idle {
		if oldest == nil || t < l.idle[oldest] {
			oldest = c
		}
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// connState is the server's ConnState hook: it tracks which connections
// are idle.
func (l *limitListener) connState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case (s == http.StateNew || s == http.StateIdle) && !c.closed:
		l.seq++
		l.idle[c] = l.seq
		select {
		case l.idled <- struct{}{}:
		default:
		}
	default:
		delete(l.idle, c)
	}
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	l      *limitListener
	once   sync.Once
	closed bool // under l.mu
}

func (c *limitConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		delete(c.l.idle, c)
		c.l.mu.Unlock()
		err = c.Conn.Close()
		<-c.l.slots
	})
	return err
}
