package testbed

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"
)

// Capture is a running tcpdump writing a pcap file.
type Capture struct {
	proc *Process
	file string
}

// StartCapture runs tcpdump on iface inside ns with a pcap filter expression
// and returns once tcpdump is listening. With count > 0 tcpdump exits after
// that many packets.
func (b *Bed) StartCapture(ns *Netns, iface, filter string, count int) (*Capture, error) {
	c := &Capture{file: b.file("capture.pcap")}
	// -U writes each packet as it arrives; -Z root keeps tcpdump allowed to
	// write into the bed's root-owned directory.
	// --immediate-mode hands each packet to tcpdump at once: otherwise the
	// kernel's capture ring gives it a block at a time (or after a 1 s
	// timeout), and a Stop soon after the traffic loses what is still in
	// the ring.
	args := []string{"tcpdump", "-i", iface, "-nn", "-U", "--immediate-mode", "-Z", "root", "-w", c.file}
	if count > 0 {
		args = append(args, "-c", strconv.Itoa(count))
	}
	if filter != "" {
		args = append(args, filter)
	}
	p, err := b.Start(ns, "tcpdump-"+ns.Name+"-"+iface, args...)
	if err != nil {
		return nil, err
	}
	c.proc = p
	if err := p.waitForLog("listening on", 10*time.Second); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return c, nil
}

// Wait waits up to timeout for tcpdump to capture its count of packets,
// stops it if it has not, and returns the IPv4 packets it captured.
func (c *Capture) Wait(timeout time.Duration) ([]Packet, error) {
	if c.proc.Wait(timeout) != nil {
		c.proc.Stop(5 * time.Second)
	}
	return c.Packets()
}

// Packets decodes what tcpdump has written so far.
func (c *Capture) Packets() ([]Packet, error) {
	f, err := os.Open(c.file)
	if err != nil {
		return nil, fmt.Errorf("testbed: capture: %w; tcpdump log:\n%s", err, c.proc.Log())
	}
	defer f.Close()
	return ReadPcap(f)
}

// Stop stops tcpdump (its pcap file stays readable with Packets).
func (c *Capture) Stop() error { return c.proc.Stop(5 * time.Second) }

var droppedRE = regexp.MustCompile(`(?m)^(\d+) packets? dropped by kernel$`)

// Dropped returns how many packets the kernel dropped before tcpdump could
// take them (its buffer was full), from the count tcpdump prints when it
// stops; -1 if it has not printed one. A capture with drops misses packets
// that were on the wire, so counts taken from it are lower bounds.
func (c *Capture) Dropped() int {
	m := droppedRE.FindAllStringSubmatch(c.proc.Log(), -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}
