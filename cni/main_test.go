package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// The tests run the plugin as a runtime does: a separate process with the
// CNI environment and the configuration on stdin, whose stdout and exit
// status are what is checked. That process is this test binary, started
// through a symlink named "taprouter"; the IPAM plugin it delegates to is
// the test binary again, through a symlink named "fake-ipam" (fakeIPAMMain).
// Both symlinks live in pluginDir, the CNI_PATH.
var pluginDir string

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "taprouter":
		skel.PluginMainFuncs(Funcs(), Versions, About)
		os.Exit(0)
	case "fake-ipam":
		fakeIPAMMain()
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	self, err := os.Executable()
	if err == nil {
		pluginDir, err = os.MkdirTemp("", "taprouter-cni-test-")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cni test:", err)
		return 1
	}
	defer os.RemoveAll(pluginDir)
	for _, name := range []string{"taprouter", "fake-ipam"} {
		if err := os.Symlink(self, filepath.Join(pluginDir, name)); err != nil {
			fmt.Fprintln(os.Stderr, "cni test:", err)
			return 1
		}
	}
	return m.Run()
}

// invocation is one run of the plugin.
type invocation struct {
	Command     string // CNI_COMMAND
	ContainerID string // CNI_CONTAINERID; default "ctr1"
	Netns       string // CNI_NETNS; default podNetns, "-" for none
	IfName      string // CNI_IFNAME; default "eth0"
	Stdin       string
	IPAM        *fakeIPAM // the fake IPAM's behaviour and log; nil for none
}

const podNetns = "/var/run/netns/taprouter-cni-test-pod"

// outcome is what the plugin printed and how it exited.
type outcome struct {
	Stdout   []byte
	Stderr   string
	ExitCode int
}

// cniError decodes stdout as a CNI error object; it fails the test if the
// plugin did not fail or did not print one.
func (o outcome) cniError(t *testing.T) *types.Error {
	t.Helper()
	if o.ExitCode == 0 {
		t.Fatalf("plugin succeeded, want a CNI error; stdout:\n%s", o.Stdout)
	}
	e := &types.Error{}
	if err := json.Unmarshal(o.Stdout, e); err != nil || e.Code == 0 || e.Msg == "" {
		t.Fatalf("exit status %d but stdout is not a CNI error object (%v):\n%s\nstderr: %s", o.ExitCode, err, o.Stdout, o.Stderr)
	}
	return e
}

// wantCode fails the test unless the plugin failed with a CNI error of the
// given code whose message contains every one of words; it returns the
// error.
func (o outcome) wantCode(t *testing.T, code uint, words ...string) *types.Error {
	t.Helper()
	e := o.cniError(t)
	if e.Code != code {
		t.Errorf("CNI error code %d, want %d: %s", e.Code, code, e.Error())
	}
	for _, w := range words {
		if !strings.Contains(e.Error(), w) {
			t.Errorf("error %q does not mention %q", e.Error(), w)
		}
	}
	return e
}

// wantOK fails the test unless the plugin exited 0.
func (o outcome) wantOK(t *testing.T) {
	t.Helper()
	if o.ExitCode != 0 {
		t.Fatalf("plugin exited %d:\n%s\nstderr: %s", o.ExitCode, o.Stdout, o.Stderr)
	}
}

func run(t *testing.T, in invocation) outcome {
	t.Helper()
	// atexit_sleep_ms=0: a race-detector build otherwise sleeps 1 s at every exit.
	env := []string{"CNI_COMMAND=" + in.Command, "CNI_PATH=" + pluginDir, "GORACE=atexit_sleep_ms=0"}
	set := func(name, value, def string) {
		switch value {
		case "-":
		case "":
			env = append(env, name+"="+def)
		default:
			env = append(env, name+"="+value)
		}
	}
	set("CNI_CONTAINERID", in.ContainerID, "ctr1")
	set("CNI_NETNS", in.Netns, podNetns)
	set("CNI_IFNAME", in.IfName, "eth0")
	if in.IPAM != nil {
		env = append(env, in.IPAM.env()...)
	}
	cmd := exec.Command(filepath.Join(pluginDir, "taprouter"))
	cmd.Env = env
	cmd.Stdin = strings.NewReader(in.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{Stdout: stdout.Bytes(), Stderr: stderr.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		o.ExitCode = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running the plugin: %v", err)
	}
	return o
}

// netConf is a network configuration with the taprouter plugin talking to
// socket; extra fields are merged into it (a nil value deletes the field).
func netConf(version, socket string, extra map[string]any) string {
	conf := map[string]any{
		"cniVersion": version,
		"name":       "pods",
		"type":       "taprouter",
		"socket":     socket,
		"ipam":       map[string]any{"type": "fake-ipam"},
	}
	for k, v := range extra {
		if v == nil {
			delete(conf, k)
		} else {
			conf[k] = v
		}
	}
	b, err := json.Marshal(conf)
	if err != nil {
		panic(err)
	}
	return string(b)
}
