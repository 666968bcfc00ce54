package tunnel

import (
	"net/netip"

	"github.com/taprouter/taprouter/link"
)

// loopQueue holds written packets until they are read, in fixed buffers, so
// that the pipe fakes below do not allocate: allocation tests and benchmarks
// measure the tunnel, not the fake. Everything runs in the caller's
// goroutine.
type loopQueue struct {
	data       [][]byte
	sizes      []int
	head, tail int // queued packets are data[head:tail]
}

func newLoopQueue(depth int) loopQueue {
	q := loopQueue{data: make([][]byte, depth), sizes: make([]int, depth)}
	for i := range q.data {
		q.data[i] = make([]byte, 2048)
	}
	return q
}

func (q *loopQueue) write(bufs [][]byte, offset int) int {
	for i, b := range bufs {
		if q.tail == len(q.data) {
			return i
		}
		q.sizes[q.tail] = copy(q.data[q.tail], b[offset:])
		q.tail++
	}
	return len(bufs)
}

// read moves up to len(bufs) queued packets, oldest first.
func (q *loopQueue) read(bufs [][]byte, sizes []int, offset int) int {
	n := min(len(bufs), q.tail-q.head)
	for i := range n {
		sizes[i] = copy(bufs[i][offset:], q.data[q.head+i][:q.sizes[q.head+i]])
	}
	q.head += n
	if q.head == q.tail {
		q.head, q.tail = 0, 0
	}
	return n
}

// loopConn is one end of an allocation-free pipe between two DatagramConns:
// what one end writes, the other reads, from the writer's address.
type loopConn struct {
	tx, rx *loopQueue
	local  netip.AddrPort
	remote netip.AddrPort // the other end's local address
}

// newLoopConns returns the two ends of a pipe between a and b.
func newLoopConns(a, b netip.AddrPort) (*loopConn, *loopConn) {
	ab, ba := newLoopQueue(64), newLoopQueue(64)
	return &loopConn{tx: &ab, rx: &ba, local: a, remote: b}, &loopConn{tx: &ba, rx: &ab, local: b, remote: a}
}

func (c *loopConn) ReadFrom(bufs [][]byte, sizes []int, from []netip.AddrPort, offset int) (int, error) {
	n := c.rx.read(bufs, sizes, offset)
	for i := range n {
		from[i] = c.remote
	}
	return n, nil
}

func (c *loopConn) WriteTo(bufs [][]byte, _ []netip.AddrPort, offset int) (int, error) {
	return c.tx.write(bufs, offset), nil
}

func (c *loopConn) LocalAddr() netip.AddrPort { return c.local }
func (c *loopConn) BatchSize() int            { return len(c.rx.data) }
func (c *loopConn) Close() error              { return nil }

// loopDevice is one end of an allocation-free pipe between two Devices: an
// Ethernet segment with two hosts.
type loopDevice struct{ tx, rx *loopQueue }

func newLoopDevices() (*loopDevice, *loopDevice) {
	ab, ba := newLoopQueue(64), newLoopQueue(64)
	return &loopDevice{tx: &ab, rx: &ba}, &loopDevice{tx: &ba, rx: &ab}
}

func (d *loopDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return d.rx.read(bufs, sizes, offset), nil
}
func (d *loopDevice) Write(bufs [][]byte, offset int) (int, error) {
	return d.tx.write(bufs, offset), nil
}
func (d *loopDevice) BatchSize() int { return len(d.rx.data) }
func (d *loopDevice) MTU() int       { return 1500 }
func (d *loopDevice) Name() string   { return "loop" }
func (d *loopDevice) Close() error   { return nil }

var (
	_ link.DatagramConn = (*loopConn)(nil)
	_ link.Device       = (*loopDevice)(nil)
)
