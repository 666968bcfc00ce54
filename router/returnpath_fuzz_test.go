package router

import (
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tuple is the oracle's flow: what a reply looks like, written out.
type tuple struct {
	proto      uint8
	src, dst   netip.Addr
	sport, dpt uint16
}

// oracleTransport is the transport header of h if h is an IPv4 packet (or
// the start of one) that carries at least 8 of its bytes.
func oracleTransport(h []byte) ([]byte, bool) {
	if len(h) < header.IPv4MinimumSize || h[0]&0xf < 5 {
		return nil, false
	}
	ip := header.IPv4(h)
	if int(ip.HeaderLength())+8 > len(h) || ip.FragmentOffset() != 0 {
		return nil, false
	}
	return h[ip.HeaderLength():], true
}

// oracleReplyOf is the tuple of the replies to req, or false when req has
// none the router tracks.
func oracleReplyOf(req []byte) (tuple, bool) {
	t, ok := oracleTransport(req)
	if !ok {
		return tuple{}, false
	}
	ip := header.IPv4(req)
	src, dst := netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
	switch ip.Protocol() {
	case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber), protoSCTP:
		u := header.UDP(t) // source and destination ports sit alike in all three
		return tuple{ip.Protocol(), dst, src, u.DestinationPort(), u.SourcePort()}, true
	case uint8(header.ICMPv4ProtocolNumber):
		if i := header.ICMPv4(t); i.Type() == header.ICMPv4Echo {
			return tuple{ip.Protocol(), dst, src, i.Ident(), 0}, true
		}
	}
	return tuple{}, false
}

// oracleFlowOf is the reply tuple rep belongs to.
func oracleFlowOf(rep []byte) (tuple, bool) {
	t, ok := oracleTransport(rep)
	if !ok {
		return tuple{}, false
	}
	ip := header.IPv4(rep)
	src, dst := netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
	switch ip.Protocol() {
	case uint8(header.TCPProtocolNumber), uint8(header.UDPProtocolNumber), protoSCTP:
		u := header.UDP(t)
		return tuple{ip.Protocol(), src, dst, u.SourcePort(), u.DestinationPort()}, true
	case uint8(header.ICMPv4ProtocolNumber):
		i := header.ICMPv4(t)
		switch i.Type() {
		case header.ICMPv4EchoReply:
			return tuple{ip.Protocol(), src, dst, i.Ident(), 0}, true
		case header.ICMPv4DstUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
			q := t[8:]
			if len(q) < header.IPv4MinimumSize || netip.AddrFrom4(header.IPv4(q).SourceAddress().As4()) != dst {
				return tuple{}, false
			}
			return oracleReplyOf(q)
		}
	}
	return tuple{}, false
}

// FuzzReturnPathFlow records the reply flow of req in an empty table and
// asks whether rep belongs to a recorded flow. Invariants: nothing panics,
// whatever the bytes; rep is taken for a reply exactly when the oracle (a
// separate parse with gVisor's header views) says it has the tuple
// recorded for req.
func FuzzReturnPathFlow(f *testing.F) {
	pa, pb := netip.MustParseAddr("10.244.0.4"), netip.MustParseAddr("10.244.0.5")
	tcpReq := ipv4(pa, pb, 62, header.TCPProtocolNumber, true, tcpSegment(40000, 8080, header.TCPFlagSyn, 0))
	tcpRep := ipv4(pb, pa, 64, header.TCPProtocolNumber, true, tcpSegment(8080, 40000, header.TCPFlagSyn|header.TCPFlagAck, 0))
	udpReq := ipv4(pa, pb, 62, header.UDPProtocolNumber, false, udpPayload(5353, 53, 12))
	udpRep := ipv4(pb, pa, 64, header.UDPProtocolNumber, false, udpPayload(53, 5353, 12))
	echoRep := echo(9, 1, 8)
	echoRep[0] = byte(header.ICMPv4EchoReply)
	unreach := make([]byte, 8+len(udpReq))
	unreach[0] = byte(header.ICMPv4DstUnreachable)
	copy(unreach[8:], udpReq)
	f.Add(tcpReq, tcpRep)
	f.Add(udpReq, udpRep)
	f.Add(ipv4(pa, pb, 62, header.ICMPv4ProtocolNumber, false, echo(9, 1, 8)), ipv4(pb, pa, 64, header.ICMPv4ProtocolNumber, false, echoRep))
	f.Add(udpReq, ipv4(pb, pa, 64, header.ICMPv4ProtocolNumber, false, unreach))
	f.Add(udpReq, udpReq)
	f.Add([]byte{0x46}, []byte{})
	f.Fuzz(func(t *testing.T, req, rep []byte) {
		tab := newFlowTable(64, time.Unix(1e9, 0))
		want, wantOK := oracleReplyOf(req)
		k, _, ok := replyKeyOfRequest(req)
		if ok != wantOK {
			t.Fatalf("request %x: tracked %v, oracle %v", req, ok, wantOK)
		}
		if ok {
			tab.record(k, false)
		}
		got, gotOK := oracleFlowOf(rep)
		isReply := false
		if rk, ok := flowOfReply(rep); ok {
			if !gotOK {
				t.Fatalf("reply %x: a flow %s, oracle none", rep, rk)
			}
			isReply = tab.contains(rk)
		} else if gotOK {
			t.Fatalf("reply %x: no flow, oracle %+v", rep, got)
		}
		if should := wantOK && gotOK && got == want; isReply != should {
			t.Fatalf("request %x, reply %x: redirected %v, oracle says %v (%+v vs %+v)", req, rep, isReply, should, want, got)
		}
	})
}
