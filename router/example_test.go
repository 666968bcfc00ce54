package router_test

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/linktest"
	"github.com/taprouter/taprouter/router"
)

// dropTelnet is a user stage: it drops TCP packets to port 23 before they
// are routed. (The README shows the same code.)
//
// Every port's goroutine runs the same stage value at once, so its counter
// is atomic. A packet is whatever a pod sent: only its IPv4 header has been
// checked, so the stage skips later fragments and checks the TCP header's
// length before reading a port.
type dropTelnet struct{ dropped atomic.Uint64 }

func (*dropTelnet) Name() string { return "drop-telnet" }

func (s *dropTelnet) Process(pkts []*router.Packet) {
	for _, p := range pkts {
		ip := p.IPv4()
		if p.Verdict() != router.Continue || ip.TransportProtocol() != header.TCPProtocolNumber || ip.FragmentOffset() != 0 {
			continue
		}
		if tcp := header.TCP(ip.Payload()); len(tcp) >= header.TCPMinimumSize && tcp.DestinationPort() == 23 {
			p.Drop(router.DropFiltered)
			s.dropped.Add(1)
		}
	}
}

// A custom stage goes into the pipeline through the router's Config.
func Example_stage() {
	r, err := router.New(router.Config{
		PodCIDR:       netip.MustParsePrefix("10.244.0.0/24"),
		Gateway:       netip.MustParseAddr("10.244.0.1"),
		IngressStages: []router.Stage{&dropTelnet{}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	fmt.Println("stage installed; drops are counted as", router.DropFiltered)
	// Output: stage installed; drops are counted as drop_filtered
}

// TestExampleStage runs the example stage in a started router with two pods
// sending at once (under -race: the counter is shared), telnet SYNs and TCP
// packets whose payload is too short for a TCP header (the README's first
// version of this stage panicked on them).
func TestExampleStage(t *testing.T) {
	gw, gwMAC := netip.MustParseAddr("10.244.0.1"), link.HardwareAddr{0x0e, 0x58, 0, 0, 0, 1}
	stage := &dropTelnet{}
	r, err := router.New(router.Config{PodCIDR: netip.MustParsePrefix("10.244.0.0/24"), Gateway: gw, GatewayMAC: gwMAC, IngressStages: []router.Stage{stage}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	type pod struct {
		ip  netip.Addr
		mac link.HardwareAddr
		dev *linktest.Device
	}
	var pods []pod
	for i := range 2 {
		p := pod{netip.AddrFrom4([4]byte{10, 244, 0, byte(4 + i)}), link.HardwareAddr{2, 0, 0, 0, 0, byte(4 + i)}, linktest.NewDevice(fmt.Sprint("p", i), 1450, 256)}
		if _, err := r.AddPodPort(p.dev.Name(), p.dev, p.ip, p.mac, 1450); err != nil {
			t.Fatal(err)
		}
		go func() { // drain what the router sends the pod
			for range p.dev.Out {
			}
		}()
		pods = append(pods, p)
	}
	r.Start()
	tcpTo := func(p pod, payload []byte) []byte {
		f := make([]byte, 14+header.IPv4MinimumSize+len(payload))
		copy(f[0:6], gwMAC[:])
		copy(f[6:12], p.mac[:])
		f[12], f[13] = 0x08, 0x00
		ip := header.IPv4(f[14:])
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - 14), TTL: 64, Protocol: uint8(header.TCPProtocolNumber),
			SrcAddr: tcpip.AddrFrom4(p.ip.As4()), DstAddr: tcpip.AddrFrom4(gw.As4())})
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(ip.Payload(), payload)
		return f
	}
	syn := make([]byte, header.TCPMinimumSize)
	header.TCP(syn).Encode(&header.TCPFields{SrcPort: 40000, DstPort: 23, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn})
	const rounds = 100
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				p.dev.In <- tcpTo(p, syn)
				p.dev.In <- tcpTo(p, []byte{0, 23})
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(2 * time.Second)
	for r.Stats()["drop_filtered"] < 2*rounds && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := r.Stats()["drop_filtered"], uint64(2*rounds); got != want || stage.dropped.Load() != want {
		t.Fatalf("drop_filtered %d, stage counted %d, want %d", got, stage.dropped.Load(), want)
	}
	if got := r.Stats()["drop_stage_panic"]; got != 0 {
		t.Fatalf("drop_stage_panic %d", got)
	}
}
