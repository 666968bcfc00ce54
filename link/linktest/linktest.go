// Package linktest holds in-memory fakes of the link interfaces for unit
// tests: a Device and a DatagramConn backed by channels, cross-wired in pairs.
package linktest

import (
	"net/netip"
	"sync"

	"github.com/taprouter/taprouter/link"
)

// Device is a channel-backed link.Device. Frames written to it appear on
// Out; frames sent on In are returned by Read.
type Device struct {
	In   chan []byte
	Out  chan []byte
	name string
	mtu  int

	once   sync.Once
	closed chan struct{}
}

var _ link.Device = (*Device)(nil)

// NewDevice returns a Device with buffered channels of the given depth.
func NewDevice(name string, mtu, depth int) *Device {
	return &Device{In: make(chan []byte, depth), Out: make(chan []byte, depth), name: name, mtu: mtu, closed: make(chan struct{})}
}

func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var p []byte
	select {
	case p = <-d.In:
	case <-d.closed:
		return 0, link.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], p)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case p = <-d.In:
		default:
			return n, nil
		}
	}
}

func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		p := append([]byte(nil), b[offset:]...)
		select {
		case d.Out <- p:
		case <-d.closed:
			return i, link.ErrClosed
		}
	}
	return len(bufs), nil
}

func (d *Device) BatchSize() int { return 64 }
func (d *Device) MTU() int       { return d.mtu }
func (d *Device) Name() string   { return d.name }
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// Datagram is one UDP datagram with its peer address.
type Datagram struct {
	Addr netip.AddrPort // source on Read, destination on Write
	Data []byte
}

// Conn is a channel-backed link.DatagramConn.
type Conn struct {
	In    chan Datagram
	Out   chan Datagram
	local netip.AddrPort

	once   sync.Once
	closed chan struct{}
}

var _ link.DatagramConn = (*Conn)(nil)

// NewConn returns a Conn bound (in name only) to local.
func NewConn(local netip.AddrPort, depth int) *Conn {
	return &Conn{In: make(chan Datagram, depth), Out: make(chan Datagram, depth), local: local, closed: make(chan struct{})}
}

func (c *Conn) ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error) {
	var d Datagram
	select {
	case d = <-c.In:
	case <-c.closed:
		return 0, link.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], d.Data)
		from[n] = d.Addr
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case d = <-c.In:
		default:
			return n, nil
		}
	}
}

func (c *Conn) WriteTo(bufs [][]byte, to []netip.AddrPort, offset int) (int, error) {
	for i, b := range bufs {
		d := Datagram{Addr: to[i], Data: append([]byte(nil), b[offset:]...)}
		select {
		case c.Out <- d:
		case <-c.closed:
			return i, link.ErrClosed
		}
	}
	return len(bufs), nil
}

func (c *Conn) LocalAddr() netip.AddrPort { return c.local }
func (c *Conn) BatchSize() int            { return 64 }
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// Wire forwards everything written to a to b's input, rewriting the address
// to a's local address, until a is closed. It makes two Conns behave like two
// UDP sockets that can reach each other.
func Wire(a, b *Conn) {
	go func() {
		for {
			select {
			case d := <-a.Out:
				d.Addr = a.local
				select {
				case b.In <- d:
				case <-b.closed:
					return
				}
			case <-a.closed:
				return
			}
		}
	}()
}
