package router

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
)

// Packets that wait for their neighbour count as forwarded when they are
// sent, not when they are queued; those the full queue drops are counted;
// the neighbour table's counters are in Stats.
func TestQueuedPacketsCountWhenSent(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	n.r.neigh.Remove(pb.port.ID, pb.ip) // pb's MAC is not known
	udp := func(port uint16) []byte {
		return ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, port, 8))
	}
	before := n.r.Stats()
	n.fromPod(0, udp(1), udp(2), udp(3), udp(4), udp(5)) // the queue holds 3
	wantDelta(t, n.r, before, map[string]uint64{
		"arp_requests_sent": 1, "neigh_requests_sent": 1,
		"neigh_queue_drops": 2, "drop_neighbour_queue": 2,
	})
	if out := pb.dev.take(); len(out) != 1 || out[0][12] != 0x08 || out[0][13] != 0x06 {
		t.Fatalf("pb got %d frames, want the ARP request", len(out))
	}
	before = n.r.Stats()
	n.framesFromPod(1, n.arpFrom(1, arp.OpReply))
	wantDelta(t, n.r, before, map[string]uint64{"forwarded": 3, "neigh_learned": 1, "arp_received": 1})
	out := pb.dev.take()
	if len(out) != 3 {
		t.Fatalf("pb got %d packets, want the 3 queued", len(out))
	}
	for i, f := range out { // the newest three, in order
		if got := header.UDP(header.IPv4(f[14:]).Payload()).DestinationPort(); got != uint16(3+i) {
			t.Errorf("packet %d to port %d, want %d", i, got, 3+i)
		}
	}
	if got := pb.port.TxPackets.Load(); got != 4 {
		t.Errorf("pb tx packets %d, want 4", got)
	}
}

// ARP packets a pod's device refuses are counted, not counted as sent.
func TestARPSendErrorsCounted(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450, 1450)
	pa, pb := n.pods[0], n.pods[1]
	n.r.neigh.Remove(pb.port.ID, pb.ip)
	pb.dev.fail = true
	before := n.r.Stats()
	n.fromPod(0, ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)))
	wantDelta(t, n.r, before, map[string]uint64{"arp_send_errors": 1, "neigh_requests_sent": 1, "neigh_send_failures": 1})
	pa.dev.fail = true
	before = n.r.Stats()
	n.framesFromPod(0, n.arpFrom(0, arp.OpRequest)) // the reply cannot be sent
	wantDelta(t, n.r, before, map[string]uint64{"drop_tx_error": 1, "neigh_learned": 1, "arp_received": 1})
}

// What the gateway has no use for is counted, not silently consumed.
func TestLocalDeliveryCounted(t *testing.T) {
	n := newSyncNode(t, Config{}, 1450)
	pa := n.pods[0]
	syn := make([]byte, header.TCPMinimumSize)
	header.TCP(syn).Encode(&header.TCPFields{SrcPort: 40000, DstPort: 22, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn})
	reply := echo(1, 1, 8)
	reply[0] = byte(header.ICMPv4EchoReply)
	timestamp := make([]byte, 20)
	timestamp[0] = byte(header.ICMPv4Timestamp)
	before := n.r.Stats()
	n.fromPod(0,
		ipv4(pa.ip, gateway, 64, header.TCPProtocolNumber, true, syn),
		ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, reply),
		ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, timestamp),
		ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, true, []byte{8, 0, 0, 0}), // shorter than an ICMP header
	)
	wantDelta(t, n.r, before, map[string]uint64{"drop_local": 3, "drop_malformed": 1})
	if got := pa.port.Drops.Load(); got != 0 {
		t.Errorf("port drops %d: these are routing drops, not the port's", got)
	}
}

// failDevice is a pod device whose Read fails with err once fail is closed.
type failDevice struct {
	*linktest.Device
	fail, closed chan struct{}
	once         sync.Once
	err          error
}

func (d *failDevice) Read([][]byte, []int, int) (int, error) {
	select {
	case <-d.fail:
		return 0, d.err
	case <-d.closed:
		return 0, link.ErrClosed
	}
}

func (d *failDevice) Close() error {
	d.once.Do(func() { close(d.closed) })
	return d.Device.Close()
}

// A pod whose device fails (its TAP was deleted, or reads fail) is logged
// and shown down; a port the router closes is neither.
func TestPortDownWhenDeviceFails(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	r, err := New(Config{PodCIDR: podCIDR0, Gateway: gateway, GatewayMAC: gwMAC, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	errs := map[string]error{
		"deleted": fmt.Errorf("tap deleted: read: device was deleted: %w", link.ErrClosed),
		"eio":     errors.New("tap eio: read: input/output error"),
		"fine":    nil,
		"removed": nil,
	}
	devs := map[string]*failDevice{}
	i := 0
	for name, e := range errs {
		i++
		d := &failDevice{Device: linktest.NewDevice(name, 1450, 16), fail: make(chan struct{}), closed: make(chan struct{}), err: e}
		go func() {
			for range d.Out {
			}
		}()
		devs[name] = d
		if _, err := r.AddPodPort(name, d, netip.AddrFrom4([4]byte{10, 244, 0, byte(10 + i)}), link.HardwareAddr{2, 0, 0, 0, 0, byte(i)}, 1450); err != nil {
			t.Fatal(err)
		}
	}
	r.Start()
	close(devs["deleted"].fail)
	close(devs["eio"].fail)
	if err := r.RemovePort("removed"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for logs.Len() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := map[string]PortInfo{}
	for _, p := range r.Ports() {
		got[p.Name] = p
	}
	if len(got) != 3 {
		t.Fatalf("ports %v", got)
	}
	for name, want := range map[string]string{"deleted": errs["deleted"].Error(), "eio": errs["eio"].Error(), "fine": ""} {
		if p := got[name]; p.Down != (want != "") || p.DownReason != want {
			t.Errorf("%s: down %v (%q), want down %v (%q)", name, p.Down, p.DownReason, want != "", want)
		}
	}
	r.Close()
	if logs.Len() != 2 {
		t.Fatalf("%d warnings, want 2 (the failed ports): %v", logs.Len(), logs.All())
	}
	for _, e := range logs.All() {
		if e.Message != "port read failed; port is down" {
			t.Errorf("log %q", e.Message)
		}
	}
}
