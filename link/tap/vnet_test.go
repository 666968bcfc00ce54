package tap_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/tap"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// offloadPair is two namespaces, each with a TAP that offers offloads to its
// kernel (tapA: 10.98.0.1, tapB: 10.98.0.2, one /24), joined by a bridge in
// the test that copies every frame read from one to the other: the two
// kernels talk TCP through two offloading TAPs, as two pods talk through
// taprouter.
type offloadPair struct {
	nsA, nsB *netnstest.NS
	a, b     *tap.Device
	mu       sync.Mutex
	largest  int // the longest frame the bridge read
	frames   int
	badSums  int // IPv4 TCP frames whose checksum does not verify
}

const offloadMTU = 1400

func newOffloadPair(t *testing.T, offload bool) *offloadPair {
	p := &offloadPair{nsA: netnstest.New(t, "vnetA"), nsB: netnstest.New(t, "vnetB")}
	open := func(ns *netnstest.NS, addr string) *tap.Device {
		var d *tap.Device
		var err error
		ns.Do(func() { d, err = tap.Create("tap0", tap.TAP, tap.Options{MTU: offloadMTU, Offload: offload}) })
		if err != nil {
			t.Fatal(err)
		}
		devtest.CloseAtCleanup(t, d)
		ns.IP("addr", "add", addr+"/24", "dev", "tap0")
		ns.IP("link", "set", "tap0", "up")
		ns.WaitActive("tap0")
		return d
	}
	p.a, p.b = open(p.nsA, "10.98.0.1"), open(p.nsB, "10.98.0.2")
	go p.bridge(p.a, p.b)
	go p.bridge(p.b, p.a)
	return p
}

// bridge copies frames from → to until from is closed, and checks each.
func (p *offloadPair) bridge(from, to *tap.Device) {
	bufs, sizes := devtest.MakeBatch(64, 2048)
	out := make([][]byte, 0, 64)
	for {
		n, err := from.Read(bufs, sizes, 0)
		if err != nil {
			return
		}
		out = out[:0]
		p.mu.Lock()
		for i := range n {
			f := bufs[i][:sizes[i]]
			p.frames++
			p.largest = max(p.largest, len(f))
			if isTCPv4(f) && !tcpChecksumValid(f[14:]) {
				p.badSums++
			}
			out = append(out, f)
		}
		p.mu.Unlock()
		to.Write(out, 0)
	}
}

func isTCPv4(f []byte) bool {
	return len(f) >= 14+20 && binary.BigEndian.Uint16(f[12:14]) == 0x0800 && f[14+9] == 6
}

func tcpChecksumValid(pkt []byte) bool {
	ihl := int(pkt[0]&0xf) * 4
	seg := pkt[ihl:]
	s := checksum.Checksum(pkt[12:20], 0)
	s = checksum.Combine(s, 6)
	s = checksum.Combine(s, uint16(len(seg)))
	return checksum.Checksum(seg, s) == 0xffff
}

