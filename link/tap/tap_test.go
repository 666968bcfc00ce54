package tap_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/internal/devtest"
	"github.com/taprouter/taprouter/link/tap"
	"github.com/taprouter/taprouter/podnet/netnstest"
)

// The kernel side of the test TAP is 10.99.0.2 on tap0. The Go side plays
// 10.99.0.1 with peerMAC, a permanent neighbour of the kernel.
var (
	kernelIP = netip.MustParseAddr("10.99.0.2")
	peerIP   = netip.MustParseAddr("10.99.0.1")
	peerMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
)

type tapNet struct {
	ns        *netnstest.NS
	dev       *tap.Device
	kernelMAC [6]byte
}

// newTAPNet creates tap0 inside a new namespace, addresses it and adds the
// Go side as a permanent neighbour. A watchdog closes the device after 20s
// so that a missing frame fails the test instead of hanging it.
func newTAPNet(t testing.TB) *tapNet { return newTAPNetOpts(t, tap.Options{MTU: 1400}) }

func newTAPNetOpts(t testing.TB, opts tap.Options) *tapNet {
	ns := netnstest.New(t, "tap")
	tn := &tapNet{ns: ns}
	var err error
	ns.Do(func() {
		tn.dev, err = tap.Create("tap0", tap.TAP, opts)
		if err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName("tap0"); err == nil {
			copy(tn.kernelMAC[:], ifi.HardwareAddr)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	devtest.CloseAtCleanup(t, tn.dev)
	ns.IP("addr", "add", kernelIP.String()+"/24", "dev", "tap0")
	ns.IP("link", "set", "tap0", "up")
	ns.WaitActive("tap0")
	ns.IP("neigh", "add", peerIP.String(), "lladdr", net.HardwareAddr(peerMAC[:]).String(), "nud", "permanent", "dev", "tap0")
	return tn
}

func TestCreateRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode tap.Mode
		opts tap.Options
		want string
	}{
		{"tap0", 0, tap.Options{}, "invalid tap mode"},
		{"", tap.TAP, tap.Options{}, "invalid device name"},
		{"sixteen-chars-xx", tap.TUN, tap.Options{}, "invalid device name"},
		{"tap0", tap.TAP, tap.Options{TxQueueLen: -1}, "invalid TxQueueLen"},
	} {
		_, err := tap.Create(tc.name, tc.mode, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%q, %v, %+v) = %v, want error containing %q", tc.name, tc.mode, tc.opts, err, tc.want)
		}
	}
}

// TestTxQueueLen checks that Create sets DefaultTxQueueLen, or the length
// Options ask for, on TAP and TUN devices.
func TestTxQueueLen(t *testing.T) {
	ns := netnstest.New(t, "txqlen")
	for _, tc := range []struct {
		name string
		mode tap.Mode
		qlen int
		want int
	}{
		{"tap0", tap.TAP, 0, tap.DefaultTxQueueLen},
		{"tun0", tap.TUN, 0, tap.DefaultTxQueueLen},
		{"tap1", tap.TAP, 64, 64},
	} {
		var dev *tap.Device
		var err error
		ns.Do(func() { dev, err = tap.Create(tc.name, tc.mode, tap.Options{TxQueueLen: tc.qlen}) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dev.Close() })
		if got := showLink(t, ns, tc.name).TxQueueLen; got != tc.want {
			t.Errorf("%s with TxQueueLen %d: txqueuelen %d, want %d", tc.mode, tc.qlen, got, tc.want)
		}
	}
}

