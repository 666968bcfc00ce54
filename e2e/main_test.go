package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// taprouterd is the daemon binary TestMain builds.
var taprouterd string

// skipReason, when set, is why this machine cannot run the tests.
var skipReason string

// buildErr is why the daemon could not be built; every test fails with it.
var buildErr error

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "needs root: creates network namespaces, TAP devices and bridges"
		return m.Run()
	}
	for _, tool := range []string{"ip", "bridge", "ping", "iperf3", "traceroute", "tracepath", "tcpdump", "ss", "ethtool", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipReason = fmt.Sprintf("needs %s in PATH (make deps installs the tools)", tool)
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "taprouter-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	taprouterd = filepath.Join(dir, "taprouterd")
	build := exec.Command("go", "build", "-o", taprouterd, "github.com/taprouter/taprouter/cmd/taprouterd")
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("building cmd/taprouterd: %v\n%s", err, out)
	}
	code := m.Run()
	if leftovers := leftoverNamespaces(); leftovers != "" {
		fmt.Fprintf(os.Stderr, "e2e: namespaces left behind:\n%s", leftovers)
		return 1
	}
	return code
}

// leftoverNamespaces lists the namespaces this process created and did not
// delete (testbed names them tr<pid>x<n>-<role>).
func leftoverNamespaces() string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return "ip netns list: " + err.Error()
	}
	var left strings.Builder
	prefix := fmt.Sprintf("tr%dx", os.Getpid())
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix) {
			left.WriteString(line + "\n")
		}
	}
	return left.String()
}

// requireDaemon skips the test when the machine cannot run it and fails it
// when taprouterd did not build.
func requireDaemon(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}
