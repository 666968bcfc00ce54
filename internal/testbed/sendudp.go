package testbed

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netns"
)

// SendUDP sends each payload as one datagram to dst from a UDP socket opened
// inside the namespace (with an ephemeral source port on the address the
// namespace's routes choose).
func (n *Netns) SendUDP(dst netip.AddrPort, payloads ...[]byte) error {
	conn, err := n.dialUDP(dst)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, p := range payloads {
		if _, err := conn.Write(p); err != nil {
			return fmt.Errorf("testbed: %s: send to %s: %w", n.Name, dst, err)
		}
	}
	return nil
}

// dialUDP opens the socket on a locked OS thread switched into the
// namespace; a socket keeps the namespace it was created in.
func (n *Netns) dialUDP(dst netip.AddrPort) (*net.UDPConn, error) {
	type result struct {
		conn *net.UDPConn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is only unlocked once it is back in its own
		// namespace; otherwise it dies with this goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("testbed: current netns: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("testbed: netns %s: %w", n.Name, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			ch <- result{err: fmt.Errorf("testbed: enter netns %s: %w", n.Name, err)}
			return
		}
		conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			err = fmt.Errorf("testbed: %s: dial %s: %w", n.Name, dst, err)
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}
