package testbed

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// The samples are real output of iputils 20221126, traceroute 2.1.2 and
// iperf 3.12.

func TestParsePing(t *testing.T) {
	r, err := ParsePing(`PING 10.244.1.5 (10.244.1.5) 56(84) bytes of data.
64 bytes from 10.244.1.5: icmp_seq=1 ttl=62 time=0.292 ms
64 bytes from 10.244.1.5: icmp_seq=2 ttl=62 time=0.099 ms

--- 10.244.1.5 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 406ms
rtt min/avg/max/mdev = 0.094/0.161/0.292/0.092 ms
`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Transmitted != 3 || r.Received != 2 || r.LossPercent != 33.3333 || r.RTTAvg != 161*time.Microsecond || !slices.Equal(r.TTLs, []int{62, 62}) {
		t.Errorf("parsed %+v", r)
	}
	if ttl, err := r.TTL(); ttl != 62 || err != nil {
		t.Errorf("TTL() = %d, %v; want 62", ttl, err)
	}
	if !slices.Equal(r.Seqs, []int{1, 2}) || r.LongestLoss() != 1 {
		t.Errorf("Seqs %v, LongestLoss() %d; want [1 2] and 1 (echo 3 lost)", r.Seqs, r.LongestLoss())
	}
	if want := []time.Duration{292 * time.Microsecond, 99 * time.Microsecond}; !slices.Equal(r.RTTs, want) {
		t.Errorf("RTTs %v, want %v", r.RTTs, want)
	}

	// Echoes 2, 3 and 5 lost: the longest loss is 2, though 3 were lost.
	r, err = ParsePing(`PING 10.244.1.5 (10.244.1.5) 56(84) bytes of data.
64 bytes from 10.244.1.5: icmp_seq=1 ttl=62 time=0.292 ms
64 bytes from 10.244.1.5: icmp_seq=4 ttl=62 time=0.099 ms
64 bytes from 10.244.1.5: icmp_seq=6 ttl=62 time=0.099 ms

--- 10.244.1.5 ping statistics ---
6 packets transmitted, 3 received, 50% packet loss, time 506ms
rtt min/avg/max/mdev = 0.094/0.161/0.292/0.092 ms
`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Seqs, []int{1, 4, 6}) || r.LongestLoss() != 2 {
		t.Errorf("Seqs %v, LongestLoss() %d; want [1 4 6] and 2", r.Seqs, r.LongestLoss())
	}

	r, err = ParsePing(`PING 10.244.0.77 (10.244.0.77) 56(84) bytes of data.
From 10.244.0.1 icmp_seq=1 Destination Host Unreachable
From 10.244.0.1 icmp_seq=2 Destination Host Unreachable

--- 10.244.0.77 ping statistics ---
3 packets transmitted, 0 received, +2 errors, 100% packet loss, time 405ms
`)
	if err != nil {
		t.Fatal(err)
	}
	if r.Received != 0 || r.Errors != 2 || r.LossPercent != 100 || len(r.ICMPErrors) != 2 ||
		r.ICMPErrors[0] != "From 10.244.0.1 icmp_seq=1 Destination Host Unreachable" {
		t.Errorf("parsed %+v", r)
	}
	if _, err := r.TTL(); err == nil {
		t.Error("TTL() of a ping without replies is not an error")
	}
	if _, err := ParsePing("ping: connect: Network is unreachable\n"); err == nil {
		t.Error("output without statistics parsed")
	}
}

func TestParseTraceroute(t *testing.T) {
	hops, err := ParseTraceroute(`traceroute to 10.244.1.77 (10.244.1.77), 4 hops max, 60 byte packets
 1  *
 2  10.244.1.0  0.157 ms !N
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{{}, netip.MustParseAddr("10.244.1.0")}; !slices.Equal(hops, want) {
		t.Errorf("hops %v, want %v", hops, want)
	}
	if _, err := ParseTraceroute("traceroute to x (x), 4 hops max\n 2  10.0.0.1  1 ms\n"); err == nil {
		t.Error("hop list starting at 2 parsed")
	}
}

func TestParseTracepath(t *testing.T) {
	r, err := ParseTracepath(` 1?: [LOCALHOST]                      pmtu 1500
 1:  10.244.0.1                                            0.138ms 
 1:  10.244.0.1                                            0.011ms 
 2:  10.244.0.1                                            0.013ms pmtu 1450
 2:  10.244.1.0                                            0.081ms 
 3:  10.244.1.5                                            0.069ms reached
     Resume: pmtu 1450 hops 3 back 3 
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("10.244.1.0"), netip.MustParseAddr("10.244.1.5")}
	if r.PMTU != 1450 || !slices.Equal(r.Hops, want) {
		t.Errorf("pmtu %d hops %v, want 1450 %v", r.PMTU, r.Hops, want)
	}
	if _, err := ParseTracepath(" 1?: [LOCALHOST] pmtu 1500\n 1:  no reply\n"); err == nil {
		t.Error("output without a final pmtu parsed")
	}
}

func TestRTTPercentile(t *testing.T) {
	var r PingResult
	if got := r.RTTPercentile(50); got != 0 {
		t.Errorf("RTTPercentile(50) without replies = %v, want 0", got)
	}
	// 1..100 µs in reverse order: the p-th percentile is p µs.
	for i := 100; i >= 1; i-- {
		r.RTTs = append(r.RTTs, time.Duration(i)*time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Microsecond}, {99, 99 * time.Microsecond}, {99.5, 100 * time.Microsecond}, {100, 100 * time.Microsecond}, {0.1, time.Microsecond}} {
		if got := r.RTTPercentile(c.p); got != c.want {
			t.Errorf("RTTPercentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	// Three replies: p50 is the 2nd, p99 the 3rd.
	r.RTTs = []time.Duration{300, 100, 200}
	if p50, p99 := r.RTTPercentile(50), r.RTTPercentile(99); p50 != 200 || p99 != 300 {
		t.Errorf("p50, p99 of [300 100 200] = %v, %v; want 200ns, 300ns", p50, p99)
	}
}

func TestParseIperf(t *testing.T) {
	r, err := ParseIperf([]byte(`{"start":{},"intervals":[],"end":{
		"sum_sent":{"bytes":1073741824,"retransmits":12,"bits_per_second":9.5e9},
		"sum_received":{"bytes":1073741824,"seconds":0.9,"bits_per_second":9.4e9}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.BytesSent != 1<<30 || r.BytesReceived != 1<<30 || r.Retransmits != 12 || r.BitsPerSecond != 9.4e9 || r.Seconds != 0.9 {
		t.Errorf("parsed %+v", r)
	}
	// UDP, from a real iperf 3.12 report: the server's packets are its
	// highest sequence number, less the lost ones.
	r, err = ParseIperf([]byte(`{"end":{
		"sum_sent":{"start":0,"end":1.030322,"seconds":1.030322,"bytes":6874240,"bits_per_second":53375469.02812907,"jitter_ms":0,"lost_packets":0,"packets":107410,"lost_percent":0,"sender":true},
		"sum_received":{"start":0,"end":1.033861,"seconds":1.033861,"bytes":3357824,"bits_per_second":25982788.78882171,"jitter_ms":0.0014711392901448,"lost_packets":53447,"packets":105913,"lost_percent":49.75979890140583,"sender":false}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.PacketsSent != 107410 || r.PacketsReceived != 3357824/64 || r.Seconds != 1.033861 {
		t.Errorf("parsed %+v; want 107410 datagrams sent, %d received", r, 3357824/64)
	}
	if pps := r.PacketsPerSecond(); pps != 52466/1.033861 {
		t.Errorf("PacketsPerSecond() = %v, want %v", pps, 52466/1.033861)
	}
	if _, err := ParseIperf([]byte(`{"end":{"sum_received":{"packets":5,"lost_packets":6}}}`)); err == nil {
		t.Error("more datagrams lost than the highest sequence number parsed")
	}
	if _, err := ParseIperf([]byte(`{"start":{},"error":"unable to connect to server: Connection refused"}`)); err == nil {
		t.Error("iperf3 error report parsed as success")
	}
}

func TestReadPcap(t *testing.T) {
	inner := ICMPEcho(netip.MustParseAddr("10.244.0.4"), netip.MustParseAddr("10.244.1.5"), 63, 1, 2)
	tun := append([]byte(nil), inner...) // a TUN capture holds bare IPv4
	var file bytes.Buffer
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint32(hdr[20:], linkTypeRaw)
	file.Write(hdr)
	rec := make([]byte, 16)
	binary.LittleEndian.PutUint32(rec[8:], uint32(len(tun)))
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(tun)))
	file.Write(rec)
	file.Write(tun)
	packets, err := ReadPcap(&file)
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 1 {
		t.Fatalf("%d packets, want 1", len(packets))
	}
	p := packets[0]
	if p.Src.String() != "10.244.0.4" || p.Dst.String() != "10.244.1.5" || p.TTL != 63 || p.Protocol != 1 || p.ICMPType != 8 || !p.DontFragment || p.Length != len(inner) {
		t.Errorf("decoded %+v", p)
	}
	if _, err := ReadPcap(bytes.NewReader(make([]byte, 24))); err == nil {
		t.Error("zero header accepted as pcap")
	}
}

func TestCheckTransfer(t *testing.T) {
	const want = 1 << 30
	for _, tc := range []struct {
		r  IperfResult
		ok bool
	}{
		{IperfResult{BytesSent: want, BytesReceived: want}, true},
		{IperfResult{BytesSent: want, BytesReceived: want - 3<<20}, true}, // in flight at the end
		{IperfResult{BytesSent: want, BytesReceived: want - 64<<20}, false},
		{IperfResult{BytesSent: want - 1, BytesReceived: want - 1}, false},
	} {
		if err := tc.r.CheckTransfer(want); (err == nil) != tc.ok {
			t.Errorf("CheckTransfer(%+v) = %v, want ok %v", tc.r, err, tc.ok)
		}
	}
}
