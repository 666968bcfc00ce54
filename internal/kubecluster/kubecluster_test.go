package kubecluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Dir: "/tmp/x", Name: "abc1", Nodes: 3}
	if err := good.validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no dir":        func(c *Config) { c.Dir = "" },
		"long name":     func(c *Config) { c.Name = "abcdefghijk" },
		"name with dot": func(c *Config) { c.Name = "a.b" },
		"upper case":    func(c *Config) { c.Name = "Abc" },
		"empty name":    func(c *Config) { c.Name = "" },
		"no nodes":      func(c *Config) { c.Nodes = 0 },
		"201 nodes":     func(c *Config) { c.Nodes = 201 },
		"backend":       func(c *Config) { c.Backend = "ipip" },
	} {
		c := good
		mutate(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, c)
		}
	}
}

// TestUpRefusesMaskedDir: a Dir that nodes mount over would vanish from
// their view.
func TestUpRefusesMaskedDir(t *testing.T) {
	for _, dir := range []string{"/var/lib/x", "/run/x", "/opt/x", "/var/log/x"} {
		_, err := Up(context.Background(), Config{Dir: dir, Name: "x", Nodes: 1})
		if err == nil || !strings.Contains(err.Error(), "mounts over") {
			t.Errorf("Up with Dir %s: %v, want a refusal", dir, err)
		}
	}
}

