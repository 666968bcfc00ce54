package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/internal/testbed"
)

// serviceBytes is what each side of a TestServiceReturnPath TCP exchange
// sends.
const serviceBytes = 1 << 20

// TestServiceReturnPath shows that a pod reaches another pod through a
// ClusterIP without Kubernetes: iptables DNAT rules in node1's namespace
// stand in for kube-proxy (10.96.0.10 → pb on node1, 10.96.0.11 → pc on
// node2). pa connects to the ClusterIP; its packets reach node1's kernel
// through the host port (no route in the router's FIB), are DNATed and
// come back to the router; the backend's replies must go back through the
// kernel, which un-DNATs them, or pa would get them from the backend's
// address and its connection would break. It transfers 1 MiB each way over
// TCP and exchanges UDP datagrams over a connected socket (which only
// takes datagrams from the ClusterIP), and checks that the backend saw
// pa's own address (no SNAT), and that node1's router sent to the host port
// exactly the replies node1's kernel forwarded, un-DNATed, to pa.
func TestServiceReturnPath(t *testing.T) {
	requireDaemon(t)
	c := newCluster(t, testbed.Seed())
	daemons := startTaprouter(t, c, "vxlan")
	node1, node2 := c.Node("node1"), c.Node("node2")
	d1, d2 := daemons["node1"], daemons["node2"]
	pa, pb, pc := c.Pod("pa"), c.Pod("pb"), c.Pod("pc")

	// kube-proxy's part, in node1's namespace only.
	if err := node1.Sysctl("net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	services := []struct {
		name    string
		vip     netip.Addr
		backend *testbed.Pod
	}{
		{"same-node", addr("10.96.0.10"), pb},
		{"cross-node", addr("10.96.0.11"), pc},
	}
	for _, s := range services {
		for _, rule := range [][]string{
			{"-t", "nat", "-A", "PREROUTING", "-d", s.vip.String(), "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", s.backend.Addr().String() + ":8080"},
			{"-t", "nat", "-A", "PREROUTING", "-d", s.vip.String(), "-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", s.backend.Addr().String() + ":5353"},
			// Counts the replies of these DNATed flows the kernel forwards
			// to pa (in FORWARD they still come from the backend: the
			// reply's source is rewritten at POSTROUTING).
			{"-t", "filter", "-A", "FORWARD", "-s", s.backend.Addr().String(), "-d", pa.Addr().String(),
				"-m", "conntrack", "--ctstate", "DNAT", "--ctdir", "REPLY", "--ctorigdst", s.vip.String(), "-m", "comment", "--comment", "replies-" + s.name},
		} {
			if out, err := node1.Run(append([]string{"iptables", "-w"}, rule...)...); err != nil {
				t.Fatalf("iptables %s: %v\n%s", strings.Join(rule, " "), err, out)
			}
		}
	}
	// node1's kernel needs a route to node2's pods through the host port;
	// stand in for the node routes if taprouterd did not add one.
	if out, err := node1.IP("route", "show", node2.Spec.PodCIDR.String()); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "taprouter0") {
		if _, err := node1.IP("route", "add", node2.Spec.PodCIDR.String(), "dev", "taprouter0"); err != nil {
			t.Fatal(err)
		}
	}

	flows := uint64(0)
	for _, s := range services {
		t.Run(s.name, func(t *testing.T) {
			before := stats(t, d1)
			repliesBefore := forwardCount(t, node1, "replies-"+s.name)

			seen := tcpExchange(t, pa, netip.AddrPortFrom(s.vip, 80), s.backend, 8080)
			if seen.Addr() != pa.Addr() {
				t.Errorf("TCP: %s saw the connection from %s, want pa's own %s (no SNAT)", s.backend.Spec.Name, seen, pa.Addr())
			}
			seen = udpExchange(t, pa, netip.AddrPortFrom(s.vip, 53), s.backend, 5353)
			if seen.Addr() != pa.Addr() {
				t.Errorf("UDP: %s saw the datagrams from %s, want pa's own %s (no SNAT)", s.backend.Spec.Name, seen, pa.Addr())
			}
			flows += 2
			wantDelta(t, d1, before, "return_path_recorded", 2)
			if got := stats(t, d1)["return_path_flows"]; got != flows {
				t.Errorf("node1: return_path_flows %d, want %d (one TCP, one UDP flow per service so far)", got, flows)
			}
			replies := forwardCount(t, node1, "replies-"+s.name) - repliesBefore
			if replies == 0 {
				t.Fatal("node1's kernel forwarded no reply to pa")
			}
			wantDelta(t, d1, before, "returned_to_host", replies)
			t.Logf("%s: %d replies went back through node1's kernel", s.name, replies)
		})
	}
	// node2 only forwarded: nothing crossed its host port.
	s2 := stats(t, d2)
	if s2["return_path_flows"] != 0 || s2["returned_to_host"] != 0 {
		t.Errorf("node2: return_path_flows %d, returned_to_host %d, want 0 and 0", s2["return_path_flows"], s2["returned_to_host"])
	}
}

