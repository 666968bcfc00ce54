package masq

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"go.uber.org/zap"
)

const (
	// Chain is the nat chain that holds the rules.
	Chain = "TAPROUTER-MASQ"
	table = "nat"
	// DefaultInterval is how often Run checks the rules.
	DefaultInterval = 10 * time.Second
)

// The comments the rules carry, as kindnet's say what each rule is for
// (no quote characters: iptables -S escapes them).
const (
	commentJump   = "taprouter: traffic from pods to non-local destinations goes through " + Chain
	commentReturn = "taprouter: traffic to the pods of the cluster is not masqueraded"
	commentMasq   = "taprouter: traffic from pods leaving the cluster is masqueraded (must be last)"
)

// Rules are the masquerade rules for a set of cluster pod CIDRs.
type Rules struct {
	ipt   *iptables.IPTables
	cidrs []netip.Prefix
	log   *zap.Logger

	repairs atomic.Uint64 // Run's Ensure calls that changed something
}

// Repairs is how often Run found the rules changed and repaired them.
func (r *Rules) Repairs() uint64 { return r.repairs.Load() }

// New returns the rules for clusterCIDRs (IPv4 prefixes: the cluster's pod
// ranges) in the calling thread's network namespace; it runs iptables to
// learn its version. log may be nil.
func New(clusterCIDRs []netip.Prefix, log *zap.Logger) (*Rules, error) {
	if len(clusterCIDRs) == 0 {
		return nil, errors.New("masq: no cluster CIDR")
	}
	for _, p := range clusterCIDRs {
		if !p.IsValid() || !p.Addr().Is4() {
			return nil, fmt.Errorf("masq: %s is not an IPv4 prefix", p)
		}
	}
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(5))
	if err != nil {
		return nil, fmt.Errorf("masq: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	cidrs := make([]netip.Prefix, len(clusterCIDRs))
	for i, p := range clusterCIDRs {
		cidrs[i] = p.Masked()
	}
	return &Rules{ipt: ipt, cidrs: cidrs, log: log}, nil
}

// jump is the POSTROUTING rule.
func jump() []string {
	return []string{"-m", "addrtype", "!", "--dst-type", "LOCAL", "-m", "comment", "--comment", commentJump, "-j", Chain}
}

// chainRules are the chain's rules, in order.
func (r *Rules) chainRules() [][]string {
	var rules [][]string
	for _, p := range r.cidrs {
		rules = append(rules, []string{"-d", p.String(), "-m", "comment", "--comment", commentReturn, "-j", "RETURN"})
	}
	for _, p := range r.cidrs {
		rule := []string{"-s", p.String(), "-m", "comment", "--comment", commentMasq, "-j", "MASQUERADE"}
		if r.ipt.HasRandomFully() {
			rule = append(rule, "--random-fully")
		}
		rules = append(rules, rule)
	}
	return rules
}

// Ensure makes the rules what they should be: the chain with its rules in
// order, and the jump from POSTROUTING. It reports whether it changed
// anything.
func (r *Rules) Ensure() (changed bool, err error) {
	exists, err := r.ipt.ChainExists(table, Chain)
	if err != nil {
		return false, fmt.Errorf("masq: %w", err)
	}
	if !exists {
		if err := r.ipt.NewChain(table, Chain); err != nil {
			return false, fmt.Errorf("masq: create chain %s: %w", Chain, err)
		}
		changed = true
	}
	want := r.chainRules()
	ok, err := r.chainIs(want)
	if err != nil {
		return changed, err
	}
	if !ok {
		// Rewrite the whole chain: order matters (RETURN before
		// MASQUERADE). For a moment pods' egress is not masqueraded;
		// conntrack keeps established flows' NAT.
		if err := r.ipt.ClearChain(table, Chain); err != nil {
			return changed, fmt.Errorf("masq: flush %s: %w", Chain, err)
		}
		for _, rule := range want {
			if err := r.ipt.Append(table, Chain, rule...); err != nil {
				return true, fmt.Errorf("masq: %s: %w", strings.Join(rule, " "), err)
			}
		}
		changed = true
	}
	has, err := r.ipt.Exists(table, "POSTROUTING", jump()...)
	if err != nil {
		return changed, fmt.Errorf("masq: %w", err)
	}
	if !has {
		if err := r.ipt.Append(table, "POSTROUTING", jump()...); err != nil {
			return changed, fmt.Errorf("masq: jump from POSTROUTING: %w", err)
		}
		changed = true
	}
	return changed, nil
}

// chainIs reports whether the chain holds exactly want, in order.
func (r *Rules) chainIs(want [][]string) (bool, error) {
	lines, err := r.ipt.List(table, Chain)
	if err != nil {
		return false, fmt.Errorf("masq: list %s: %w", Chain, err)
	}
	var rules []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	if len(rules) != len(want) {
		return false, nil
	}
	for i, rule := range want {
		if !sameRule(rules[i], rule) {
			return false, nil
		}
	}
	return true, nil
}

// sameRule reports whether line, as iptables -S prints a rule, has the
// match and target of spec: the same words in the same order, ignoring the
// the quotes around a comment.
func sameRule(line string, spec []string) bool {
	got := strings.Fields(strings.ReplaceAll(line, `"`, ""))
	if len(got) < 2 {
		return false
	}
	var want []string
	for _, w := range spec {
		want = append(want, strings.Fields(w)...)
	}
	return slices.Equal(got[2:], want)
}

// Remove deletes the jump and the chain. Missing ones are not an error
// (without the chain there can be no jump to it).
func (r *Rules) Remove() error {
	exists, err := r.ipt.ChainExists(table, Chain)
	if err != nil || !exists {
		return err
	}
	if err := r.ipt.DeleteIfExists(table, "POSTROUTING", jump()...); err != nil {
		return fmt.Errorf("masq: %w", err)
	}
	if err := r.ipt.ClearAndDeleteChain(table, Chain); err != nil {
		return fmt.Errorf("masq: %w", err)
	}
	return nil
}

// Run calls Ensure every interval until ctx is done, logging each repair
// and each failure (a failure once until the rules are right again). It
// must run on the thread of the namespace the rules belong to: in
// taprouterd, any goroutine (the daemon lives in the node's namespace).
func (r *Rules) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.Ensure()
		switch {
		case err != nil && !failing:
			r.log.Warn("masquerade rules: check failed; retrying", zap.Error(err))
			failing = true
		case err == nil && changed:
			r.repairs.Add(1)
			r.log.Warn("masquerade rules were changed by someone else: repaired", zap.String("chain", Chain))
			failing = false
		case err == nil:
			failing = false
		}
	}
}

// CIDRs are the cluster CIDRs the rules exempt and masquerade.
func (r *Rules) CIDRs() []netip.Prefix { return slices.Clone(r.cidrs) }
