package masq

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/taprouter/taprouter/podnet/netnstest"
)

var cluster = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.250.0.0/16")}

// newNS is a namespace with iptables; every call of the package under test
// runs inside it (ns.Do), never in the machine's own namespace.
func newNS(t *testing.T) *netnstest.NS {
	t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (make deps installs it)")
	}
	return netnstest.New(t, "masq")
}

func newRules(t *testing.T, ns *netnstest.NS) *Rules {
	t.Helper()
	var r *Rules
	var err error
	ns.Do(func() { r, err = New(cluster, nil) })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ensure(t *testing.T, ns *netnstest.NS, r *Rules, wantChanged bool) {
	t.Helper()
	var changed bool
	var err error
	ns.Do(func() { changed, err = r.Ensure() })
	if err != nil {
		t.Fatal(err)
	}
	if changed != wantChanged {
		t.Fatalf("Ensure changed %v, want %v; rules now:\n%s", changed, wantChanged, natRules(t, ns))
	}
}

// natRules is the nat table as iptables -S prints it, the lines that
// concern taprouter.
func natRules(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	out := ns.MustExec("iptables", "-w", "-t", "nat", "-S")
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, Chain) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func wantRules(t *testing.T, ns *netnstest.NS, r *Rules) {
	t.Helper()
	rf := ""
	if r.ipt.HasRandomFully() {
		rf = " --random-fully"
	}
	want := strings.Join([]string{
		"-N TAPROUTER-MASQ",
		`-A POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment "taprouter: traffic from pods to non-local destinations goes through TAPROUTER-MASQ" -j TAPROUTER-MASQ`,
		`-A TAPROUTER-MASQ -d 10.244.0.0/16 -m comment --comment "taprouter: traffic to the pods of the cluster is not masqueraded" -j RETURN`,
		`-A TAPROUTER-MASQ -d 10.250.0.0/16 -m comment --comment "taprouter: traffic to the pods of the cluster is not masqueraded" -j RETURN`,
		`-A TAPROUTER-MASQ -s 10.244.0.0/16 -m comment --comment "taprouter: traffic from pods leaving the cluster is masqueraded (must be last)" -j MASQUERADE` + rf,
		`-A TAPROUTER-MASQ -s 10.250.0.0/16 -m comment --comment "taprouter: traffic from pods leaving the cluster is masqueraded (must be last)" -j MASQUERADE` + rf,
	}, "\n")
	if got := natRules(t, ns); got != want {
		t.Fatalf("nat rules:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnsureIdempotentAndRepairs(t *testing.T) {
	ns := newNS(t)
	r := newRules(t, ns)
	ensure(t, ns, r, true)
	wantRules(t, ns, r)
	ensure(t, ns, r, false) // nothing to do
	wantRules(t, ns, r)

	// A deleted RETURN rule comes back, in its place.
	ns.MustExec("iptables", "-w", "-t", "nat", "-D", Chain, "1")
	ensure(t, ns, r, true)
	wantRules(t, ns, r)
	// A foreign rule in the chain, or rules out of order, are rewritten.
	ns.MustExec("iptables", "-w", "-t", "nat", "-I", Chain, "1", "-j", "MASQUERADE")
	ensure(t, ns, r, true)
	wantRules(t, ns, r)
	ns.MustExec("iptables", "-w", "-t", "nat", "-D", Chain, "1")
	ns.MustExec("iptables", "-w", "-t", "nat", "-A", Chain, "-d", "10.244.0.0/16", "-m", "comment", "--comment", commentReturn, "-j", "RETURN")
	ensure(t, ns, r, true)
	wantRules(t, ns, r)
	// The jump, and the whole chain.
	ns.MustExec("iptables", "-w", "-t", "nat", "-F", "POSTROUTING")
	ensure(t, ns, r, true)
	wantRules(t, ns, r)
	ns.MustExec("iptables", "-w", "-t", "nat", "-F", "POSTROUTING")
	ns.MustExec("iptables", "-w", "-t", "nat", "-F", Chain)
	ns.MustExec("iptables", "-w", "-t", "nat", "-X", Chain)
	ensure(t, ns, r, true)
	wantRules(t, ns, r)

	var err error
	ns.Do(func() { err = r.Remove() })
	if err != nil {
		t.Fatal(err)
	}
	if got := natRules(t, ns); got != "" {
		t.Fatalf("after Remove:\n%s", got)
	}
	ns.Do(func() { err = r.Remove() }) // nothing left: not an error
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunRepairs deletes the jump while Run checks every 100ms: it is back
// by the time Run ends.
func TestRunRepairs(t *testing.T) {
	ns := newNS(t)
	r := newRules(t, ns)
	ensure(t, ns, r, true)
	deleted := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		// ip netns exec: the command runs in ns, whatever this thread is.
		_, err := exec.Command("ip", "netns", "exec", ns.Name, "iptables", "-w", "-t", "nat", "-F", "POSTROUTING").CombinedOutput()
		deleted <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ns.Do(func() { r.Run(ctx, 100*time.Millisecond) }) // Run stays on Do's thread
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	wantRules(t, ns, r)
	if got := r.Repairs(); got != 1 {
		t.Errorf("Repairs() = %d, want 1", got)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cidrs := range [][]netip.Prefix{nil, {netip.MustParsePrefix("fd00::/64")}, {{}}} {
		if _, err := New(cidrs, nil); err == nil {
			t.Errorf("New(%v) accepted", cidrs)
		}
	}
}
