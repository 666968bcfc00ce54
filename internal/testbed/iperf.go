package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IperfOptions tune Iperf. The zero value runs a 3-second TCP test.
type IperfOptions struct {
	// Bytes, when set, is how much to send (-n, e.g. "1G") instead of
	// sending for Duration.
	Bytes    string
	Duration time.Duration // -t; 0 means 3 s
	// Streams, when more than 1, is the number of parallel streams (-P)
	// of each client; the result sums them.
	Streams int
	// Clients, when more than 1, is the number of iperf3 client processes
	// run at once, each against its own server (ports 5201, 5202, ...):
	// iperf3 before 3.16 runs all streams of a client in one thread, so
	// this is how a sender uses more than one CPU. The result sums them.
	Clients int
	// UDP sends UDP datagrams (-u) instead of a TCP stream.
	UDP bool
	// Length is the size of each write (-l): the UDP payload with UDP;
	// 0 is iperf3's default.
	Length int
	// Bitrate is the target rate of each stream (-b, e.g. "100M"); "0" is
	// unlimited. Empty is iperf3's default: unlimited for TCP, 1 Mbit/s
	// for UDP.
	Bitrate string
}

// iperfPort is the iperf3 server's port (iperf3's default).
const iperfPort = 5201

// IperfResult is the summary of iperf3's JSON report.
type IperfResult struct {
	BytesSent     uint64  // end.sum_sent.bytes
	BytesReceived uint64  // end.sum_received.bytes: what the receiver got
	BitsPerSecond float64 // end.sum_received.bits_per_second
	Retransmits   int     // end.sum_sent.retransmits
	Seconds       float64 // end.sum_received.seconds
	// UDP only (zero for TCP): the datagrams the client sent
	// (end.sum_sent.packets) and the ones the server received (its
	// highest sequence number, end.sum_received.packets, less the ones it
	// counts as lost, end.sum_received.lost_packets).
	PacketsSent, PacketsReceived uint64
}

// PacketsPerSecond is the rate at which the server received UDP datagrams.
func (r IperfResult) PacketsPerSecond() float64 {
	if r.Seconds == 0 {
		return 0
	}
	return float64(r.PacketsReceived) / r.Seconds
}

// add sums the results of clients run at once; Seconds is the longest.
func (r IperfResult) add(o IperfResult) IperfResult {
	return IperfResult{
		BytesSent:       r.BytesSent + o.BytesSent,
		BytesReceived:   r.BytesReceived + o.BytesReceived,
		BitsPerSecond:   r.BitsPerSecond + o.BitsPerSecond,
		Retransmits:     r.Retransmits + o.Retransmits,
		Seconds:         max(r.Seconds, o.Seconds),
		PacketsSent:     r.PacketsSent + o.PacketsSent,
		PacketsReceived: r.PacketsReceived + o.PacketsReceived,
	}
}

// Iperf runs an iperf3 server bound to serverIP inside server (a one-off
// server, in the foreground as a child process) and an iperf3 client inside
// client (o.Clients of each, at once), and returns the clients' JSON
// summary, summed.
func (b *Bed) Iperf(client, server *Netns, serverIP netip.Addr, o IperfOptions) (IperfResult, error) {
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	n := max(o.Clients, 1)
	results := make([]IperfResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = b.iperf(client, server, serverIP, o, iperfPort+i) })
	}
	wg.Wait()
	var sum IperfResult
	for _, r := range results {
		sum = sum.add(r)
	}
	return sum, errors.Join(errs...)
}

