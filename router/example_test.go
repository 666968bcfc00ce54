package router_test

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/taprouter/taprouter/router"
)

// dropTelnet is a user stage: it drops TCP packets to port 23 before they
// are routed.
type dropTelnet struct{ dropped int }

func (*dropTelnet) Name() string { return "drop-telnet" }

func (s *dropTelnet) Process(pkts []*router.Packet) {
	for _, p := range pkts {
		ip := p.IPv4()
		if p.Verdict() != router.Continue || ip.TransportProtocol() != header.TCPProtocolNumber {
			continue
		}
		if tcp := header.TCP(ip.Payload()); len(tcp) >= header.TCPMinimumSize && tcp.DestinationPort() == 23 {
			p.Drop(router.DropFiltered)
			s.dropped++
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
