package vnet

import (
	"encoding/binary"
	"os"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// fileConn is a syscall.RawConn whose Write runs f on a real descriptor
// (/dev/null takes every writev).
type fileConn struct{ fd uintptr }

func (c *fileConn) Control(func(fd uintptr)) error { return nil }
func (c *fileConn) Read(func(fd uintptr) bool) error {
	return syscall.EINVAL
}
func (c *fileConn) Write(f func(fd uintptr) bool) error {
	for !f(c.fd) {
	}
	return nil
}

// TestWriteGSONotASuperFrame: WriteGSO is told a frame is a TCP
// super-frame that is not one any more (a router stage rewrote its IPv4
// header length over the TCP header, or its protocol): it must not read
// past the frame (superHeader read the TCP header at IHL without a bounds
// check: a panic inside RawConn.Write, the daemon's end), nor write it
// whole behind a header the kernel refuses, which would turn the device's
// TCP GSO off for good. It refuses that frame alone (EINVAL, nothing
// written) and writes the next one whole.
func TestWriteGSONotASuperFrame(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	good := segment{sport: 1, seq: 1, flags: header.TCPFlagAck, n: 3000}.frame()
	binary.BigEndian.PutUint16(good[14+20+16:], gso.PseudoHeaderSum(good[14:], len(good)-34))
	for _, tc := range []struct {
		name   string
		mangle func(f []byte) []byte
	}{
		{"IHL over the TCP header", func(f []byte) []byte {
			f = f[:14+40]
			f[14] = 0x4a
			binary.BigEndian.PutUint16(f[16:], 40)
			return f
		}},
		{"UDP", func(f []byte) []byte { f[14+9] = 17; return f }},
		{"data offset past the end", func(f []byte) []byte {
			f = f[:14+40]
			binary.BigEndian.PutUint16(f[16:], 40)
			f[14+20+12] = 0xf0
			return f
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.mangle(append([]byte(nil), good...))
			ip := header.IPv4(bad[14:])
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
			c := NewCoalescer(&fileConn{fd: null.Fd()}, fdio.SkipRejected)
			g := link.GSO{Type: link.GSOTCPv4, Size: 1000}
			var n int
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("WriteGSO panicked: %v", v)
					}
				}()
				n, err = c.WriteGSO([][]byte{bad, good}, []link.GSO{g, g}, 0)
			}()
			if n != 1 || err == nil {
				t.Errorf("WriteGSO = %d, %v; want 1 and an error for the bad frame", n, err)
			}
			if whole, cut := c.Whole(); whole != 1 || cut != 0 || !c.gsoOK.Load() {
				t.Errorf("whole %d cut %d, TCP GSO on %v; want the good frame whole, GSO still on", whole, cut, c.gsoOK.Load())
			}
		})
	}
}