// transfer sends n bytes over TCP from nsA to nsB and returns what nsB read.
func (p *offloadPair) transfer(t *testing.T, n int) []byte {
	t.Helper()
	var ln net.Listener
	var err error
	p.nsB.Do(func() { ln, err = net.Listen("tcp4", "10.98.0.2:5001") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	var c net.Conn
	p.nsA.Do(func() { c, err = net.DialTimeout("tcp4", "10.98.0.2:5001", 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	return <-got
}

// TestOffloadTCPThroughTAPs: with offloads, the kernels hand the TAPs TCP
// super-frames with partial checksums; Read cuts them into frames of at
// most the MTU with valid checksums, and 8 MiB cross byte-exact. Without
// offloads nothing is cut and no frame exceeds the MTU either.
func TestOffloadTCPThroughTAPs(t *testing.T) {
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			p := newOffloadPair(t, offload)
			want := tap.Offloads(0)
			if offload {
				want = tap.OffloadChecksum | tap.OffloadTSO4 | tap.OffloadUSO // Linux ≥ 6.2
			}
			if p.a.Offloads() != want || p.b.Offloads() != want {
				t.Fatalf("offloads %v and %v, want %v", p.a.Offloads(), p.b.Offloads(), want)
			}
			const n = 8 << 20
			got := p.transfer(t, n)
			if len(got) != n {
				t.Fatalf("nsB read %d bytes, want %d", len(got), n)
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i*7 + i>>11)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("nsB read other bytes than nsA sent")
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.largest > offloadMTU+14 {
				t.Errorf("the bridge read a frame of %d bytes, want at most the MTU + 14 = %d", p.largest, offloadMTU+14)
			}
			if p.badSums != 0 {
				t.Errorf("%d of %d frames read had a TCP checksum that does not verify, want 0", p.badSums, p.frames)
			}
			sa, sb := p.a.OffloadStats(), p.b.OffloadStats()
			t.Logf("%d frames bridged; nsA's TAP: %+v; nsB's: %+v", p.frames, sa, sb)
			if offload {
				if sa.SuperFrames == 0 || sa.Segments <= sa.SuperFrames || sa.Dropped != 0 {
					t.Errorf("nsA's TAP: %+v, want super-frames cut into more segments, none dropped", sa)
				}
				// The data segments written to nsB go as super-frames
				// again; nsB's ACKs to nsA have no payload and go alone.
				if sb.Coalesced == 0 || sb.CoalescedFrames <= sb.Coalesced || sa.Coalesced != 0 {
					t.Errorf("coalesced: nsB's TAP %+v, nsA's %+v; want data frames merged toward nsB, none toward nsA", sb, sa)
				}
			} else if sa != (link.OffloadStats{}) || sb != (link.OffloadStats{}) {
				t.Errorf("OffloadStats without offloads: %+v and %+v, want zero", sa, sb)
			}
		})
	}
}

// TestOffloadShownToKernel: the pod side of an offloading TAP has TSO, USO
// and checksum offload on; of a plain one, off.
func TestOffloadShownToKernel(t *testing.T) {
	for _, offload := range []bool{true, false} {
		ns := netnstest.New(t, "vnetF")
		var d *tap.Device
		var err error
		ns.Do(func() { d, err = tap.Create("tap0", tap.TAP, tap.Options{Offload: offload}) })
		if err != nil {
			t.Fatal(err)
		}
		devtest.CloseAtCleanup(t, d)
		out := ns.MustExec("ethtool", "-k", "tap0")
		for _, f := range []string{"tx-checksumming", "tcp-segmentation-offload", "tx-udp-segmentation"} {
			want := f + ": off"
			if offload {
				want = f + ": on"
			}
			if !strings.Contains(out, want) {
				t.Errorf("offload=%v: ethtool -k tap0 has no %q:\n%s", offload, want, out)
			}
		}
	}
}

// TestAttachSetsOffloads: a persistent TAP adopted by a process gets that
// process's offloads, whatever its creator set: TSO off after an Attach
// without Offload of a TAP created with it, on after one with it.
func TestAttachSetsOffloads(t *testing.T) {
	ns := netnstest.New(t, "vnetP")
	var d *tap.Device
	var err error
	ns.Do(func() { d, err = tap.Create("ptap0", tap.TAP, tap.Options{Persist: true, Offload: true}) })
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	tso := func() string {
		for _, l := range strings.Split(ns.MustExec("ethtool", "-k", "ptap0"), "\n") {
			if strings.HasPrefix(l, "tcp-segmentation-offload:") {
				return strings.TrimSpace(strings.TrimPrefix(l, "tcp-segmentation-offload:"))
			}
		}
		return "?"
	}
	if got := tso(); got != "on" {
		t.Fatalf("created with Offload, closed: TSO %q, want on", got)
	}
	for _, offload := range []bool{false, true, false} {
		ns.Do(func() { d, err = tap.Attach("ptap0", tap.TAP, offload) })
		if err != nil {
			t.Fatal(err)
		}
		want := "off"
		if offload {
			want = "on"
		}
		if got := tso(); got != want {
			t.Errorf("attached with offload=%v: TSO %q, want %q", offload, got, want)
		}
		if offload != (d.Offloads() != 0) {
			t.Errorf("attached with offload=%v: Offloads() = %v", offload, d.Offloads())
		}
		d.Close()
	}
	ns.Do(func() { d, err = tap.Attach("ptap0", tap.TAP, false) })
	if err == nil {
		d.SetPersist(false)
		d.Close()
	}
}

// TestOffloadUDPSegmentThroughTAPs: a UDP socket in nsA that sends 10,500
// bytes in one sendmsg with UDP_SEGMENT 1000 hands its TAP one
// super-datagram (USO); Read cuts it into exactly the 11 datagrams the
// sender asked for, and nsB's socket receives them, 10 of 1000 bytes and one
// of 500, carrying the bytes sent.
func TestOffloadUDPSegmentThroughTAPs(t *testing.T) {
	p := newOffloadPair(t, true)
	var rc *net.UDPConn
	var err error
	p.nsB.Do(func() { rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 98, 0, 2), Port: 4433}) })
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data := make([]byte, 10500)
	for i := range data {
		data[i] = byte(i*5 + i>>9)
	}
	var sc *net.UDPConn
	p.nsA.Do(func() { sc, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 98, 0, 2), Port: 4433}) })
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// One sendmsg with a UDP_SEGMENT control message of 1000.
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], 1000)
	if _, _, err := sc.WriteMsgUDP(data, oob, nil); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 2048)
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 11 {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if want := min(1000, len(data)-len(got)); n != want {
			t.Fatalf("datagram %d: %d bytes, want %d", i, n, want)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("nsB received other bytes than nsA sent")
	}
	if sa := p.a.OffloadStats(); sa.SuperFrames != 1 || sa.Segments != 11 || sa.Dropped != 0 {
		t.Errorf("nsA's TAP: %+v, want exactly 1 super-datagram cut into 11", sa)
	}
}