// TestDownWithoutState: nothing to remove is no error.
func TestDownWithoutState(t *testing.T) {
	if err := Down(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestNodeIsolationAndDown builds one node's namespaces and cgroups, runs a
// process in them, checks what makes it a node (hostname, private /run and
// /etc/cni, shared /, cgroup root in every v1 hierarchy), then Down from the
// state file alone removes the process, cgroups, mounts, namespaces and
// the directory.
func TestNodeIsolationAndDown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network, mount and UTS namespaces, cgroups")
	}
	mounts, _ := cgroupMounts("cgroup")
	if len(mounts) == 0 {
		t.Skip("no cgroup v1 hierarchy on this machine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "cluster")
	name := fmt.Sprintf("u%d", os.Getpid()%1000000)
	c := &Cluster{Config: Config{Dir: dir, Name: name, Nodes: 1}, ControlPlane: name + "-cp"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.state = newState(dir, name)
	downed := false
	t.Cleanup(func() {
		if !downed {
			Down(dir)
		}
	})
	if err := c.network(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.makeNSDir(ctx, filepath.Join(dir, "ns")); err != nil {
		t.Fatal(err)
	}
	// A second cluster of the same name is refused: its Down would take
	// this one's namespaces.
	if err := nameFree(name); err == nil || !strings.Contains(err.Error(), "is taken") {
		t.Errorf("nameFree(%s) with its namespaces there: %v, want taken", name, err)
	}
	machine := map[string]string{}
	for _, kt := range kubeletTunables {
		b, _ := os.ReadFile("/proc/sys/" + kt.path)
		machine[kt.path] = strings.TrimSpace(string(b))
	}
	n := c.Nodes[0]
	n.dir = filepath.Join(dir, n.Name)
	n.cg = "/" + name + "-" + n.Name
	if err := c.nodeNamespaces(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.nodeCgroups(n); err != nil {
		t.Fatal(err)
	}
	run := func(argv ...string) string {
		t.Helper()
		out, err := c.OnNode(ctx, n, argv...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	if got := run("hostname"); got != "node1" {
		t.Errorf("hostname %q, want node1", got)
	}
	if got := run("ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, "inet 192.168.49.2/24") {
		t.Errorf("eth0: %q, want 192.168.49.2/24", got)
	}
	// The machine's /run/netns holds the node's own namespace; the node's
	// /run is a fresh tmpfs.
	if got := run("findmnt", "-n", "-o", "FSTYPE", "/run"); got != "tmpfs" {
		t.Errorf("node's /run is %q, want tmpfs", got)
	}
	if got := run("ls", "-A", "/run/netns"); got != "" {
		t.Errorf("node's /run/netns holds %q, want nothing", got)
	}
	run("mkdir", "-p", "/etc/cni/net.d", "/opt/cni/bin", "/var/lib/taprouter", "/run/taprouter")
	run("touch", "/etc/cni/net.d/10-test.conflist", "/opt/cni/bin/test", "/var/lib/taprouter/state")
	for _, p := range []string{"/etc/cni/net.d/10-test.conflist", "/opt/cni/bin/test", "/var/lib/taprouter/state"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s written in the node is seen on the machine", p)
		}
	}
	// kubelet's kernel-wide sysctls read as it wants them in the node,
	// and cannot be written there; the machine's stay as they were.
	for _, kt := range kubeletTunables {
		if got := run("cat", "/proc/sys/"+kt.path); got != kt.value {
			t.Errorf("node's %s = %q, want %q", kt.path, got, kt.value)
		}
		if _, err := c.OnNode(ctx, n, "sh", "-c", "echo 5 > /proc/sys/"+kt.path); err == nil {
			t.Errorf("node could write %s", kt.path)
		}
		b, _ := os.ReadFile("/proc/sys/" + kt.path)
		if got := strings.TrimSpace(string(b)); got != machine[kt.path] {
			t.Errorf("machine's %s changed from %s to %s", kt.path, machine[kt.path], got)
		}
	}
	if got := run("findmnt", "-n", "-o", "PROPAGATION", "/"); got != "shared" {
		t.Errorf("node's / propagation %q, want shared", got)
	}
	for _, m := range mounts {
		if st, err := os.Stat(filepath.Join(m, n.cg)); err != nil || !st.IsDir() {
			t.Errorf("cgroup %s%s: %v", m, n.cg, err)
		}
	}
	p, err := c.start("sleeper", n.w, nil, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	// One more, in none of the cluster's namespaces but in the node's
	// cgroup only (as a container, with namespaces of its own, would be).
	cmd := exec.Command("sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec sleep 600", filepath.Join(mounts[0], n.cg)))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	other := &proc{name: "in-cgroup", pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { cmd.Wait(); close(other.done) }()
	waitCgroup := time.Now().Add(10 * time.Second)
	for len(owned(map[uint64]bool{}, c.state.Cgroups)) == 0 && time.Now().Before(waitCgroup) {
		time.Sleep(50 * time.Millisecond)
	}
	netnsFiles := append([]string(nil), c.state.Netns...)
	cgroups := append([]string(nil), c.state.Cgroups...)
	nsFiles := append([]string(nil), c.state.NSFiles...)

	downed = true
	if err := Down(dir); err != nil {
		t.Fatalf("down: %v", err)
	}
	for _, q := range []*proc{p, other} {
		select {
		case <-q.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) still runs after down", q.name, q.pid)
		}
	}
	for _, ns := range netnsFiles {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("netns %s left", ns)
		}
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s left", cg)
		}
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mountinfo), dir) {
		t.Errorf("mounts under %s left:\n%s", dir, grepString(string(mountinfo), dir))
	}
	_ = nsFiles
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", dir, err)
	}
	if err := syscall.Kill(p.pid, 0); err == nil {
		t.Errorf("pid %d alive", p.pid)
	}
}

// TestDownRefusesHostileState: Down acts as root on what state.json says;
// a planted or corrupt one must not make it touch anything not the
// cluster's. Each case is refused before anything is done.
func TestDownRefusesHostileState(t *testing.T) {
	mounts, _ := cgroupMounts("cgroup")
	cgroupRoot := "/sys/fs/cgroup/cpu"
	if len(mounts) > 0 {
		cgroupRoot = mounts[0]
	}
	for name, tc := range map[string]struct{ body, want string }{
		"cgroup root":          {fmt.Sprintf(`{"name":"abc","cgroups":[%q]}`, cgroupRoot), "is not one of cluster abc's"},
		"other's cgroup":       {fmt.Sprintf(`{"name":"abc","cgroups":[%q]}`, cgroupRoot+"/user.slice"), "is not one of cluster abc's"},
		"cgroup elsewhere":     {`{"name":"abc","cgroups":["/tmp/abc-node1"]}`, "is not one of cluster abc's"},
		"other netns":          {`{"name":"abc","netns":["default"]}`, `network namespace "default"`},
		"prefix-only netns":    {`{"name":"abc","netns":["abcdef-cp"]}`, `network namespace "abcdef-cp"`},
		"ns file elsewhere":    {`{"name":"abc","nsFiles":["/etc/passwd"]}`, `namespace file "/etc/passwd"`},
		"ns dir elsewhere":     {`{"name":"abc","nsDir":"/home"}`, `namespace directory "/home"`},
		"bad name":             {`{"name":"../x"}`, "bad cluster name"},
		"relative bin dir":     {`{"name":"abc","binDir":"bin"}`, "is not absolute"},
		"node with other's ns": {`{"name":"abc","netns":["abc-n1"],"nodes":[{"name":"n","netns":"abc-n1","mnt":"/proc/1/ns/mnt","uts":"/proc/1/ns/uts"}]}`, "not among the cluster's"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		err := Down(dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Down(%s) = %v, want an error with %q", name, tc.body, err, tc.want)
		}
		if _, serr := os.Stat(filepath.Join(dir, stateFile)); serr != nil {
			t.Errorf("%s: Down removed the state after refusing it (%v)", name, err)
		}
	}
	// A directory others may write (as /tmp/taprouter-cluster could be,
	// made by anyone) or a symbolic link to one.
	open := t.TempDir()
	os.WriteFile(filepath.Join(open, stateFile), []byte(`{"name":"abc"}`), 0o600)
	os.Chmod(open, 0o777)
	if err := Down(open); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable dir: %v", err)
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Chmod(open, 0o755)
	os.Symlink(open, link)
	if err := Down(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symbolic link: %v", err)
	}
}

func grepString(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestUpRefusesNonEmptyDir: Down removes Dir, so Up takes only one it made
// or an empty one; and Down removes only what Up writes.
func TestUpRefusesNonEmptyDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600)
	_, err := Up(context.Background(), Config{Dir: dir, Name: "x", Nodes: 1})
	if err == nil || !strings.Contains(err.Error(), "must not exist or be empty") {
		t.Errorf("Up into a non-empty Dir: %v", err)
	}
	if _, err := Up(context.Background(), Config{Dir: "/", Name: "x", Nodes: 1}); err == nil {
		t.Error("Up with Dir / accepted")
	}
	// A state file planted next to someone's files: Down removes its own
	// entries only, and leaves the directory.
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"name":"abc"}`), 0o600)
	os.Mkdir(filepath.Join(dir, "logs"), 0o755)
	if err := Down(dir); err == nil || !strings.Contains(err.Error(), "not removed") {
		t.Errorf("Down of a directory with a foreign file: %v, want it left", err)
	}
	for name, want := range map[string]bool{"precious": true, "logs": false, stateFile: false} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("after Down: %s exists %v, want %v", name, err == nil, want)
		}
	}
}
