package tunnel

import (
	"errors"
	"net/netip"

	"github.com/taprouter/taprouter/arp"
	"github.com/taprouter/taprouter/link"
)

// learn feeds an ARP packet seen on the underlay to the table if its sender
// is a peer, and records the peer's MAC for Recv if the table took it. ARP
// from anyone else is the kernel's business. The kernel also answers peers'
// requests for LocalAddr, which it owns.
//
// A claim that contradicts the peer's known MAC is a conflict: the table
// keeps the known MAC and re-probes it (arp.Table.Learn); it is counted in
// arp_conflicts, not arp_learned. A reply (or a request not for
// LocalAddr) for a peer the table is not resolving changes nothing and is
// counted in arp_unsolicited: only a request for LocalAddr creates an
// entry, as Stale (arp.Claim).
func (d *Direct) learn(ps *directPeers, payload []byte, t *Stats) {
	p, err := arp.Parse(payload)
	if err != nil || (p.Op != arp.OpRequest && p.Op != arp.OpReply) {
		t.Ignored++
		return
	}
	id, ok := ps.lookup(p.SenderIP)
	peer, live := ps.slot(id)
	if !ok || !live {
		t.Ignored++
		return
	}
	switch d.table.Learn(arpPort, p.SenderIP, p.SenderMAC, arp.ClaimOf(&p, d.addr)) {
	case arp.Taken:
		t.ARPLearned++
		if ps.mac[peer] != p.SenderMAC {
			d.notePeerMAC(p.SenderIP, p.SenderMAC)
		}
	case arp.Conflict:
		t.ARPConflicts++
		if d.onConflict != nil {
			known, _, _ := d.table.Peek(arpPort, p.SenderIP)
			d.onConflict(p.SenderIP, known, p.SenderMAC)
		}
	case arp.ConflictProbing:
		t.ARPConflicts++
	case arp.Unsolicited:
		t.ARPUnsolicited++
	case arp.Refused:
		t.Ignored++ // table full (counted in arp_table_full)
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
// A request the device refuses is counted in arp_send_errors (and, through
// the returned error, in the table's SendFailures).
func (u *underlayARP) SendRequest(_ uint32, target netip.Addr, dst link.HardwareAddr) error {
	d := (*Direct)(u)
	req := arp.Packet{Op: arp.OpRequest, SenderMAC: d.mac, SenderIP: d.addr, TargetIP: target}
	frame := make([]byte, arp.FrameLen)
	arp.EncodeFrame(frame, dst, d.mac, &req)
	t := Stats{ARPRequests: 1}
	n, err := d.dev.Write([][]byte{frame}, 0)
	if n != 1 {
		t.ARPSendErrors++
		if err == nil {
			err = errARPNotSent
		}
	} else {
		err = nil
	}
	d.stats.add(&t)
	return err
}

var errARPNotSent = errors.New("tunnel: direct: ARP request not sent")

// Resolved sends the frames Send queued for the peer, now addressed to mac,
// and counts them in tx_resolved as well as tx_packets: the router counts
// them as forwarded from there, as Send did not return them.
func (u *underlayARP) Resolved(_ uint32, _ netip.Addr, mac link.HardwareAddr, queued [][]byte) {
	if len(queued) == 0 {
		return
	}
	d := (*Direct)(u)
	for _, f := range queued {
		copy(f[0:6], mac[:])
	}
	n, _ := d.dev.Write(queued, 0)
	t := Stats{TxResolved: uint64(n)}
	countSent(queued, n, ethHeaderLen, &t)
	d.stats.add(&t)
}

// Failed drops the frames queued for a peer that did not answer.
func (u *underlayARP) Failed(_ uint32, _ netip.Addr, queued [][]byte) {
	d := (*Direct)(u)
	d.stats.add(&Stats{DropNoNeighbour: uint64(len(queued))})
}
