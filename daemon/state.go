package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
)

// stateVersion is the state file's format; a file of another version is
// refused rather than misread.
const stateVersion = 1

type stateFile struct {
	Version int     `json:"version"`
	Node    string  `json:"node"`
	Ports   []*port `json:"ports"`
}

func (d *Daemon) statePath() string { return filepath.Join(d.opts.StateDir, "ports.json") }

// save writes the ports added through the API, atomically: a new file is
// written, synced and renamed over the old one.
func (d *Daemon) save() error {
	st := stateFile{Version: stateVersion, Node: d.cfg.Node, Ports: []*port{}}
	for _, p := range d.ports {
		if p.ContainerID != "" {
			st.Ports = append(st.Ports, p)
		}
	}
	slices.SortFunc(st.Ports, func(a, b *port) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.opts.StateDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.opts.StateDir, ".ports-*.json")
	if err != nil {
		return err
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.statePath())
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", d.statePath(), err)
	}
	if dir, err := os.Open(d.opts.StateDir); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// restore re-attaches the ports of the state file: each pod's persistent
// TAP is adopted (it keeps its IP and MAC). A port whose network namespace
// is gone is dropped, as is one that no longer fits the config; one that
// fails to attach otherwise stays on record, unattached.
func (d *Daemon) restore() error {
	// Temporary files of a save that a crash interrupted.
	if stale, _ := filepath.Glob(filepath.Join(d.opts.StateDir, ".ports-*.json")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	b, err := os.ReadFile(d.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", d.statePath(), err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("%s: state version %d, this taprouterd reads %d", d.statePath(), st.Version, stateVersion)
	}
	if st.Node != d.cfg.Node {
		return fmt.Errorf("%s: state of node %q, this is node %q", d.statePath(), st.Node, d.cfg.Node)
	}
	dropped := 0
	for _, p := range st.Ports {
		log := d.log.With(zap.String("containerID", p.ContainerID), zap.String("ifName", p.IfName), zap.String("netns", p.NetNS))
		if _, err := os.Stat(p.NetNS); err != nil {
			log.Info("stale port: its network namespace is gone; removed")
			dropped++
			continue
		}
		if !d.cfg.PodCIDR.Contains(p.IP) || d.ports[p.Name] != nil {
			log.Warn("stale port: its address no longer fits the config; removed", zap.Stringer("ip", p.IP))
			dropped++
			continue
		}
		if err := d.attach(p); err != nil {
			// Kept on record: a retried ADD or DEL of the pod tries again,
			// and GC still sees it.
			log.Error("could not re-attach the pod; kept on record, not attached", zap.Error(err))
			d.ports[p.Name] = p
			continue
		}
		log.Info("pod re-attached", zap.Stringer("ip", p.IP), zap.Stringer("mac", p.MAC))
	}
	if dropped > 0 {
		return d.save()
	}
	return nil
}
