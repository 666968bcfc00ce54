package fib

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var (
	host   = NextHop{Kind: Host}
	self   = NextHop{Kind: Self}
	drop   = NextHop{Kind: Blackhole}
	peer1  = NextHop{Kind: Peer, Peer: 1}
	peer2  = NextHop{Kind: Peer, Peer: 2}
	local7 = NextHop{Kind: Local, Port: 7}
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// wantLookup checks that every address in addrs resolves to want (ok=true)
// or, for the zero want with miss set, misses.
func wantLookup(t *testing.T, tab *Table, want NextHop, miss bool, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		got, ok := tab.Lookup(ip(a))
		if ok == miss || got != want {
			t.Errorf("Lookup(%s) = %v, %v; want %v, %v", a, got, ok, want, !miss)
		}
	}
}

func routesOf(tab *Table) []Route {
	var rs []Route
	tab.Walk(func(r Route) bool { rs = append(rs, r); return true })
	return rs
}

func TestKindAndNextHopString(t *testing.T) {
	for h, want := range map[NextHop]string{
		{}:         "unreachable",
		drop:       "blackhole",
		local7:     "local port 7",
		peer2:      "peer 2",
		host:       "host",
		self:       "self",
		{Kind: 42}: "kind(42)",
	} {
		if got := h.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", h, got, want)
		}
	}
	r := Route{pfx("10.244.1.0/24"), peer1}
	if got, want := r.String(), "10.244.1.0/24 peer 1"; got != want {
		t.Errorf("Route.String() = %q, want %q", got, want)
	}
}

func TestEmptyTableMisses(t *testing.T) {
	tab := New()
	wantLookup(t, tab, NextHop{}, true, "0.0.0.0", "10.0.0.1", "::", "2001:db8::1")
	if _, ok := tab.Lookup(netip.Addr{}); ok {
		t.Error("Lookup(zero Addr) found a route")
	}
	if tab.Len() != 0 {
		t.Errorf("Len() = %d, want 0", tab.Len())
	}
}

func TestDefaultRouteMatchesEveryIPv4Address(t *testing.T) {
	tab := New()
	tab.Insert(pfx("0.0.0.0/0"), host)
	wantLookup(t, tab, host, false, "0.0.0.0", "10.244.0.1", "169.254.1.1", "255.255.255.255")
	// The IPv4 default route says nothing about IPv6.
	wantLookup(t, tab, NextHop{}, true, "::", "2001:db8::1")
	if _, ok := tab.Lookup(netip.Addr{}); ok {
		t.Error("Lookup(zero Addr) matched the default route")
	}
}

func TestHostRouteMatchesOnlyItsAddress(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.0.5/32"), local7)
	wantLookup(t, tab, local7, false, "10.244.0.5")
	wantLookup(t, tab, NextHop{}, true, "10.244.0.4", "10.244.0.6", "10.244.1.5", "::ffff:10.244.0.5")
}

func TestDefaultAndHostRouteOverlap(t *testing.T) {
	tab := New()
	tab.Insert(pfx("169.254.1.1/32"), self)
	tab.Insert(pfx("0.0.0.0/0"), host)
	wantLookup(t, tab, self, false, "169.254.1.1")
	wantLookup(t, tab, host, false, "169.254.1.0", "169.254.1.2", "0.0.0.0", "255.255.255.255")
	tab.Insert(pfx("0.0.0.0/32"), drop)
	tab.Insert(pfx("255.255.255.255/32"), drop)
	wantLookup(t, tab, drop, false, "0.0.0.0", "255.255.255.255")
	wantLookup(t, tab, host, false, "0.0.0.1", "255.255.255.254")
}

func TestMoreSpecificWins(t *testing.T) {
	tab := New()
	// Inserted from most to least specific, so that insertion order
	// cannot be what decides.
	tab.Insert(pfx("10.244.1.5/32"), local7)
	tab.Insert(pfx("10.244.1.0/27"), drop)
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	tab.Insert(pfx("10.244.0.0/16"), peer2)
	tab.Insert(pfx("10.240.0.0/12"), self)
	tab.Insert(pfx("0.0.0.0/0"), host)
	wantLookup(t, tab, local7, false, "10.244.1.5")
	wantLookup(t, tab, drop, false, "10.244.1.0", "10.244.1.4", "10.244.1.31")
	wantLookup(t, tab, peer1, false, "10.244.1.32", "10.244.1.255")
	wantLookup(t, tab, peer2, false, "10.244.0.1", "10.244.2.1", "10.244.255.255")
	wantLookup(t, tab, self, false, "10.240.0.0", "10.255.255.255", "10.245.0.1")
	wantLookup(t, tab, host, false, "10.239.255.255", "11.0.0.0", "8.8.8.8")
}

