package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/podnet"
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
// TAP is adopted (it keeps its IP and MAC). Every entry must pass the rules
// of an API request (validate, and no two ports with one address or one
// pod interface, netns and ifName, the netns compared by path here and by
// identity once opened, as attach does); one that
// does not, or that cannot be read, is dropped and logged, as is one whose
// network namespace is gone; the other entries are restored all the same.
// One that fails to attach otherwise (its namespace did not open in time,
// say) stays on record, unattached. The namespaces are opened concurrently,
// under one timeout. Only a file that is not a state file of this node at
// all is an error.
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
	entries, err := d.loadState(b)
	if err != nil {
		return fmt.Errorf("%s: %w", d.statePath(), err)
	}
	dropped := len(entries.dropped)
	// All namespaces at once, under one deadline: hung ones delay the
	// start (and the API) by one timeout, however many there are.
	paths := make([]string, len(entries.ports))
	for i, p := range entries.ports {
		paths[i] = p.NetNS
	}
	namespaces, errs := d.openAll(paths)
	for i, p := range entries.ports {
		log := d.log.With(zap.String("containerID", p.ContainerID), zap.String("ifName", p.IfName), zap.String("netns", p.NetNS))
		ns, err := namespaces[i], errs[i]
		switch {
		case nsGone(err):
			log.Info("stale port: its network namespace is gone; removed", zap.Error(err))
			dropped++
			continue
		case errors.Is(err, podnet.ErrNodeNetNS):
			log.Error("state entry dropped: its netns is not a pod's", zap.Error(err))
			dropped++
			continue
		case err == nil:
			err = d.attach(p, ns)
			ns.Close()
			if errors.Is(err, errIfaceTaken) { // by another path to one namespace
				log.Error("state entry dropped: a second port for one pod interface", zap.Error(err))
				dropped++
				continue
			}
		}
		if err != nil {
			// Kept on record: a retried ADD or DEL of the pod tries again,
			// and GC still sees it.
			log.Error("could not re-attach the pod; kept on record, not attached", zap.Error(err))
			d.ports[p.Name] = p
			continue
		}
		log.Info("pod re-attached", zap.Stringer("ip", p.IP), zap.Stringer("mac", p.iface.MAC))
	}
	if dropped > 0 {
		return d.save()
	}
	return nil
}

// stateEntries is what loadState makes of a state file.
type stateEntries struct {
	ports   []*port // valid, in file order, no two with one name, address or netns path and ifName
	dropped []error // why each other entry was dropped
}

// loadState decodes a state file and validates each entry as an API
// request; an entry that fails is logged and dropped, alone. Ports already
// attached (the config file's) keep their addresses.
func (d *Daemon) loadState(b []byte) (stateEntries, error) {
	var st struct {
		Version int               `json:"version"`
		Node    string            `json:"node"`
		Ports   []json.RawMessage `json:"ports"`
	}
	var res stateEntries
	if err := json.Unmarshal(b, &st); err != nil {
		return res, err
	}
	if st.Version != stateVersion {
		return res, fmt.Errorf("state version %d, this taprouterd reads %d", st.Version, stateVersion)
	}
	if st.Node != d.cfg.Node {
		return res, fmt.Errorf("state of node %q, this is node %q", st.Node, d.cfg.Node)
	}
	type iface struct{ netns, ifName string }
	names, ips, ifaces := map[string]bool{}, map[netip.Addr]bool{}, map[iface]string{}
	for _, p := range d.ports {
		names[p.Name], ips[p.IP], ifaces[iface{p.NetNS, p.IfName}] = true, true, p.Name
	}
	for i, raw := range st.Ports {
		p, err := d.stateEntry(raw)
		switch {
		case err != nil:
		case names[p.Name]:
			err = fmt.Errorf("a second entry for %s", p.Name)
		case ips[p.IP]:
			err = fmt.Errorf("ip: %s is in use by another port", p.IP)
		case ifaces[iface{p.NetNS, p.IfName}] != "":
			err = fmt.Errorf("%s in netns %s %w, %s", p.IfName, p.NetNS, errIfaceTaken, ifaces[iface{p.NetNS, p.IfName}])
		}
		if err != nil {
			err = fmt.Errorf("ports[%d]: %w", i, err)
			d.log.Error("state entry dropped: not valid as an API request", zap.Error(err), zap.ByteString("entry", raw))
			res.dropped = append(res.dropped, err)
			continue
		}
		names[p.Name], ips[p.IP], ifaces[iface{p.NetNS, p.IfName}] = true, true, p.Name
		res.ports = append(res.ports, p)
	}
	return res, nil
}

// stateEntry decodes one entry of the state file and checks it as validate
// checks an API request. Unlike a request, an entry may have fields this
// taprouterd does not know: a newer one wrote them, and rolling back must
// not drop the node's pods; they are ignored (and gone at the next save).
func (d *Daemon) stateEntry(raw json.RawMessage) (*port, error) {
	var rec port
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	req := api.PortRequest{ContainerID: rec.ContainerID, IfName: rec.IfName, NetNS: rec.NetNS, MTU: rec.MTU, Bandwidth: rec.Bandwidth}
	if rec.IP.IsValid() {
		req.IP = rec.IP.String()
	}
	p, err := d.validate(req)
	if err != nil {
		return nil, err
	}
	if rec.Name != p.Name {
		return nil, fmt.Errorf("name: %q, want %q (containerID/ifName)", rec.Name, p.Name)
	}
	return p, nil
}
