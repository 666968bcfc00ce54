package router

import (
	"fmt"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// TestAttackStageBadDropReason: DropReason is an exported uint8 and Drop
// takes any value. A stage that drops with a reason of its own (say
// DropReason(200), "my_filter") makes transmit index the drop counters out
// of range: the panic is outside the stage's recover, so it ends the port's
// goroutine and the daemon (issue 8 item 10: one bad stage must not kill
// the node's networking). The test recovers it to report it.
func TestAttackStageBadDropReason(t *testing.T) {
	for _, where := range []string{"ingress", "egress"} {
		t.Run(where, func(t *testing.T) {
			stage := StageFunc{StageName: "custom-reason", Func: func(p *Packet) { p.Drop(DropReason(200)) }}
			cfg := Config{}
			if where == "ingress" {
				cfg.IngressStages = []Stage{stage}
			} else {
				cfg.EgressStages = []Stage{stage}
			}
			n := newSyncNode(t, cfg, 1450, 1450)
			pa, pb := n.pods[0], n.pods[1]
			before := n.r.Stats()
			err := func() (err error) {
				defer func() {
					if v := recover(); v != nil {
						err = fmt.Errorf("router panicked outside the stage: %v", v)
					}
				}()
				n.fromPod(0, ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 2, 8)))
				return nil
			}()
			if err != nil {
				t.Fatal(err)
			}
			// Counted under drop_filtered, "a user stage dropped it".
			wantDelta(t, n.r, before, map[string]uint64{"drop_filtered": 1})
		})
	}
}

// TestAttackStageCorruptHeaderLength: a stage that rewrites the header
// (a NAT, a DSCP marker) and gets the IHL wrong, here 15 (60 bytes) on a
// 36-byte echo request to the gateway, makes the router's own code
// (deliverLocal's header.IPv4.Payload) slice out of range, outside the
// stage's recover. The header is validated once, before the stages, and
// not again after them.
func TestAttackStageCorruptHeaderLength(t *testing.T) {
	stage := StageFunc{StageName: "bad-ihl", Func: func(p *Packet) { p.Data()[0] = 0x4f }}
	n := newSyncNode(t, Config{IngressStages: []Stage{stage}}, 1450)
	pa := n.pods[0]
	before := n.r.Stats()
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = fmt.Errorf("router panicked outside the stage: %v", v)
			}
		}()
		n.fromPod(0, ipv4(pa.ip, gateway, 64, header.ICMPv4ProtocolNumber, false, echo(1, 1, 8)))
		return nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	wantDelta(t, n.r, before, map[string]uint64{"drop_malformed": 1})
	if got := len(pa.dev.take()); got != 0 {
		t.Errorf("the gateway answered a packet with a corrupt header: %d frames", got)
	}
}