// TestCoalesceUDPThroughTAPs: 40 datagrams that nsA's UDP socket sent one
// by one, read from its TAP in one Read and written to nsB's TAP in one
// Write, go as one UDP super-datagram (GSO_UDP_L4); nsB's kernel cuts it
// back into the same 40 datagrams, in order: 39 of 200 bytes and a last one
// of 50, carrying the bytes sent.
func TestCoalesceUDPThroughTAPs(t *testing.T) {
	nsA, nsB := netnstest.New(t, "vnetUA"), netnstest.New(t, "vnetUB")
	open := func(ns *netnstest.NS, addr string) (*tap.Device, net.HardwareAddr) {
		var d *tap.Device
		var ifc *net.Interface
		var err error
		ns.Do(func() {
			if d, err = tap.Create("tap0", tap.TAP, tap.Options{MTU: offloadMTU, Offload: true}); err == nil {
				ifc, err = net.InterfaceByName("tap0")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		devtest.CloseAtCleanup(t, d)
		ns.MustExec("sysctl", "-qw", "net.ipv6.conf.tap0.disable_ipv6=1")
		ns.IP("addr", "add", addr+"/24", "dev", "tap0")
		ns.IP("link", "set", "tap0", "up")
		ns.WaitActive("tap0")
		return d, ifc.HardwareAddr
	}
	a, _ := open(nsA, "10.98.0.1")
	b, macB := open(nsB, "10.98.0.2")
	if b.Offloads()&unix.TUN_F_USO4 == 0 {
		t.Skip("this kernel's TAPs take no USO")
	}
	nsA.IP("neigh", "add", "10.98.0.2", "lladdr", macB.String(), "dev", "tap0")

	var rc *net.UDPConn
	var err error
	nsB.Do(func() { rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 98, 0, 2), Port: 4434}) })
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	nsA.Do(func() { sc, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 98, 0, 2), Port: 4434}) })
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sent := make([][]byte, 40)
	for i := range sent {
		sent[i] = make([]byte, 200)
		if i == len(sent)-1 {
			sent[i] = sent[i][:50]
		}
		for j := range sent[i] {
			sent[i][j] = byte(i*7 + j)
		}
		if _, err := sc.Write(sent[i]); err != nil {
			t.Fatal(err)
		}
	}

	bufs, sizes := devtest.MakeBatch(64, 2048)
	var frames [][]byte
	for deadline := time.Now().Add(5 * time.Second); len(frames) < len(sent) && time.Now().Before(deadline); {
		n, err := a.Read(bufs[len(frames):], sizes[len(frames):], 0)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			frames = append(frames, bufs[len(frames)][:sizes[len(frames)]])
		}
	}
	if len(frames) != len(sent) {
		t.Fatalf("read %d frames from nsA's TAP, want %d", len(frames), len(sent))
	}
	if n, err := b.Write(frames, 0); n != len(frames) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(frames))
	}
	if s := b.OffloadStats(); s.Coalesced != 1 || s.CoalescedFrames != 40 || s.CoalesceRefused != 0 {
		t.Errorf("nsB's TAP: %+v, want exactly 1 super-datagram of 40", s)
	}
	buf := make([]byte, 2048)
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i, want := range sent {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes, not the %d sent", i, n, len(want))
		}
	}
}