func TestDeleteRestoresLessSpecific(t *testing.T) {
	tab := New()
	tab.Insert(pfx("0.0.0.0/0"), host)
	tab.Insert(pfx("10.244.0.0/16"), peer2)
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	tab.Insert(pfx("10.244.1.5/32"), local7)

	steps := []struct {
		del  string
		want NextHop
	}{
		{"10.244.1.5/32", peer1},
		{"10.244.1.0/24", peer2},
		{"10.244.0.0/16", host},
	}
	for _, s := range steps {
		if !tab.Delete(pfx(s.del)) {
			t.Fatalf("Delete(%s) = false, want true", s.del)
		}
		if tab.Delete(pfx(s.del)) {
			t.Fatalf("second Delete(%s) = true, want false", s.del)
		}
		wantLookup(t, tab, s.want, false, "10.244.1.5")
	}
	if !tab.Delete(pfx("0.0.0.0/0")) {
		t.Fatal("Delete(0.0.0.0/0) = false")
	}
	wantLookup(t, tab, NextHop{}, true, "10.244.1.5")
	if tab.Len() != 0 {
		t.Errorf("Len() = %d after deleting everything", tab.Len())
	}
}

func TestDeleteIsExactMatchOnly(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.0.0/16"), peer2)
	for _, p := range []string{"10.244.0.0/24", "10.0.0.0/8", "10.244.0.0/17", "::/0"} {
		if tab.Delete(pfx(p)) {
			t.Errorf("Delete(%s) = true; only 10.244.0.0/16 is in the table", p)
		}
	}
	if tab.Delete(netip.Prefix{}) || tab.Delete(pfx("::ffff:10.244.0.0/112")) {
		t.Error("Delete of an invalid or IPv4-mapped prefix = true")
	}
	wantLookup(t, tab, peer2, false, "10.244.3.4")
}

func TestUnmaskedPrefixIsMasked(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.1.77/24"), peer1)
	tab.Insert(pfx("2001:db8::1/32"), peer2)
	want := []Route{{pfx("10.244.1.0/24"), peer1}, {pfx("2001:db8::/32"), peer2}}
	if got := routesOf(tab); !slices.Equal(got, want) {
		t.Errorf("Walk = %v, want %v", got, want)
	}
	wantLookup(t, tab, peer1, false, "10.244.1.1", "10.244.1.77")
	if !tab.Delete(pfx("10.244.1.200/24")) {
		t.Error("Delete(10.244.1.200/24) = false; it names 10.244.1.0/24")
	}
	if !tab.Delete(pfx("2001:db8:0:1::/32")) {
		t.Error("Delete(2001:db8:0:1::/32) = false; it names 2001:db8::/32")
	}
}

func TestInsertReplaces(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.244.1.0/24"), peer1)
	tab.Insert(pfx("10.244.1.0/24"), peer2)
	tab.Insert(pfx("10.244.1.9/24"), drop)
	if tab.Len() != 1 {
		t.Errorf("Len() = %d, want 1", tab.Len())
	}
	wantLookup(t, tab, drop, false, "10.244.1.1")
}

func TestIPv4MappedIsRejected(t *testing.T) {
	tab := New()
	tab.Insert(pfx("0.0.0.0/0"), host)
	tab.Insert(pfx("10.244.0.0/16"), peer1)
	tab.Insert(pfx("::/0"), peer2)
	// Neither the IPv4 routes nor the IPv6 default route forward an
	// IPv4-mapped address: it never appears in a real packet.
	wantLookup(t, tab, NextHop{}, true, "::ffff:10.244.0.1", "::ffff:0.0.0.0", "::ffff:8.8.8.8")
	// Addresses next to ::ffff:0:0/96 are ordinary IPv6.
	wantLookup(t, tab, peer2, false, "::fffe:a00:1", "::1:ffff:a00:1")

	for _, p := range []string{"::ffff:10.244.0.0/112", "::ffff:0:0/96", "::ffff:1.2.3.4/128"} {
		if err := CheckPrefix(pfx(p)); !errors.Is(err, ErrMappedPrefix) {
			t.Errorf("CheckPrefix(%s) = %v, want ErrMappedPrefix", p, err)
		}
		wantPanic(t, "IPv4-mapped", func() { tab.Insert(pfx(p), local7) })
	}
	// Shorter prefixes that merely contain ::ffff:0:0/96 are fine.
	for _, p := range []string{"::/0", "::ffff:0:0/95", "::ffff:0:0/80"} {
		if err := CheckPrefix(pfx(p)); err != nil {
			t.Errorf("CheckPrefix(%s) = %v, want nil", p, err)
		}
	}
}

