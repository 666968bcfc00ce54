package router

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
)

// handleARP answers a pod's ARP request for the gateway with the gateway MAC
// (the proxy-ARP gateway of kindnet's veths or Calico's 169.254.1.1) and
// learns the pod's MAC from what it sends. A pod may only speak for its own
// address: anything else is dropped as spoofed. The reply is built in place
// in the request's buffer.
func (w *worker) handleARP(p *Port, frame []byte) {
	r := w.r
	a, err := arp.Parse(frame[ethHeaderLen:])
	if err != nil {
		w.stats.drop(DropMalformed)
		return
	}
	probe := a.SenderIP.IsUnspecified() // RFC 5227 duplicate address probe
	if (!probe && a.SenderIP != p.IP) || (!p.MAC.IsZero() && a.SenderMAC != p.MAC) {
		w.stats.drop(DropSpoofed)
		p.Drops.Add(1)
		return
	}
	w.stats.add(cARPReceived, 1)
	if !probe {
		r.neigh.Learn(p.ID, a.SenderIP, a.SenderMAC, arp.ClaimOf(&a, r.cfg.Gateway))
	}
	if a.Op != arp.OpRequest || a.TargetIP != r.cfg.Gateway {
		return
	}
	reply := arp.Packet{Op: arp.OpReply, SenderMAC: r.cfg.GatewayMAC, SenderIP: r.cfg.Gateway, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
	if probe {
		reply.TargetIP = a.SenderIP
	}
	n := arp.EncodeFrame(frame[:cap(frame)], a.SenderMAC, r.cfg.GatewayMAC, &reply)
	if w.writeOne(p, frame[:n]) {
		w.stats.add(cARPRepliesSent, 1)
	}
}

// announce tells a new pod port who the gateway is (gratuitous ARP, so that
// a pod that cached an old gateway MAC updates it) and asks for the pod's
// MAC through the neighbour table, which takes only replies it asked for.
func (r *Router) announce(p *Port) {
	g := arp.Packet{Op: arp.OpRequest, SenderMAC: r.cfg.GatewayMAC, SenderIP: r.cfg.Gateway, TargetIP: r.cfg.Gateway}
	if r.sendFrame(p, link.Broadcast, &g) == nil {
		r.stats.add(cARPGratuitousSent, 1)
	}
	r.neigh.Resolve(p.ID, p.IP)
}

// sendFrame sends an ARP packet the router originates on p; a failure is
// counted (arp_send_errors) and returned.
func (r *Router) sendFrame(p *Port, dst link.HardwareAddr, a *arp.Packet) error {
	b := make([]byte, arp.FrameLen)
	n := arp.EncodeFrame(b, dst, r.cfg.GatewayMAC, a)
	if _, err := p.dev.Write([][]byte{b[:n]}, 0); err != nil {
		r.log.Debug("arp send failed", zap.String("port", p.Name), zap.Error(err))
		r.stats.add(cARPSendErrors, 1)
		return err
	}
	p.TxPackets.Add(1)
	p.TxBytes.Add(uint64(n))
	return nil
}

// maxFailed bounds the packets waiting (until the next tick) for an ICMP
// host-unreachable answer: a stream toward a dead pod must not pile up.
const maxFailed = 256

// neighbourHooks is the Router seen by its neighbour table.
type neighbourHooks Router

var _ arp.Hooks = (*neighbourHooks)(nil)

// SendRequest asks a pod port who has target.
func (h *neighbourHooks) SendRequest(port uint32, target netip.Addr, dst link.HardwareAddr) error {
	r := (*Router)(h)
	p := r.port(port)
	if p == nil || p.Kind != PodPort {
		return nil
	}
	req := arp.Packet{Op: arp.OpRequest, SenderMAC: r.cfg.GatewayMAC, SenderIP: r.cfg.Gateway, TargetIP: target}
	err := r.sendFrame(p, dst, &req)
	if err == nil {
		r.stats.add(cARPRequestsSent, 1)
	}
	return err
}

// Resolved sends the packets that waited for target's MAC; they count as
// forwarded only now.
func (h *neighbourHooks) Resolved(port uint32, target netip.Addr, mac link.HardwareAddr, queued [][]byte) {
	r := (*Router)(h)
	p := r.port(port)
	if p == nil {
		r.stats.drops[DropNoRoute].Add(uint64(len(queued))) // the port went meanwhile
		return
	}
	for _, q := range queued {
		f := make([]byte, ethHeaderLen+len(q))
		writeEthernet(f, mac, r.cfg.GatewayMAC, etherTypeIP)
		copy(f[ethHeaderLen:], q)
		if n, _ := p.dev.Write([][]byte{f}, 0); n != 1 {
			r.stats.drop(DropTxError)
			p.Drops.Add(1)
			continue
		}
		p.TxPackets.Add(1)
		p.TxBytes.Add(uint64(len(f)))
		r.stats.add(cForwarded, 1)
	}
}

// Failed hands packets whose neighbour did not answer to the timer
// goroutine, which answers each with ICMP host unreachable. (Failed may be
// called from inside Enqueue, on an ingress goroutine: answering there
// would re-enter the pipeline.)
func (h *neighbourHooks) Failed(port uint32, target netip.Addr, queued [][]byte) {
	r := (*Router)(h)
	r.log.Debug("neighbour unreachable", zap.Uint32("port", port), zap.Stringer("ip", target), zap.Int("queued", len(queued)))
	r.failedMu.Lock()
	room := max(0, maxFailed-len(r.failed))
	r.failed = append(r.failed, queued[:min(room, len(queued))]...)
	r.failedMu.Unlock()
	if over := len(queued) - room; over > 0 {
		r.stats.drops[DropNeighbour].Add(uint64(over)) // too many to answer each
	}
}
