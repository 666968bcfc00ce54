package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Traceroute runs "traceroute -n" (UDP probes, one per hop) inside ns and
// returns the address that answered each hop; a hop nobody answered is the
// zero Addr.
func (n *Netns) Traceroute(dst netip.Addr, maxHops int) ([]netip.Addr, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(maxHops)*3*time.Second+10*time.Second)
	defer cancel()
	out, err := output(n.Command(ctx, "traceroute", "-n", "-q", "1", "-w", "2", "-N", "1", "-m", strconv.Itoa(maxHops), dst.String()))
	if err != nil {
		return nil, out, err
	}
	hops, err := ParseTraceroute(out)
	return hops, out, err
}

var tracerouteHop = regexp.MustCompile(`^\s*(\d+)\s+(\S+)`)

// ParseTraceroute parses the hop lines of "traceroute -n -q 1".
func ParseTraceroute(out string) ([]netip.Addr, error) {
	var hops []netip.Addr
	for _, line := range strings.Split(out, "\n") {
		m := tracerouteHop.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != len(hops)+1 {
			return nil, fmt.Errorf("testbed: traceroute hop %s out of order in:\n%s", m[1], out)
		}
		if m[2] == "*" {
			hops = append(hops, netip.Addr{})
			continue
		}
		a, err := netip.ParseAddr(m[2])
		if err != nil {
			return nil, fmt.Errorf("testbed: traceroute hop %s: %q is not an address in:\n%s", m[1], m[2], out)
		}
		hops = append(hops, a)
	}
	if len(hops) == 0 {
		return nil, fmt.Errorf("testbed: no hops in traceroute output:\n%s", out)
	}
	return hops, nil
}

// TracepathResult is what tracepath found.
type TracepathResult struct {
	// PMTU is the path MTU tracepath settled on.
	PMTU int
	// Hops is the address of each hop that answered, in order.
	Hops   []netip.Addr
	Output string
}

// Tracepath runs "tracepath -n" inside ns.
func (n *Netns) Tracepath(dst netip.Addr, maxHops int) (TracepathResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(maxHops)*5*time.Second+10*time.Second)
	defer cancel()
	out, err := output(n.Command(ctx, "tracepath", "-n", "-m", strconv.Itoa(maxHops), dst.String()))
	if err != nil {
		return TracepathResult{Output: out}, err
	}
	return ParseTracepath(out)
}

var (
	tracepathResume = regexp.MustCompile(`(?:Resume|Too many hops): pmtu (\d+)`)
	tracepathHop    = regexp.MustCompile(`^\s*\d+:\s+(\d+\.\d+\.\d+\.\d+)\s`)
)

// ParseTracepath parses tracepath -n's output.
func ParseTracepath(out string) (TracepathResult, error) {
	r := TracepathResult{Output: out}
	m := tracepathResume.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("testbed: no final pmtu in tracepath output:\n%s", out)
	}
	r.PMTU, _ = strconv.Atoi(m[1])
	for _, line := range strings.Split(out, "\n") {
		if m := tracepathHop.FindStringSubmatch(line); m != nil {
			a, err := netip.ParseAddr(m[1])
			if err != nil {
				return r, fmt.Errorf("testbed: tracepath hop %q is not an address", m[1])
			}
			if len(r.Hops) == 0 || r.Hops[len(r.Hops)-1] != a {
				r.Hops = append(r.Hops, a)
			}
		}
	}
	return r, nil
}
