package arp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestParseKernelRequest parses an ARP request emitted by the Linux kernel.
// It builds two network namespaces joined by a veth pair, pings an absent
// neighbour from the first and captures the kernel's request with an
// AF_PACKET socket in the second.
func TestParseKernelRequest(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	sender, target := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	senderMAC := link.HardwareAddr{0x02, 0x00, 0xc0, 0x00, 0x02, 0x01}
	nsA := fmt.Sprintf("arptest-%d-a", os.Getpid())
	nsB := fmt.Sprintf("arptest-%d-b", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	}
	ip(t, "-n", nsA, "link", "add", "veth0", "address", senderMAC.String(), "type", "veth", "peer", "name", "veth1", "netns", nsB)
	ip(t, "-n", nsA, "addr", "add", sender.String()+"/24", "dev", "veth0")
	ip(t, "-n", nsA, "link", "set", "veth0", "up")
	ip(t, "-n", nsB, "link", "set", "veth1", "up")

	fd := openARPSocket(t, nsB, "veth1")
	ping := exec.Command("ip", "netns", "exec", nsA, "ping", "-c", "1", "-W", "1", target.String())
	if err := ping.Start(); err != nil {
		t.Fatalf("starting ping: %v", err)
	}
	t.Cleanup(func() { ping.Process.Kill(); ping.Wait() })

	buf := make([]byte, 1500)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("reading from AF_PACKET socket: %v", err)
		}
		frame := buf[:n]
		p, err := Parse(frame[ethernetHeaderLen:])
		if err != nil {
			t.Fatalf("Parse of the kernel's frame %x: %v", frame, err)
		}
		if p.TargetIP != target {
			continue // not the request the ping caused
		}
		t.Logf("kernel ARP request: %x", frame)
		if dst := link.HardwareAddr(frame[0:6]); dst != link.Broadcast {
			t.Errorf("request sent to %v, want broadcast", dst)
		}
		if p.Op != OpRequest || p.SenderMAC != senderMAC || p.SenderIP != sender {
			t.Fatalf("Parse = %+v, want a request from %v at %v", p, sender, senderMAC)
		}
		return
	}
	t.Fatal("no ARP request for " + target.String() + " within 5s")
}

// ip runs the ip command and fails the test if it fails.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// openARPSocket opens an AF_PACKET socket that receives ARP frames on
// ifName in namespace ns, with a 1s receive timeout. A socket stays in the
// namespace it was created in.
func openARPSocket(t *testing.T, ns, ifName string) int {
	t.Helper()
	fd, err := inNamespace(ns, func() (int, error) { return bindARPSocket(ifName) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// inNamespace runs f on an OS thread moved into namespace name. If the
// thread cannot be moved back, it stays locked, so that it exits with its
// goroutine instead of serving others from the wrong namespace.
func inNamespace(name string, f func() (int, error)) (int, error) {
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		restored := true
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		orig, err := netns.Get()
		if err != nil {
			done <- result{-1, fmt.Errorf("getting current namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			done <- result{-1, fmt.Errorf("opening namespace %s: %w", name, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- result{-1, fmt.Errorf("entering namespace %s: %w", name, err)}
			return
		}
		fd, err := f()
		if serr := netns.Set(orig); serr != nil {
			restored = false
			if err == nil {
				unix.Close(fd)
			}
			done <- result{-1, fmt.Errorf("leaving namespace %s: %w", name, serr)}
			return
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

func bindARPSocket(ifName string) (int, error) {
	iface, err := net.InterfaceByName(ifName)
	if err != nil {
		return -1, err
	}
	proto := htons(unix.ETH_P_ARP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: iface.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding AF_PACKET socket to %s: %w", ifName, err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setting receive timeout: %w", err)
	}
	return fd, nil
}

// htons converts a 16-bit value to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
