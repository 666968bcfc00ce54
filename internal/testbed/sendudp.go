package testbed

import (
	"fmt"
	"net"
	"net/netip"
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
	var conn *net.UDPConn
	err := n.Do(func() (err error) {
		if conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst)); err != nil {
			err = fmt.Errorf("dial %s: %w", dst, err)
		}
		return err
	})
	return conn, err
}
