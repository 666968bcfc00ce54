package ifname

import (
	"os/exec"
	"strings"
	"testing"
)

// Check says what the kernel's dev_valid_name says, and refuses the "%" of
// a name pattern.
func TestCheck(t *testing.T) {
	for _, name := range []string{"eth0", "a", "net1", "0123456789abcde", "veth-a_b", "é"} {
		if err := Check(name); err != nil {
			t.Errorf("Check(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "eth%d", "a/b", "a:b", "a b", "a\tb", "a\nb", "a\x00b", "a\xa0b", "0123456789abcdef"} {
		if err := Check(name); err == nil {
			t.Errorf("Check(%q) accepted it", name)
		}
	}
}

// The package stays a leaf: nothing but the standard library, so that
// importing it costs its users nothing (podnet used to pull in config, and
// with it yaml.v3 and regexp, for this one function).
func TestLeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/taprouter/taprouter/link/ifname" {
		t.Errorf("non-standard dependencies %v, want only the package itself", deps)
	}
}
