package tunnel

import (
	"net/netip"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
)

// learn feeds an ARP packet seen on the underlay to the table if its sender
// is a peer, and records the peer's MAC for Recv. ARP from anyone else is
// the kernel's business. The kernel also answers peers' requests for
// LocalAddr, which it owns.
func (d *Direct) learn(ps *directPeers, payload []byte, t *Stats) {
	p, err := arp.Parse(payload)
	if err != nil || (p.Op != arp.OpRequest && p.Op != arp.OpReply) {
		t.Ignored++
		return
	}
	peer, ok := ps.lookup(p.SenderIP)
	if !ok {
		t.Ignored++
		return
	}
	t.ARPLearned++
	d.table.Learn(arpPort, p.SenderIP, p.SenderMAC)
	if ps.mac[peer] != p.SenderMAC {
		d.notePeerMAC(p.SenderIP, p.SenderMAC)
	}
}

// notePeerMAC records that peer address a is at mac and republishes the peer
// snapshot so that Recv accepts frames from mac.
func (d *Direct) notePeerMAC(a netip.Addr, mac link.HardwareAddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.peers.Load()
	if _, ok := ps.byAddr[a]; !ok {
		return // removed by a concurrent SetPeers
	}
	d.macs[a] = mac
	d.publish(ps.peerSet)
}

// underlayARP is the Direct backend seen as the ARP table's Hooks: the table
// asks it to send requests and hands back the frames queued by Send.
type underlayARP Direct

var _ arp.Hooks = (*underlayARP)(nil)

// SendRequest writes an ARP request for target from LocalMAC and LocalAddr.
func (u *underlayARP) SendRequest(_ uint32, target netip.Addr, dst link.HardwareAddr) {
	d := (*Direct)(u)
	req := arp.Packet{Op: arp.OpRequest, SenderMAC: d.mac, SenderIP: d.addr, TargetIP: target}
	frame := make([]byte, arp.FrameLen)
	arp.EncodeFrame(frame, dst, d.mac, &req)
	t := Stats{ARPRequests: 1}
	if n, _ := d.dev.Write([][]byte{frame}, 0); n != 1 {
		t.TxErrors++
	}
	d.stats.add(&t)
}

// Resolved sends the frames Send queued for the peer, now addressed to mac.
func (u *underlayARP) Resolved(_ uint32, _ netip.Addr, mac link.HardwareAddr, queued [][]byte) {
	if len(queued) == 0 {
		return
	}
	d := (*Direct)(u)
	for _, f := range queued {
		copy(f[0:6], mac[:])
	}
	var t Stats
	n, _ := d.dev.Write(queued, 0)
	countSent(queued, n, ethHeaderLen, &t)
	d.stats.add(&t)
}

// Failed drops the frames queued for a peer that did not answer.
func (u *underlayARP) Failed(_ uint32, _ netip.Addr, queued [][]byte) {
	d := (*Direct)(u)
	d.stats.add(&Stats{DropNoNeighbour: uint64(len(queued))})
}