// forwardCount is the packet count of the FORWARD rule with the comment.
func forwardCount(t *testing.T, n *testbed.ClusterNode, comment string) uint64 {
	t.Helper()
	out, err := n.Run("iptables", "-w", "-t", "filter", "-L", "FORWARD", "-n", "-v", "-x")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "/* "+comment+" */") {
			if f := strings.Fields(line); len(f) > 0 {
				if v, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	t.Fatalf("no FORWARD rule %q in:\n%s", comment, out)
	return 0
}

// pattern is n bytes that differ by seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// tcpExchange runs a TCP server on server's port, connects to dst from
// client, sends serviceBytes, half-closes, and reads serviceBytes back: the
// server answers once it has read everything. It returns the client's
// address as the server saw it.
func tcpExchange(t *testing.T, client *testbed.Pod, dst netip.AddrPort, server *testbed.Pod, port int) netip.AddrPort {
	t.Helper()
	var ln net.Listener
	if err := server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", server.Addr(), port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	request, response := pattern(serviceBytes, 1), pattern(serviceBytes, 2)
	type result struct {
		peer netip.AddrPort
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		peer := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		got, err := io.ReadAll(conn)
		if err == nil && !bytes.Equal(got, request) {
			err = fmt.Errorf("server read %d bytes, not the %d sent", len(got), len(request))
		}
		if err == nil {
			_, err = conn.Write(response)
		}
		done <- result{peer, err}
	}()
	var conn *net.TCPConn
	if err := client.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", dst.String())
		if err == nil {
			conn = c.(*net.TCPConn)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(request); err != nil {
		t.Fatalf("write to %s: %v", dst, err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, response) {
		t.Fatalf("read %d bytes from %s (%v), want the server's %d", len(got), dst, err, len(response))
	}
	if remote := conn.RemoteAddr().(*net.TCPAddr).AddrPort(); remote != dst {
		t.Fatalf("connected to %s, want %s", remote, dst)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.peer
}

// udpExchange sends 10 datagrams from a socket in client connected to dst
// (it only takes datagrams from dst) and wants each echoed back by a
// server on server's port. It returns the source the server saw.
func udpExchange(t *testing.T, client *testbed.Pod, dst netip.AddrPort, server *testbed.Pod, port int) netip.AddrPort {
	t.Helper()
	var srv *net.UDPConn
	if err := server.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(server.Addr(), uint16(port))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	peers := make(chan netip.AddrPort, 10)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			peers <- from
			srv.WriteToUDPAddrPort(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	var conn *net.UDPConn
	if err := client.Do(func() (err error) {
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 2048)
	var peer netip.AddrPort
	for i := range 10 {
		msg := []byte(fmt.Sprintf("datagram %d", i))
		if _, err := conn.Write(msg); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != "echo:"+string(msg) {
			t.Fatalf("UDP %d via %s: got %q (%v), want the echo", i, dst, buf[:n], err)
		}
		p := <-peers
		if i > 0 && p != peer {
			t.Fatalf("UDP: the server saw datagrams from %s and %s", peer, p)
		}
		peer = p
	}
	return peer
}
