package testbed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// PingOptions tune Ping. The zero value sends 3 echoes 200 ms apart.
type PingOptions struct {
	Count    int           // echoes to send; 0 means 3
	Interval time.Duration // between echoes; 0 means 200 ms
	Source   netip.Addr    // -I: the source address; zero for the route's
	// Deadline, if set, is ping's -w: it then waits up to Deadline in all
	// for Count replies instead of giving up on the last echo after twice
	// the largest RTT seen, which loses a late reply on a loaded machine.
	Deadline time.Duration
}

// PingResult is what ping printed.
type PingResult struct {
	Transmitted, Received int
	Errors                int     // "+N errors": ICMP errors instead of replies
	LossPercent           float64 // as ping computes it
	RTTAvg                time.Duration
	// RTTs are the round-trip times of the echo replies ("time=0.123 ms"),
	// in the order they came.
	RTTs       []time.Duration
	TTLs       []int    // the TTL of each echo reply
	Seqs       []int    // the icmp_seq of each echo reply, as they came
	ICMPErrors []string // "From <addr> icmp_seq=N <message>" lines
	Output     string
}

// Ping runs ping inside ns and parses its report. A ping that loses packets
// is not an error; only a ping that could not run is.
func (n *Netns) Ping(dst netip.Addr, o PingOptions) (PingResult, error) {
	if o.Count == 0 {
		o.Count = 3
	}
	if o.Interval == 0 {
		o.Interval = 200 * time.Millisecond
	}
	args := []string{"-n", "-c", strconv.Itoa(o.Count), "-i", fmt.Sprintf("%.3f", o.Interval.Seconds()), "-W", "1"}
	if o.Source.IsValid() {
		args = append(args, "-I", o.Source.String())
	}
	if o.Deadline > 0 {
		args = append(args, "-w", strconv.Itoa(int((o.Deadline+time.Second-1)/time.Second)))
	}
	args = append(args, dst.String())
	timeout := time.Duration(o.Count)*o.Interval + o.Deadline + 10*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := n.Command(ctx, "ping", args...).CombinedOutput()
	// ping exits 1 when replies are missing; its report is still complete.
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return PingResult{Output: string(out)}, fmt.Errorf("testbed: %s: ping %s: %w: %s", n.Name, dst, err, out)
	}
	return ParsePing(string(out))
}

var (
	pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received,(?: \+(\d+) errors,)?(?: \+\d+ duplicates,)? ([\d.]+)% packet loss`)
	pingRTT   = regexp.MustCompile(`rtt min/avg/max/mdev = [\d.]+/([\d.]+)/`)
	pingTTL   = regexp.MustCompile(`^\d+ bytes from .*\bttl=(\d+)\b`)
	pingSeq   = regexp.MustCompile(`^\d+ bytes from .*\bicmp_seq=(\d+)\b`)
	pingTime  = regexp.MustCompile(`^\d+ bytes from .*\btime=([\d.]+) ms\b`)
	pingError = regexp.MustCompile(`^From \S+ icmp_seq=\d+ .+`)
)

// ParsePing parses iputils ping's output.
func ParsePing(out string) (PingResult, error) {
	r := PingResult{Output: out}
	m := pingStats.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("testbed: no statistics in ping output:\n%s", out)
	}
	r.Transmitted, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		r.Errors, _ = strconv.Atoi(m[3])
	}
	r.LossPercent, _ = strconv.ParseFloat(m[4], 64)
	if m := pingRTT.FindStringSubmatch(out); m != nil {
		ms, _ := strconv.ParseFloat(m[1], 64)
		r.RTTAvg = time.Duration(ms * float64(time.Millisecond))
	}
	for _, line := range strings.Split(out, "\n") {
		if m := pingTTL.FindStringSubmatch(line); m != nil {
			ttl, _ := strconv.Atoi(m[1])
			r.TTLs = append(r.TTLs, ttl)
		}
		if m := pingSeq.FindStringSubmatch(line); m != nil {
			seq, _ := strconv.Atoi(m[1])
			r.Seqs = append(r.Seqs, seq)
		}
		if m := pingTime.FindStringSubmatch(line); m != nil {
			ms, _ := strconv.ParseFloat(m[1], 64)
			r.RTTs = append(r.RTTs, time.Duration(math.Round(ms*float64(time.Millisecond))))
		}
		if pingError.MatchString(line) {
			r.ICMPErrors = append(r.ICMPErrors, line)
		}
	}
	return r, nil
}

// TTL returns the TTL all replies carried, or an error when there were no
// replies or they differ.
func (r PingResult) TTL() (int, error) {
	if len(r.TTLs) == 0 {
		return 0, errors.New("testbed: no echo replies")
	}
	for _, t := range r.TTLs[1:] {
		if t != r.TTLs[0] {
			return 0, fmt.Errorf("testbed: replies carry different TTLs %v", r.TTLs)
		}
	}
	return r.TTLs[0], nil
}

// RTTPercentile returns the p-th percentile (0 < p ≤ 100) of the replies'
// RTTs by the nearest-rank method: the smallest RTT that at least p percent
// of the replies do not exceed. It returns 0 when there were no replies.
func (r PingResult) RTTPercentile(p float64) time.Duration {
	if len(r.RTTs) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(r.RTTs))
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// LongestLoss returns the longest run of consecutive echo requests (by
// icmp_seq, which counts from 1) that got no reply: with the interval, how
// long the path was down, where Transmitted-Received also counts echoes
// lost one here and one there.
func (r PingResult) LongestLoss() int {
	replied := make(map[int]bool, len(r.Seqs))
	for _, s := range r.Seqs {
		replied[s] = true
	}
	longest, run := 0, 0
	for seq := 1; seq <= r.Transmitted; seq++ {
		if replied[seq] {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return longest
}