// TestQueueHoldsBurst has the kernel send a burst of 3000 UDP datagrams
// through the TAP before anything reads it, as a pod's TCP does while the
// router is busy: all of them wait in the device's queue, none is dropped.
// With the kernel's default txqueuelen of 1000 the tun driver dropped 2000.
func TestQueueHoldsBurst(t *testing.T) {
	tn := newTAPNet(t)
	const burst = 3000
	var conn net.Conn
	var err error
	tn.ns.Do(func() { conn, err = net.Dial("udp4", netip.AddrPortFrom(peerIP, 9).String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := make([]byte, 1000)
	for i := range burst {
		if _, err := conn.Write(payload); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	if dropped := showLink(t, tn.ns, "tap0").Stats.Tx.Dropped; dropped != 0 {
		t.Fatalf("the device dropped %d of %d queued frames (tx_dropped)", dropped, burst)
	}
	bufs, sizes := devtest.MakeBatch(64, 2048)
	for got := 0; got < burst; {
		n, err := tn.dev.Read(bufs, sizes, 0)
		if err != nil {
			t.Fatalf("Read after %d of %d datagrams: %v", got, burst, err)
		}
		for i := range n {
			if isUDPTo(bufs[i][:sizes[i]], peerIP, 9) {
				got++
			}
		}
	}
}

// linkStats is what the tests read from ip -j -s link show.
type linkStats struct {
	TxQueueLen int `json:"txqlen"`
	Stats      struct {
		Tx struct {
			Dropped uint64 `json:"dropped"`
		} `json:"tx"`
	} `json:"stats64"`
}

func showLink(t *testing.T, ns *netnstest.NS, name string) linkStats {
	t.Helper()
	out := ns.IP("-j", "-s", "link", "show", name)
	var links []linkStats
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -j -s link show %s = %q: %v", name, out, err)
	}
	return links[0]
}

// TestPingBatch lets the kernel ping the Go side through the TAP: one Read
// returns all queued echo requests, one Write returns the replies, and ping
// reports every reply received.
func TestPingBatch(t *testing.T) {
	tn := newTAPNet(t)
	if got := tn.dev.MTU(); got != 1400 {
		t.Errorf("MTU() = %d, want 1400", got)
	}
	if out := tn.ns.IP("link", "show", "tap0"); !strings.Contains(out, "mtu 1400") {
		t.Errorf("ip link show tap0 = %q, want mtu 1400", out)
	}

	const count = 4
	var pingOut bytes.Buffer
	ping := tn.ns.Command("ping", "-n", "-c", "4", "-i", "0.05", "-W", "10", peerIP.String())
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	tn.ns.Start(ping)
	time.Sleep(time.Second) // let ping queue all requests before the first Read

	bufs, sizes := devtest.MakeBatch(8, 2048)
	n, err := tn.dev.Read(bufs, sizes, 0)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if n != count {
		for i := range n {
			t.Logf("frame %d: % x", i, bufs[i][:sizes[i]])
		}
		t.Fatalf("Read returned %d frames in one call, want all %d queued echo requests", n, count)
	}
	replies := make([][]byte, n)
	for i := range n {
		e, ok := parseEcho(bufs[i][:sizes[i]])
		if !ok || e.icmpType != icmpEchoRequest || e.src != kernelIP || e.dst != peerIP || e.dstMAC != peerMAC || e.srcMAC != tn.kernelMAC {
			t.Fatalf("frame %d is not an echo request %v(%x) -> %v(%x): % x", i, kernelIP, tn.kernelMAC, peerIP, peerMAC, bufs[i][:sizes[i]])
		}
		replies[i] = e.reply()
	}
	if n, err := tn.dev.Write(replies, 0); n != count || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, count)
	}
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping failed (%v): %s", err, pingOut.String())
	}
	if !strings.Contains(pingOut.String(), "4 received") {
		t.Errorf("ping output does not report 4 replies: %s", pingOut.String())
	}
}

// TestWriteOffset checks that Write sends bufs[i][offset:] and Read fills
// bufs[i][offset:], leaving the headroom untouched.
func TestWriteOffset(t *testing.T) {
	tn := newTAPNet(t)
	const offset = 50
	req := echoFrame(tn.kernelMAC, peerMAC, peerIP, kernelIP, icmpEchoRequest, 7, 1, []byte("offset"))
	out := append(bytes.Repeat([]byte{0xee}, offset), req...)
	if n, err := tn.dev.Write([][]byte{out}, offset); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	bufs, sizes := devtest.MakeBatch(1, 2048)
	copy(bufs[0], bytes.Repeat([]byte{0xaa}, offset))
	if _, err := tn.dev.Read(bufs, sizes, offset); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if !bytes.Equal(bufs[0][:offset], bytes.Repeat([]byte{0xaa}, offset)) {
		t.Errorf("Read wrote into the headroom")
	}
	e, ok := parseEcho(bufs[0][offset : offset+sizes[0]])
	if !ok || e.icmpType != icmpEchoReply || e.id != 7 || string(e.payload) != "offset" {
		t.Errorf("got % x, want the kernel's echo reply", bufs[0][offset:offset+sizes[0]])
	}
}

func echoRequests(tn *tapNet, n, size int) [][]byte {
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = echoFrame(tn.kernelMAC, peerMAC, peerIP, kernelIP, icmpEchoRequest, 1, uint16(i), make([]byte, size))
	}
	return reqs
}

// TestKernelEchoNoAllocs has the kernel answer batches of echo requests
// written to the TAP; a steady-state Write+Read round does not allocate,
// with offloads (virtio headers both ways) or without.
func TestKernelEchoNoAllocs(t *testing.T) {
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			kernelEchoNoAllocs(t, newTAPNetOpts(t, tap.Options{MTU: 1400, Offload: offload}))
		})
	}
}

