package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// IperfOptions tune Iperf. The zero value runs a 3-second TCP test.
type IperfOptions struct {
	// Bytes, when set, is how much to send (-n, e.g. "1G") instead of
	// sending for Duration.
	Bytes    string
	Duration time.Duration // -t; 0 means 3 s
	// Streams, when more than 1, is the number of parallel TCP streams
	// (-P); the result sums them.
	Streams int
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
}

// Iperf runs an iperf3 server bound to serverIP inside server (a one-off
// server, in the foreground as a child process) and an iperf3 TCP client
// inside client, and returns the client's JSON summary.
func (b *Bed) Iperf(client, server *Netns, serverIP netip.Addr, o IperfOptions) (IperfResult, error) {
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	port := strconv.Itoa(iperfPort)
	srv, err := b.Start(server, "iperf3-server-"+server.Name, "iperf3", "-s", "-1", "-B", serverIP.String(), "-p", port)
	if err != nil {
		return IperfResult{}, err
	}
	defer srv.Stop(5 * time.Second)
	if err := waitListening(server, srv, iperfPort, 10*time.Second); err != nil {
		return IperfResult{}, err
	}

	args := []string{"-c", serverIP.String(), "-p", port, "-J", "--connect-timeout", "5000"}
	if o.Streams > 1 {
		args = append(args, "-P", strconv.Itoa(o.Streams))
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
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes         uint64  `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Seconds       float64 `json:"seconds"`
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
	return IperfResult{
		BytesSent:     e.SumSent.Bytes,
		BytesReceived: e.SumReceived.Bytes,
		BitsPerSecond: e.SumReceived.BitsPerSecond,
		Retransmits:   e.SumSent.Retransmits,
		Seconds:       e.SumReceived.Seconds,
	}, nil
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
