package kubecluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// where a process runs: a network namespace and, for a node, its mount and
// UTS namespaces.
type where struct {
	netns    string // ip netns name
	mnt, uts string // namespace files, or ""
}

// nsenter returns the argv that runs argv in w.
func (w where) nsenter(argv ...string) []string {
	a := []string{"nsenter", "--net=/run/netns/" + w.netns}
	if w.mnt != "" {
		a = append(a, "--mount="+w.mnt)
	}
	if w.uts != "" {
		a = append(a, "--uts="+w.uts)
	}
	return append(append(a, "--"), argv...)
}

// run runs a short command in w and returns its standard output; the
// error has the standard error.
func (w where) run(ctx context.Context, stdin []byte, argv ...string) (string, error) {
	a := w.nsenter(argv...)
	cmd := exec.CommandContext(ctx, a[0], a[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// proc is a long-running process of the cluster.
type proc struct {
	name string
	log  string
	pid  int
	done chan struct{} // closed when it exited (while this process runs)
	err  error
}

// exited reports whether p has exited, with its error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// start starts a daemon in w in a session of its own, so that it outlives
// this process (taprouter-cluster up returns with the cluster running),
// with its output in <Dir>/logs/<name>.log, and records its pid.
func (c *Cluster) start(name string, w where, env []string, argv ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(c.Dir, "logs", name+".log"), done: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(p.log), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a := w.nsenter(argv...)
	cmd := exec.Command(a[0], a[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(daemonEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pid = cmd.Process.Pid
	if err := c.state.update(func(s *state) { s.Pids[name] = p.pid }); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.procsMu.Lock()
	c.procs = append(c.procs, p)
	c.procsMu.Unlock()
	return p, nil
}

// TailFile returns the last n lines of the file at path (internal/k8stest
// uses it for its logs too).
func TailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// nsInode returns the inode of a namespace file (a bind mount of nsfs, or
// /proc/<pid>/ns/<kind>), 0 if it cannot be read or is no namespace (an
// ordinary file's inode number could equal a namespace's).
func nsInode(path string) uint64 {
	var st, self syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil || st.Dev != self.Dev {
		return 0
	}
	return st.Ino
}

// owned returns the pids of every process in one of the namespaces (by
// inode) or in one of the cgroups or their descendants.
func owned(nsInodes map[uint64]bool, cgroups []string) []int {
	// Never the machine's own namespaces (a namespace file bound to init's
	// would otherwise match every process), nor ours.
	for _, p := range []string{"/proc/1/ns/net", "/proc/1/ns/mnt", "/proc/1/ns/uts", "/proc/self/ns/net", "/proc/self/ns/mnt", "/proc/self/ns/uts"} {
		delete(nsInodes, nsInode(p))
	}
	pids := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		for _, kind := range []string{"net", "mnt", "uts"} {
			if ino := nsInode(fmt.Sprintf("/proc/%d/ns/%s", pid, kind)); ino != 0 && nsInodes[ino] {
				pids[pid] = true
			}
		}
	}
	for _, cg := range cgroups {
		filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != self {
					pids[pid] = true
				}
			}
			return nil
		})
	}
	out := make([]int, 0, len(pids))
	for pid := range pids {
		out = append(out, pid)
	}
	return out
}

// killAll sends SIGTERM to every owned process, waits up to grace for them
// to exit, then SIGKILLs what is left until none is (or 10 s pass).
func killAll(nsInodes map[uint64]bool, cgroups []string, grace time.Duration) error {
	for _, pid := range owned(nsInodes, cgroups) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && len(owned(nsInodes, cgroups)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		left := owned(nsInodes, cgroups)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still running after SIGKILL: %v", left)
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemonEnv is this process's environment without what would point the
// cluster's daemons elsewhere: proxies (nothing may leave the cluster's
// namespaces) and a KUBECONFIG of the caller's.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "KUBECONFIG":
			continue
		}
		env = append(env, kv)
	}
	return env
}
