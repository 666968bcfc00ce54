package kubecluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
	// HostDirs are mount points made on the machine (directories that did
	// not exist), removed when empty.
	HostDirs []string `json:"hostDirs"`
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

// loadState reads <dir>/state.json.
func loadState(dir string) (*state, error) {
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
	return s, nil
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
