package fib

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalidPrefix is wrapped by CheckPrefix's error for the zero or an
// otherwise invalid netip.Prefix.
var ErrInvalidPrefix = errors.New("invalid prefix")

// ErrMappedPrefix is wrapped by CheckPrefix's error for a prefix inside
// ::ffff:0:0/96 (IPv4-mapped IPv6).
var ErrMappedPrefix = errors.New("IPv4-mapped IPv6 prefix; unmap it to IPv4 first")

// CheckPrefix reports whether p can be a route: it must be valid and must
// not lie inside ::ffff:0:0/96. Callers with untrusted input (config,
// taprouterctl) check with it before Insert, which panics on such prefixes.
func CheckPrefix(p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("fib: %w", ErrInvalidPrefix)
	}
	if p.Masked().Addr().Is4In6() {
		return fmt.Errorf("fib: %v: %w", p, ErrMappedPrefix)
	}
	return nil
}

// mustCheckPrefix panics with CheckPrefix's error; op names the caller.
func mustCheckPrefix(op string, p netip.Prefix) {
	if err := CheckPrefix(p); err != nil {
		panic(err.Error() + " (in " + op + ")")
	}
}