func TestInvalidPrefixIsRejected(t *testing.T) {
	if err := CheckPrefix(netip.Prefix{}); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("CheckPrefix(zero) = %v, want ErrInvalidPrefix", err)
	}
	if err := CheckPrefix(netip.PrefixFrom(ip("10.0.0.0"), 33)); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("CheckPrefix(10.0.0.0/33) = %v, want ErrInvalidPrefix", err)
	}
	tab := New()
	wantPanic(t, "invalid prefix", func() { tab.Insert(netip.Prefix{}, host) })
	wantPanic(t, "invalid prefix", func() { tab.Update(func(tx *Txn) { tx.Insert(netip.Prefix{}, host) }) })
	if tab.Len() != 0 {
		t.Errorf("Len() = %d after rejected inserts", tab.Len())
	}
}

func TestIPv6RoundTrip(t *testing.T) {
	tab := New()
	routes := []Route{
		{pfx("0.0.0.0/0"), host},
		{pfx("10.244.0.0/24"), local7},
		{pfx("::/0"), host},
		{pfx("2001:db8::/32"), peer1},
		{pfx("2001:db8:0:1::/64"), peer2},
		{pfx("2001:db8:0:1::5/128"), local7},
		{pfx("fd00:10:244:1::/64"), self},
	}
	for _, r := range slices.Backward(routes) {
		tab.Insert(r.Prefix, r.NextHop)
	}
	if got := routesOf(tab); !slices.Equal(got, routes) {
		t.Errorf("Walk =\n%v\nwant\n%v", got, routes)
	}
	wantLookup(t, tab, local7, false, "2001:db8:0:1::5")
	wantLookup(t, tab, peer2, false, "2001:db8:0:1::6")
	wantLookup(t, tab, peer1, false, "2001:db8:ffff::1")
	wantLookup(t, tab, self, false, "fd00:10:244:1::99")
	wantLookup(t, tab, host, false, "2002::1", "::")
	// A zone does not change which route an address takes.
	wantLookup(t, tab, local7, false, "2001:db8:0:1::5%eth0")
}

func TestWalkOrderAndStop(t *testing.T) {
	tab := New()
	in := []string{"192.168.0.0/16", "10.0.0.0/8", "::/0", "10.0.0.0/24", "0.0.0.0/0",
		"10.0.0.5/32", "10.1.0.0/16", "fe80::/10", "10.0.1.0/24", "2001:db8::/32", "10.0.0.0/9"}
	for _, p := range in {
		tab.Insert(pfx(p), host)
	}
	want := []string{"0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/9", "10.0.0.0/24", "10.0.0.5/32",
		"10.0.1.0/24", "10.1.0.0/16", "192.168.0.0/16", "::/0", "2001:db8::/32", "fe80::/10"}
	var got []string
	for _, r := range routesOf(tab) {
		got = append(got, r.Prefix.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("Walk order =\n%v\nwant\n%v", got, want)
	}
	n := 0
	tab.Walk(func(Route) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("Walk called fn %d times after it returned false on the 3rd", n)
	}
}

func TestWalkMayUpdateTable(t *testing.T) {
	tab := New()
	tab.Insert(pfx("10.0.0.0/8"), peer1)
	tab.Insert(pfx("10.1.0.0/16"), peer1)
	tab.Walk(func(r Route) bool {
		tab.Delete(r.Prefix) // would deadlock or corrupt if Walk held a lock
		tab.Insert(pfx("192.168.0.0/16"), host)
		return true
	})
	if got, want := routesOf(tab), []Route{{pfx("192.168.0.0/16"), host}}; !slices.Equal(got, want) {
		t.Errorf("after Walk deleted its routes: %v, want %v", got, want)
	}
}

func wantPanic(t *testing.T, substr string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic; want one mentioning %q", substr)
			return
		}
		if msg, _ := r.(string); !strings.Contains(msg, substr) {
			t.Errorf("panic %v; want one mentioning %q", r, substr)
		}
	}()
	fn()
}