func kernelEchoNoAllocs(t *testing.T, tn *tapNet) {
	reqs := echoRequests(tn, 8, 56)
	bufs, sizes := devtest.MakeBatch(8, 2048)
	devtest.Exchange(t, tn.dev, tn.dev, reqs, bufs, sizes, 0) // warm up
	for i := range 8 {
		e, ok := parseEcho(bufs[i][:sizes[i]])
		if !ok || e.icmpType != icmpEchoReply || e.src != kernelIP || e.dst != peerIP {
			t.Fatalf("frame %d is not an echo reply from the kernel: % x", i, bufs[i][:sizes[i]])
		}
	}
	allocs := devtest.AllocsPerPacket(t, 100, len(reqs), func() { devtest.Exchange(t, tn.dev, tn.dev, reqs, bufs, sizes, 0) })
	if allocs != 0 {
		t.Errorf("Write+Read of batches of %d frames: %g allocations per frame, want 0", len(reqs), allocs)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	tn := newTAPNet(t)
	_, err := devtest.BlockedRead(t, tn.dev, "Close", func() {
		if err := tn.dev.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
	if err != link.ErrClosed {
		t.Errorf("blocked Read returned %v, want link.ErrClosed", err)
	}
	if _, err := tn.dev.Write([][]byte{make([]byte, 60)}, 0); err != link.ErrClosed {
		t.Errorf("Write after Close = %v, want link.ErrClosed", err)
	}
}

// TestDeleteUnblocksRead deletes the device under a blocked Read (as
// podnet.DetachPod does); Read returns an error wrapping link.ErrClosed.
func TestDeleteUnblocksRead(t *testing.T) {
	tn := newTAPNet(t)
	_, err := devtest.BlockedRead(t, tn.dev, "deleting the device", func() { tn.ns.IP("link", "del", "tap0") })
	if !errors.Is(err, link.ErrClosed) {
		t.Errorf("Read on a deleted device returned %v, want an error wrapping link.ErrClosed", err)
	}
}

func TestPersistAndAttach(t *testing.T) {
	ns := netnstest.New(t, "attach")
	var created *tap.Device
	var err error
	ns.Do(func() { created, err = tap.Create("ptap0", tap.TAP, tap.Options{Persist: true}) })
	if err != nil {
		t.Fatal(err)
	}
	ns.Do(func() { _, err = tap.Create("ptap0", tap.TAP, tap.Options{}) })
	if err == nil {
		t.Errorf("Create of an existing device succeeded, want an error")
	}
	if err := created.Close(); err != nil {
		t.Fatal(err)
	}
	if out := ns.IP("-d", "link", "show", "ptap0"); !strings.Contains(out, "tap") {
		t.Fatalf("persistent device gone after Close: %s", out)
	}

	ns.Do(func() { _, err = tap.Attach("ptap0", tap.TUN, false) })
	if err == nil {
		t.Errorf("Attach of a TAP as TUN succeeded, want an error")
	}
	ns.Do(func() { _, err = tap.Attach("nope0", tap.TAP, false) })
	if err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("Attach of a missing device = %v, want a no-such-device error", err)
	}
	if out := ns.IP("link"); strings.Contains(out, "nope0") {
		t.Errorf("failed Attach left a device behind: %s", out)
	}

	var attached *tap.Device
	ns.Do(func() { attached, err = tap.Attach("ptap0", tap.TAP, false) })
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if attached.Name() != "ptap0" || attached.MTU() != 1500 || attached.Mode() != tap.TAP {
		t.Errorf("attached device: name %q MTU %d mode %v, want ptap0 1500 tap", attached.Name(), attached.MTU(), attached.Mode())
	}
	ns.Do(func() { _, err = tap.Attach("ptap0", tap.TAP, false) })
	if err == nil {
		t.Errorf("second Attach of an open device succeeded, want an error")
	}
	if err := attached.SetPersist(false); err != nil {
		t.Fatal(err)
	}
	attached.Close()
	if out := ns.IP("link"); strings.Contains(out, "ptap0") {
		t.Errorf("non-persistent device still exists after Close: %s", out)
	}
}

// BenchmarkKernelEcho measures a TAP round trip of 32 echo requests of 1372
// bytes (1400-byte IP packets) through the kernel.
func BenchmarkKernelEcho(b *testing.B) {
	tn := newTAPNet(b)
	const batch = 32
	reqs := echoRequests(tn, batch, 1400-28)
	bufs, sizes := devtest.MakeBatch(batch, 2048)
	b.ReportAllocs()
	b.SetBytes(batch * 1414)
	reads := 0
	for b.Loop() {
		reads += devtest.Exchange(b, tn.dev, tn.dev, reqs, bufs, sizes, 0)
	}
	b.ReportMetric(float64(b.N*batch)/float64(reads), "frames/read")
}
