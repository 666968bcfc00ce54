// Package ifname checks network interface names as the kernel does. It is
// a leaf (the standard library only), so that config, podnet, daemon and the
// CNI plugin share one rule without importing each other.
package ifname

import "fmt"

// MaxLen is the longest interface name the kernel takes (IFNAMSIZ-1).
const MaxLen = 15

// Check returns nil if the kernel names an interface exactly name, as its
// dev_valid_name decides: 1 to 15 bytes, not "." or "..", no "/", ":", NUL
// or white space (the kernel's isspace, which includes 0xa0). A "%" is
// refused too: the kernel takes "eth%d" as a pattern and picks a free name,
// so the interface would not be called what the caller recorded.
func Check(name string) error {
	switch {
	case name == "" || len(name) > MaxLen:
		return fmt.Errorf("%q: want an interface name of 1 to %d bytes", name, MaxLen)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '/', ':', '%', 0, ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			return fmt.Errorf("%q: an interface name may not contain %q", name, c)
		}
	}
	return nil
}
