package router

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Options for the fragmentation tests: Stream ID (copied), Record Route
// (not copied), Timestamp (not copied), a NOP and the end of the list.
var (
	optStreamID  = []byte{0x88, 4, 0x12, 0x34}
	optRecRoute  = []byte{7, 7, 4, 0, 0, 0, 0}
	optTimestamp = []byte{68, 8, 5, 0, 0, 0, 0, 0}
	testOptions  = bytes.Join([][]byte{optStreamID, optRecRoute, {1}, optTimestamp, {0, 0, 0, 0}}, nil) // 24 bytes
	// What a fragment after the first carries: the copied option, NOPs.
	copiedOptions = bytes.Join([][]byte{optStreamID, bytes.Repeat([]byte{1}, 7+1+8), {0, 0, 0, 0}}, nil)
)

// ipv4Opts builds an IPv4 packet with options and a fragment offset (bytes).
func ipv4Opts(src, dst netip.Addr, opts []byte, more bool, offset uint16, payload []byte) []byte {
	hlen := header.IPv4MinimumSize + len(opts)
	b := make([]byte, hlen+len(payload))
	h := header.IPv4(b)
	var flags uint8
	if more {
		flags = header.IPv4FlagMoreFragments
	}
	h.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), ID: 0x4242, Flags: flags, FragmentOffset: offset, TTL: 64,
		Protocol: uint8(header.UDPProtocolNumber), SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4()),
		Options: header.IPv4OptionsSerializer{}})
	b[0] = 0x40 | byte(hlen/4)
	copy(b[header.IPv4MinimumSize:], opts)
	h.SetChecksum(0)
	h.SetChecksum(^h.CalculateChecksum())
	copy(b[hlen:], payload)
	return b
}

// The router fragments a packet too big for the tunnel: every fragment is
// checked (offset, MF, length, options, ID, TTL, checksum), and together they
// are the original payload.
func TestFragmentsInspected(t *testing.T) {
	n := newSyncNode(t, Config{}, 9000)
	pa := n.pods[0]
	dst := netip.MustParseAddr("10.244.1.5")
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	const hlen = 20 + 24
	step := (1450 - hlen) &^ 7 // 1400
	for _, tc := range []struct {
		name     string
		more     bool   // the packet is itself a fragment, not the last
		offset   uint16 // its offset, bytes
		firstOpt []byte // options of the first fragment made
	}{
		{"whole packet", false, 0, testOptions},
		{"a first fragment", true, 0, testOptions},
		{"a middle fragment", true, 8 * 100, copiedOptions},
		{"a last fragment", false, 8 * 100, copiedOptions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.r.Stats()
			n.fromPod(0, ipv4Opts(pa.ip, dst, testOptions, tc.more, tc.offset, payload))
			out := n.conn.take()
			if len(out) != 3 {
				t.Fatalf("%d fragments, want 3", len(out))
			}
			wantDelta(t, n.r, before, map[string]uint64{"fragments_sent": 3, "forwarded": 3,
				"tunnel_tx_packets": 3, "tunnel_tx_bytes": uint64(3*hlen + len(payload))})
			var got []byte
			for i, d := range out {
				if d.Addr.Addr() != node2 {
					t.Errorf("fragment %d to %s", i, d.Addr)
				}
				f := header.IPv4(d.Data)
				if !f.IsValid(len(f)) || !f.IsChecksumValid() || int(f.TotalLength()) != len(f) || len(f) > 1450 {
					t.Fatalf("fragment %d: invalid header, checksum or length %d: %x", i, len(f), []byte(f[:hlen]))
				}
				wantLen := hlen + step
				if i == 2 {
					wantLen = hlen + len(payload) - 2*step
				}
				wantMore := i < 2 || tc.more
				wantOpts := copiedOptions
				if i == 0 {
					wantOpts = tc.firstOpt
				}
				if len(f) != wantLen || f.More() != wantMore || f.FragmentOffset() != tc.offset+uint16(i*step) ||
					f.ID() != 0x4242 || f.TTL() != 63 || f.Flags()&header.IPv4FlagDontFragment != 0 {
					t.Errorf("fragment %d: length %d MF %v offset %d ID %#x TTL %d, want %d %v %d 0x4242 63",
						i, len(f), f.More(), f.FragmentOffset(), f.ID(), f.TTL(), wantLen, wantMore, tc.offset+uint16(i*step))
				}
				if opts := []byte(f[20:f.HeaderLength()]); !bytes.Equal(opts, wantOpts) {
					t.Errorf("fragment %d options %x, want %x", i, opts, wantOpts)
				}
				got = append(got, f.Payload()...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatal("the fragments' payloads are not the packet's")
			}
		})
	}
}

func TestCopiedOptionsOnly(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{testOptions, copiedOptions},
		{[]byte{0x83, 7, 4, 1, 2, 3, 4, 0}, []byte{0x83, 7, 4, 1, 2, 3, 4, 0}}, // loose source route: copied
		{[]byte{7, 3, 4, 0}, []byte{1, 1, 1, 0}},
		{[]byte{0x88, 9, 0, 0}, []byte{0, 0, 0, 0}}, // length beyond the header: the list ends
		{[]byte{0x88, 1, 0, 0}, []byte{0, 0, 0, 0}}, // length < 2
		{[]byte{1, 1, 1, 0x88}, []byte{1, 1, 1, 0}}, // type without a length
		{[]byte{0, 7, 3, 4}, []byte{0, 7, 3, 4}},    // after the end, nothing is read
	} {
		got := append([]byte(nil), tc.in...)
		copiedOptionsOnly(got)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("copiedOptionsOnly(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}
