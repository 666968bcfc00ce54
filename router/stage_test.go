package router

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// panicStage panics on a UDP packet to port 666; before that it drops
// packets to port 9, as a filter does.
type panicStage struct{ seen atomic.Int64 }

func (*panicStage) Name() string { return "panicky" }
func (s *panicStage) Process(pkts []*Packet) {
	for _, p := range pkts {
		if p.Verdict() != Continue {
			continue
		}
		s.seen.Add(1)
		switch header.UDP(p.IPv4().Payload()).DestinationPort() {
		case 9:
			p.Drop(DropFiltered)
		case 666:
			panic("stage bug")
		}
	}
}

// A stage that panics loses its batch's packets still in flight, counted
// and logged once; the port goes on forwarding.
func TestStagePanicIsRecovered(t *testing.T) {
	for _, where := range []string{"ingress", "egress"} {
		t.Run(where, func(t *testing.T) {
			core, logs := observer.New(zapcore.ErrorLevel)
			cfg := Config{Log: zap.New(core)}
			stage := &panicStage{}
			if where == "ingress" {
				cfg.IngressStages = []Stage{stage}
			} else {
				cfg.EgressStages = []Stage{stage}
			}
			n := newSyncNode(t, cfg, 1450, 1450)
			pa, pb := n.pods[0], n.pods[1]
			udp := func(port uint16) []byte {
				return ipv4(pa.ip, pb.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, port, 8))
			}
			before := n.r.Stats()
			// 1 passes the stage, 9 is dropped by it, 666 panics, 2 is not seen.
			n.fromPod(0, udp(1), udp(9), udp(666), udp(2))
			wantDelta(t, n.r, before, map[string]uint64{"drop_stage_panic": 3, "drop_filtered": 1})
			if got := len(pb.dev.take()); got != 0 {
				t.Fatalf("%d packets of the panicked batch were sent", got)
			}
			before = n.r.Stats()
			n.fromPod(0, udp(666))
			n.fromPod(0, udp(1), udp(2))
			wantDelta(t, n.r, before, map[string]uint64{"drop_stage_panic": 1, "forwarded": 2})
			if got := len(pb.dev.take()); got != 2 {
				t.Fatalf("after the panics pb got %d packets, want 2", got)
			}
			if logs.Len() != 1 {
				t.Fatalf("%d log entries for 2 panics, want 1: %v", logs.Len(), logs.All())
			}
			n.clk.Advance(stagePanicLogEvery)
			n.fromPod(0, udp(666))
			if logs.Len() != 2 {
				t.Fatalf("%d log entries a minute later, want 2", logs.Len())
			}
		})
	}
}

// The same stage value runs on every port's goroutine at once: with a
// started router, two pods keep making it panic while a third pod's traffic
// flows, under -race.
func TestStagePanicConcurrentPorts(t *testing.T) {
	pa, pb, pc := newPod("pa", "10.244.0.4", 4), newPod("pb", "10.244.0.5", 5), newPod("pc", "10.244.0.6", 6)
	stage := &panicStage{}
	n := newNode(t, Config{IngressStages: []Stage{stage}}, pa, pb, pc)
	const rounds = 50
	for range rounds {
		pa.send(ipv4(pa.ip, pc.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 666, 8)))
		pb.send(ipv4(pb.ip, pc.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 666, 8)))
	}
	waitCounter(t, n.r, "drop_stage_panic", 2*rounds)
	pa.send(ipv4(pa.ip, pc.ip, 64, header.UDPProtocolNumber, false, udpPayload(1, 7, 8)))
	if got := header.UDP(pc.recvIPv4(t).Payload()).DestinationPort(); got != 7 {
		t.Fatalf("pc got port %d, want 7", got)
	}
	time.Sleep(10 * time.Millisecond)
	if s := n.r.Stats(); s["drop_stage_panic"] != 2*rounds || s["forwarded"] != 1 {
		t.Fatalf("drop_stage_panic %d forwarded %d, want %d and 1", s["drop_stage_panic"], s["forwarded"], 2*rounds)
	}
}
