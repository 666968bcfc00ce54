package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// UnderlayPrefix is the underlay subnet the nodes share.
var UnderlayPrefix = netip.MustParsePrefix("192.168.49.0/24")

// UnderlayMTU is the MTU of every node's eth0.
const UnderlayMTU = 1500

// bridgeName is the underlay bridge inside the switch namespace.
const bridgeName = "br0"

// beds numbers the beds of this process so that their names differ.
var beds atomic.Uint32

// Bed is one test topology and everything it owns. Its methods are safe for
// concurrent use.
type Bed struct {
	// Taprouterd is the daemon binary StartDaemon runs.
	Taprouterd string

	prefix string // "tr<pid>x<n>", unique per bed
	dir    string // configs, logs and sockets
	sw     *Netns // the switch namespace holding the underlay bridge

	mu         sync.Mutex
	namespaces []*Netns
	procs      []*Process
	files      int // numbers the files in dir
	closed     bool
	// inflight counts the AddNetns and Start calls under way, which
	// Close waits for before it looks at what there is to remove.
	inflight sync.WaitGroup
	// closeDone is closed when the first Close has removed everything;
	// a later Close waits for it.
	closeDone chan struct{}
}

// New creates a bed with its underlay switch. taprouterd is the daemon binary
// for StartDaemon; it may be empty when the bed only runs kernel topologies.
// The caller must Close the bed, also when a test fails or panics.
func New(taprouterd string) (*Bed, error) {
	b := &Bed{
		closeDone:  make(chan struct{}),
		Taprouterd: taprouterd,
		prefix:     fmt.Sprintf("tr%dx%d", os.Getpid(), beds.Add(1)),
	}
	if err := register(b); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", b.prefix+"-")
	if err != nil {
		unregister(b)
		return nil, fmt.Errorf("testbed: %w", err)
	}
	b.dir = dir
	if b.sw, err = b.AddNetns("sw"); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := b.sw.IP("link", "add", bridgeName, "type", "bridge"); err != nil {
		b.Close()
		return nil, err
	}
	if _, err := b.sw.IP("link", "set", bridgeName, "up"); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

var errClosed = errors.New("testbed: bed is closed")

// enter counts an AddNetns or Start in, unless the bed is closed; the
// caller calls b.inflight.Done when it has recorded what it made.
func (b *Bed) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.inflight.Add(1)
	return true
}

// Prefix is the bed's unique name prefix; every namespace it creates starts
// with it.
func (b *Bed) Prefix() string { return b.prefix }

// Dir is the bed's private directory, removed by Close.
func (b *Bed) Dir() string { return b.dir }

// AddNetns creates a namespace named <prefix>-<role> with lo up and IPv6
// disabled (so that no router solicitations or MLD reports add noise to
// captures and counters).
func (b *Bed) AddNetns(role string) (*Netns, error) {
	n := &Netns{Name: b.prefix + "-" + role}
	if !b.enter() {
		return nil, errClosed
	}
	defer b.inflight.Done()
	if _, err := run("ip", "netns", "add", n.Name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.namespaces = append(b.namespaces, n)
	b.mu.Unlock()
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
		if err := n.Sysctl(key, "1"); err != nil {
			return nil, err
		}
	}
	if _, err := n.IP("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return n, nil
}

// Node is a Kubernetes node: a namespace whose eth0 is on the underlay.
type Node struct {
	*Netns
	// Name is the node's name, as in taprouterd's config.
	Name string
	// Addr is eth0's address on the underlay.
	Addr netip.Addr
}

// AddNode creates a node namespace and plugs its eth0 (addr/24, MTU 1500)
// into the underlay bridge.
func (b *Bed) AddNode(name string, addr netip.Addr) (*Node, error) {
	if !UnderlayPrefix.Contains(addr) {
		return nil, fmt.Errorf("testbed: node %s: address %s is outside the underlay %s", name, addr, UnderlayPrefix)
	}
	swPort := "sw-" + name
	if len(swPort) > 15 {
		return nil, fmt.Errorf("testbed: node name %q is longer than 12 characters", name)
	}
	ns, err := b.AddNetns(name)
	if err != nil {
		return nil, err
	}
	n := &Node{Netns: ns, Name: name, Addr: addr}
	steps := [][]string{
		{"-n", b.sw.Name, "link", "add", swPort, "mtu", fmt.Sprint(UnderlayMTU), "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
		{"-n", b.sw.Name, "link", "set", swPort, "master", bridgeName, "up"},
		{"-n", ns.Name, "link", "set", "eth0", "mtu", fmt.Sprint(UnderlayMTU), "up"},
		{"-n", ns.Name, "addr", "add", netip.PrefixFrom(addr, UnderlayPrefix.Bits()).String(), "dev", "eth0"},
	}
	for _, s := range steps {
		if _, err := run("ip", s...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// CompleteChecksums turns TX checksum offload off on the node's eth0, so
// that the kernel completes every TCP/UDP checksum, also the inner one of a
// kernel vxlan packet, before a packet leaves the node, as a physical NIC
// does on the wire. A veth left to its defaults passes packets on with the
// checksum still to be computed (CHECKSUM_PARTIAL); the kernel on the other
// end accepts that, but a userspace tunnel endpoint reading a UDP socket gets
// the incomplete inner checksum, forwards it, and the receiving pod drops
// the packet. Offloads stay on otherwise: the kernel references keep their
// TSO/GRO fast path, as a real NIC would give them.
func (n *Node) CompleteChecksums() error {
	_, err := n.Run("ethtool", "-K", "eth0", "tx", "off")
	return err
}

// AddUnderlayHost creates a namespace on the underlay that is not a node, for
// example to send datagrams from an address no node knows.
func (b *Bed) AddUnderlayHost(role string, addr netip.Addr) (*Netns, error) {
	n, err := b.AddNode(role, addr)
	if err != nil {
		return nil, err
	}
	return n.Netns, nil
}

// file returns a new path in the bed's directory: <dir>/<n>-<name>.
func (b *Bed) file(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.files++
	return fmt.Sprintf("%s/%d-%s", b.dir, b.files, name)
}

// Close kills every process the bed started, then deletes its namespaces and
// its directory. It is idempotent.
// DeleteNetns deletes a namespace of the bed before Close, as when a pod
// goes away under a daemon.
func (b *Bed) DeleteNetns(n *Netns) error {
	b.mu.Lock()
	b.namespaces = slices.DeleteFunc(b.namespaces, func(m *Netns) bool { return m == n })
	b.mu.Unlock()
	return n.delete()
}

func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		// Another Close (a signal's, see CloseOnSignal) is removing it:
		// return when it is gone, as the first Close does.
		<-b.closeDone
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	defer close(b.closeDone)
	defer unregister(b)
	// What is being added now is removed with the rest (a signal closes
	// a bed while its program builds it, see CloseOnSignal).
	b.inflight.Wait()
	b.mu.Lock()
	procs, namespaces := b.procs, b.namespaces
	b.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(5 * time.Second)
		}()
	}
	wg.Wait()
	for i := len(namespaces) - 1; i >= 0; i-- {
		if err := namespaces[i].delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.dir != "" {
		if err := os.RemoveAll(b.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Logs returns the log of every process the bed started, each under a
// header line, for dumping when a test fails.
func (b *Bed) Logs() string {
	b.mu.Lock()
	procs := b.procs
	b.mu.Unlock()
	var s strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&s, "----- %s (%s) -----\n%s", p.Name, strings.Join(p.args, " "), p.Log())
	}
	return s.String()
}