// iperf runs one iperf3 server and client on port.
func (b *Bed) iperf(client, server *Netns, serverIP netip.Addr, o IperfOptions, portNumber int) (IperfResult, error) {
	port := strconv.Itoa(portNumber)
	srv, err := b.Start(server, "iperf3-server-"+server.Name+"-"+port, "iperf3", "-s", "-1", "-B", serverIP.String(), "-p", port)
	if err != nil {
		return IperfResult{}, err
	}
	defer srv.Stop(5 * time.Second)
	if err := waitListening(server, srv, portNumber, 10*time.Second); err != nil {
		return IperfResult{}, err
	}

	args := []string{"-c", serverIP.String(), "-p", port, "-J", "--connect-timeout", "5000"}
	if o.Streams > 1 {
		args = append(args, "-P", strconv.Itoa(o.Streams))
	}
	if o.UDP {
		args = append(args, "-u")
	}
	if o.Length > 0 {
		args = append(args, "-l", strconv.Itoa(o.Length))
	}
	if o.Bitrate != "" {
		args = append(args, "-b", o.Bitrate)
	}
	timeout := o.Duration + 30*time.Second
	if o.Bytes != "" {
		args = append(args, "-n", o.Bytes)
		timeout = 10 * time.Minute
	} else {
		args = append(args, "-t", fmt.Sprintf("%.0f", o.Duration.Seconds()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, runErr := client.Command(ctx, "iperf3", args...).Output()
	res, err := ParseIperf(out)
	if err != nil {
		return res, fmt.Errorf("testbed: %s: iperf3 %s: %v (exit: %v); server log:\n%s", client.Name, strings.Join(args, " "), err, runErr, srv.Log())
	}
	return res, nil
}

// waitListening polls ss inside ns until a TCP socket listens on port.
func waitListening(ns *Netns, p *Process, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := ns.Run("ss", "-Hltn", "sport", "=", ":"+strconv.Itoa(port))
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("testbed: %s exited (%v) before listening; log:\n%s", p.Name, err, p.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testbed: %s not listening on port %d after %v; log:\n%s", p.Name, port, timeout, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ParseIperf parses iperf3's -J report.
func ParseIperf(out []byte) (IperfResult, error) {
	var report struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Bytes       uint64 `json:"bytes"`
				Retransmits int    `json:"retransmits"`
				Packets     uint64 `json:"packets"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes         uint64  `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Seconds       float64 `json:"seconds"`
				Packets       uint64  `json:"packets"`
				LostPackets   uint64  `json:"lost_packets"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		return IperfResult{}, fmt.Errorf("cannot parse iperf3 JSON: %w: %.500s", err, out)
	}
	if report.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", report.Error)
	}
	e := report.End
	r := IperfResult{
		BytesSent:     e.SumSent.Bytes,
		BytesReceived: e.SumReceived.Bytes,
		BitsPerSecond: e.SumReceived.BitsPerSecond,
		Retransmits:   e.SumSent.Retransmits,
		Seconds:       e.SumReceived.Seconds,
		PacketsSent:   e.SumSent.Packets,
	}
	if e.SumReceived.Packets < e.SumReceived.LostPackets {
		return r, fmt.Errorf("iperf3 server counts %d datagrams lost of %d", e.SumReceived.LostPackets, e.SumReceived.Packets)
	}
	r.PacketsReceived = e.SumReceived.Packets - e.SumReceived.LostPackets
	return r, nil
}

// InFlightAllowance is how much of a fixed-size transfer iperf3's receiver
// may leave uncounted. The sender ends the test on the control connection as
// soon as it has written its last byte, and the receiver stops counting when
// that message arrives, so what is still in socket buffers or on the path is
// missing from sum_received (https://github.com/esnet/iperf/issues/382).
// Linux's default TCP buffers (tcp_wmem up to 4 MiB, tcp_rmem up to 6 MiB)
// bound that.
const InFlightAllowance = 16 << 20

// CheckTransfer checks the result of a transfer of want bytes (IperfOptions
// Bytes): the sender wrote all of it and the receiver counted all of it but
// at most InFlightAllowance.
func (r IperfResult) CheckTransfer(want uint64) error {
	if r.BytesSent < want {
		return fmt.Errorf("iperf3 sent %d bytes, want %d", r.BytesSent, want)
	}
	if r.BytesReceived+InFlightAllowance < want {
		return fmt.Errorf("iperf3 receiver counted %d of %d bytes sent: more missing than can have been in flight (%d)",
			r.BytesReceived, r.BytesSent, InFlightAllowance)
	}
	return nil
}
