package kubecluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// state is what a cluster owns, written to <Dir>/state.json before each
// thing is created, so that Down can remove all of it from another process.
type state struct {
	mu sync.Mutex
	// Name is the cluster's unique prefix.
	Name string `json:"name"`
	// Netns are the network namespaces (ip netns names).
	Netns []string `json:"netns"`
	// NSFiles are the bind-mounted mount and UTS namespace files, in the
	// order they were made.
	NSFiles []string `json:"nsFiles"`
	// NSDir is the private bind mount that holds NSFiles.
	NSDir string `json:"nsDir,omitempty"`
	// Cgroups are the cgroup directories made, one per hierarchy and node.
	Cgroups []string `json:"cgroups"`
	// Nodes are the nodes' names and mount namespace files, for the
	// sandbox removal.
	Nodes []nodeState `json:"nodes"`
	// BinDir holds the binaries (crictl for the sandbox removal).
	BinDir string `json:"binDir"`
	// Pids are the processes started, by name.
	Pids map[string]int `json:"pids"`

	path string
}

type nodeState struct {
	Name  string `json:"name"`
	Netns string `json:"netns"`
	Mnt   string `json:"mnt"`
	UTS   string `json:"uts"`
}

const stateFile = "state.json"

func newState(dir, name string) *state {
	return &state{Name: name, Pids: map[string]int{}, path: filepath.Join(dir, stateFile)}
}

// loadState reads <dir>/state.json, which Down acts on as root: dir must
// be ours (checkOwnDir), and every entry must be one Up could have written
// for the state's name (validate), so that a planted or corrupt state file
// cannot make Down kill, unmount or delete anything else.
func loadState(dir string) (*state, error) {
	if err := checkOwnDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, stateFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &state{path: path}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Pids == nil {
		s.Pids = map[string]int{}
	}
	if err := s.validate(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// checkOwnDir refuses a directory that is a symbolic link, not root's (or
// this user's), or writable by others: in /tmp anyone could have made it.
func checkOwnDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok {
		return fmt.Errorf("kubecluster: %s is not a directory", dir)
	}
	if int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("kubecluster: %s belongs to uid %d, not to us (%d)", dir, sys.Uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("kubecluster: %s is writable by others (%v)", dir, st.Mode().Perm())
	}
	// Every directory above must be root's (or ours) and not writable by
	// others, or be sticky (/tmp): else its owner could swap dir for a
	// link between this check and what root does in it.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys := st.Sys().(*syscall.Stat_t)
		if (sys.Uid != 0 && int(sys.Uid) != os.Geteuid()) || (st.Mode().Perm()&0o022 != 0 && st.Mode()&os.ModeSticky == 0) {
			return fmt.Errorf("kubecluster: %s is under %s, which another user may change (uid %d, %v)", dir, p, sys.Uid, st.Mode())
		}
		if p == "/" {
			return nil
		}
	}
}

var (
	netnsRE  = regexp.MustCompile(`^-(sw|cp|n[0-9]{1,3})$`)
	cgroupRE = regexp.MustCompile(`^node[0-9]{1,3}$`)
)

// validate checks that every entry is one Up writes for s.Name in dir.
func (s *state) validate(dir string) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("bad cluster name %q", s.Name)
	}
	for _, ns := range s.Netns {
		rest, ok := strings.CutPrefix(ns, s.Name)
		if !ok || !netnsRE.MatchString(rest) {
			return fmt.Errorf("network namespace %q is not one of cluster %s's", ns, s.Name)
		}
	}
	nsDir := filepath.Join(dir, "ns")
	if s.NSDir != "" && s.NSDir != nsDir {
		return fmt.Errorf("namespace directory %q, want %q", s.NSDir, nsDir)
	}
	for _, f := range s.NSFiles {
		if filepath.Dir(f) != nsDir {
			return fmt.Errorf("namespace file %q is not in %s", f, nsDir)
		}
	}
	mounts, err := allCgroupMounts()
	if err != nil {
		return err
	}
	for _, cg := range s.Cgroups {
		rest, ok := strings.CutPrefix(filepath.Base(cg), s.Name+"-")
		if !ok || !cgroupRE.MatchString(rest) || !slices.Contains(mounts, filepath.Dir(cg)) {
			return fmt.Errorf("cgroup %q is not one of cluster %s's", cg, s.Name)
		}
	}
	for _, n := range s.Nodes {
		if !slices.Contains(s.Netns, n.Netns) || !slices.Contains(s.NSFiles, n.Mnt) || !slices.Contains(s.NSFiles, n.UTS) {
			return fmt.Errorf("node %q: namespaces not among the cluster's", n.Name)
		}
	}
	if s.BinDir != "" && !filepath.IsAbs(s.BinDir) {
		return fmt.Errorf("binary directory %q is not absolute", s.BinDir)
	}
	return nil
}

// update runs f on the state and writes it (to a temporary file renamed
// into place, so that a crash leaves the old or the new state).
func (s *state) update(f func(*state)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// errs joins the errors of a teardown, which goes on after each.
type errs []error

func (e *errs) add(err error) {
	if err != nil {
		*e = append(*e, err)
	}
}

func (e errs) err() error { return errors.Join(e...) }

// trustedBinary refuses to run, as root, a program that another user could
// have written: it (after symbolic links) and its directory must be ours
// and not writable by others.
func trustedBinary(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	for _, p := range []string{real, filepath.Dir(real)} {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("kubecluster: %s is not ours alone (mode %v)", p, st.Mode().Perm())
		}
	}
	return nil
}
