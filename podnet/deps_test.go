package podnet

import (
	"os/exec"
	"strings"
	"testing"
)

// podnet checks interface names with link/ifname, and does not pull in the
// config package (and with it yaml.v3 and regexp) for it.
func TestNoConfigDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/taprouter/taprouter/config", "gopkg.in/yaml.v3", "regexp":
			t.Errorf("podnet depends on %s", dep)
		}
	}
}
