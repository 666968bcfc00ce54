package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
	"github.com/taprouter/taprouter/fib"
	"github.com/taprouter/taprouter/link/ifname"
	"github.com/taprouter/taprouter/link/tap"
	"github.com/taprouter/taprouter/podnet"
	"github.com/taprouter/taprouter/router"
)

// port is a pod port the daemon manages: one from the config file, or one a
// CNI plugin added through the API (ContainerID set; these are persisted).
type port struct {
	Name        string         `json:"name"`
	ContainerID string         `json:"containerID,omitempty"`
	IfName      string         `json:"ifName"`
	NetNS       string         `json:"netns"`
	IP          netip.Addr     `json:"ip"`
	MTU         int            `json:"mtu,omitempty"` // 0: the node's pod MTU
	Bandwidth   *api.Bandwidth `json:"bandwidth,omitempty"`
	// nsID is the namespace's identity once it was opened (zero before):
	// no two ports have one interface, (nsID, IfName). iface is the pod's
	// TAP once this run attached the port: detach deletes that device, not
	// whatever is called IfName.
	nsID  podnet.NSID
	iface podnet.Iface
	// attached says the router has the port. A recorded port may be
	// unattached: re-attaching it after a restart failed, or removing its
	// eth0 from the pod did; a retried ADD or DEL tries again.
	attached bool
}

// errIfaceTaken: another port has the pod interface a port asks for.
var errIfaceTaken = errors.New("is the interface of another port")

// ifaceOwner returns the other port whose interface is p's: IfName in the
// namespace id. A port whose namespace was never opened (it timed out at a
// restart) is compared by path.
func (d *Daemon) ifaceOwner(p *port, id podnet.NSID) *port {
	for _, q := range d.ports {
		if q == p || q.Name == p.Name || q.IfName != p.IfName {
			continue
		}
		if q.nsID == id || q.nsID == (podnet.NSID{}) && q.NetNS == p.NetNS {
			return q
		}
	}
	return nil
}

func (p *port) attachment() api.Attachment {
	return api.Attachment{ContainerID: p.ContainerID, IfName: p.IfName}
}

// portName is the router's name for a port added through the API.
func portName(a api.Attachment) string { return a.ContainerID + "/" + a.IfName }

func (d *Daemon) pod(p *port) podnet.Pod {
	mtu := d.podMTU
	if p.MTU != 0 {
		mtu = p.MTU
	}
	return podnet.Pod{NetNS: p.NetNS, IfName: p.IfName, IP: p.IP, Gateway: d.cfg.Gateway, MTU: mtu, Offload: !d.opts.NoTAPOffload}
}

// attach gives the pod its eth0 — the persistent TAP an earlier run left,
// adopted, or a new one — and adds the port to the router. ns is the pod's
// namespace, which the caller opened with openNetNS. An interface that is
// another port's is refused (errIfaceTaken) before anything is done.
func (d *Daemon) attach(p *port, ns *os.File) error {
	id, err := podnet.NetNSID(ns)
	if err != nil {
		return err
	}
	if q := d.ifaceOwner(p, id); q != nil {
		return fmt.Errorf("%s in netns %s %w, %s (netns %s)", p.IfName, p.NetNS, errIfaceTaken, q.Name, q.NetNS)
	}
	p.nsID = id
	pod := d.pod(p)
	pod.NS = ns
	dev, iface, err := podnet.AdoptPod(pod)
	adopted := err == nil
	if errors.Is(err, podnet.ErrNoPort) {
		dev, iface, err = podnet.AttachPod(pod)
	}
	if err != nil {
		return err
	}
	if _, err := d.router.AddPodPort(p.Name, dev, p.IP, iface.MAC, pod.MTU); err != nil {
		dev.Close()
		if !adopted {
			podnet.DetachPod(pod, iface)
		}
		return err
	}
	if bw := p.Bandwidth; bw != nil {
		d.router.SetBandwidth(p.Name, router.Bandwidth{IngressRate: bw.IngressRate, IngressBurst: bw.IngressBurst, EgressRate: bw.EgressRate, EgressBurst: bw.EgressBurst})
	}
	p.iface, p.attached = iface, true
	d.ports[p.Name] = p
	if want := tap.OffloadChecksum | tap.OffloadTSO4; pod.Offload && dev.Offloads()&want != want {
		d.log.Warn("the kernel refused some TAP offloads; the pod sends smaller frames", zap.String("port", p.Name), zap.Stringer("offloads", dev.Offloads()))
	}
	if adopted {
		d.log.Info("adopted the pod's existing interface", zap.String("port", p.Name), zap.String("netns", p.NetNS), zap.Stringer("mac", iface.MAC))
	}
	return nil
}

// detach removes a port from the router and its eth0 from the pod, whose
// namespace ns the caller opened with openNetNS; nil if it is gone. Only
// the port's own device is deleted (podnet.DetachPod): none if the path
// names another namespace than the port's now, or if another port has the
// interface; what is left is logged. The record goes only when both are
// done, so that a failure can be retried.
func (d *Daemon) detach(p *port, ns *os.File) error {
	if p.attached {
		p.attached = false
		if err := d.router.RemovePort(p.Name); err != nil {
			d.log.Warn("removing the router's port", zap.String("port", p.Name), zap.Error(err))
		}
	}
	if ns != nil {
		id, err := podnet.NetNSID(ns)
		if err != nil {
			return err
		}
		log := d.log.With(zap.String("port", p.Name), zap.String("netns", p.NetNS), zap.String("ifName", p.IfName))
		pod := d.pod(p)
		pod.NS = ns
		switch q := d.ifaceOwner(p, id); {
		case p.nsID != (podnet.NSID{}) && p.nsID != id:
			log.Warn("the netns path names another namespace now (the port's went with its TAP): nothing deleted")
		case q != nil:
			log.Warn("the pod interface is another port's: left in place", zap.String("owner", q.Name))
		default:
			err := podnet.DetachPod(pod, p.iface)
			if errors.Is(err, podnet.ErrNotOwned) {
				log.Warn("the pod interface is not this port's: left in place", zap.Error(err))
			} else if err != nil {
				return err
			}
		}
	}
	delete(d.ports, p.Name)
	return nil
}

// attachError classifies an attach failure for the API.
func attachError(err error) error {
	if errors.Is(err, errIfaceTaken) {
		return api.Conflict("ifName", err.Error())
	}
	if errors.Is(err, podnet.ErrNotTAP) {
		return api.Conflict("ifName", "the pod has an interface of that name that taprouter did not make: "+err.Error())
	}
	return &api.Error{Message: "attaching the pod: " + err.Error(), Code: api.CodeInternal}
}

// AddPort implements api.Backend. The pod's namespace is opened before
// d.mu is taken, with a timeout: a path that never opens blocks neither the
// other requests nor Close.
func (d *Daemon) AddPort(req api.PortRequest) (api.Port, bool, error) {
	p, err := d.validate(req)
	if err != nil {
		return api.Port{}, false, err
	}
	ns, err := d.openNetNS(p.NetNS)
	if err != nil {
		return api.Port{}, false, netnsError(p.NetNS, err)
	}
	defer ns.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return api.Port{}, false, api.Unavailable("taprouterd is shutting down")
	}
	if old, ok := d.ports[p.Name]; ok {
		if old.NetNS == p.NetNS && old.IP == p.IP && old.MTU == p.MTU && sameBandwidth(old.Bandwidth, p.Bandwidth) {
			if !old.attached { // a retried ADD after a failure: try again
				if err := d.attach(old, ns); err != nil {
					return api.Port{}, false, attachError(err)
				}
			}
			return d.apiPort(old), false, nil // a retried ADD
		}
		return api.Port{}, false, api.Conflict("containerID", fmt.Sprintf("%s/%s is attached already with netns %s and ip %s", p.ContainerID, p.IfName, old.NetNS, old.IP))
	}
	if err := d.ipTaken(p); err != nil {
		return api.Port{}, false, err
	}
	if err := d.attach(p, ns); err != nil {
		return api.Port{}, false, attachError(err)
	}
	if err := d.save(); err != nil {
		d.detach(p, ns)
		return api.Port{}, false, &api.Error{Message: "saving the state: " + err.Error(), Code: api.CodeInternal}
	}
	d.log.Info("pod attached", zap.String("containerID", p.ContainerID), zap.String("ifName", p.IfName), zap.String("netns", p.NetNS), zap.Stringer("ip", p.IP))
	return d.apiPort(p), true, nil
}

// ipTaken returns a conflict if another port has p's address.
func (d *Daemon) ipTaken(p *port) error {
	for _, other := range d.ports {
		if other.IP == p.IP && other.Name != p.Name {
			return api.Conflict("ip", fmt.Sprintf("%s is in use by %s", p.IP, other.Name))
		}
	}
	return nil
}

// validate checks a request by rules that need nothing but the config, so
// that it can run without d.mu; the state file's entries pass it too. The
// netns path is checked by openNetNS.
func (d *Daemon) validate(req api.PortRequest) (*port, error) {
	switch {
	case req.ContainerID == "" || strings.Contains(req.ContainerID, "/"):
		return nil, api.Invalid("containerID", fmt.Sprintf("%q: want a non-empty ID without \"/\"", req.ContainerID))
	}
	if err := ifname.Check(req.IfName); err != nil {
		return nil, api.Invalid("ifName", err.Error())
	}
	switch {
	case req.NetNS == "":
		return nil, api.Invalid("netns", "missing")
	case req.MTU != 0 && (req.MTU < config.MinPodMTU || req.MTU > config.MaxPodMTU):
		return nil, api.Invalid("mtu", fmt.Sprintf("%d out of range %d..%d", req.MTU, config.MinPodMTU, config.MaxPodMTU))
	}
	ip, err := netip.ParseAddr(req.IP)
	switch {
	case err != nil || !ip.Is4():
		return nil, api.Invalid("ip", fmt.Sprintf("%q is not an IPv4 address", req.IP))
	case !d.cfg.PodCIDR.Contains(ip):
		return nil, api.Invalid("ip", fmt.Sprintf("%s is outside podCIDR %s", ip, d.cfg.PodCIDR))
	case ip == d.cfg.Gateway || ip == d.cfg.PodCIDR.Addr():
		return nil, api.Invalid("ip", fmt.Sprintf("%s is the gateway or the network address", ip))
	}
	if b, ok := config.Broadcast(d.cfg.PodCIDR); ok && ip == b {
		return nil, api.Invalid("ip", fmt.Sprintf("%s is the broadcast address of podCIDR %s", ip, d.cfg.PodCIDR))
	}
	if bw := req.Bandwidth; bw != nil {
		if (bw.IngressRate == 0) != (bw.IngressBurst == 0) || (bw.EgressRate == 0) != (bw.EgressBurst == 0) {
			return nil, api.Invalid("bandwidth", "a rate needs a burst and a burst a rate")
		}
		if bw.IngressBurst > maxBurst || bw.EgressBurst > maxBurst {
			return nil, api.Invalid("bandwidth", fmt.Sprintf("a burst may be at most %d bits (4 GB), as for the bandwidth plugin", uint64(maxBurst)))
		}
		if *bw == (api.Bandwidth{}) {
			req.Bandwidth = nil
		}
	}
	a := api.Attachment{ContainerID: req.ContainerID, IfName: req.IfName}
	return &port{Name: portName(a), ContainerID: req.ContainerID, IfName: req.IfName, NetNS: req.NetNS, IP: ip, MTU: req.MTU, Bandwidth: req.Bandwidth}, nil
}

// maxBurst is the bandwidth plugin's largest burst, in bits.
const maxBurst = 34359738359

func sameBandwidth(a, b *api.Bandwidth) bool {
	return a == b || a != nil && b != nil && *a == *b
}

func (d *Daemon) apiPort(p *port) api.Port {
	return api.Port{ContainerID: p.ContainerID, IfName: p.IfName, NetNS: p.NetNS, IP: p.IP.String(), MAC: p.iface.MAC.String(),
		MTU: d.pod(p).MTU, Gateway: d.cfg.Gateway.String(), Name: p.Name, Bandwidth: p.Bandwidth}
}

// GetPort implements api.Backend.
func (d *Daemon) GetPort(a api.Attachment) (api.Port, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.ports[portName(a)]
	if !ok {
		return api.Port{}, api.NotFound(fmt.Sprintf("no port for container %s interface %s", a.ContainerID, a.IfName))
	}
	return d.apiPort(p), nil
}

// CheckPort implements api.Backend: the pod's interface as podnet sees it,
// and the router's port (present and up) and route for it.
func (d *Daemon) CheckPort(a api.Attachment) (api.CheckResult, error) {
	d.mu.Lock()
	rec, ok := d.ports[portName(a)]
	var p port
	if ok {
		p = *rec
	}
	d.mu.Unlock()
	if !ok {
		return api.CheckResult{}, api.NotFound(fmt.Sprintf("no port for container %s interface %s", a.ContainerID, a.IfName))
	}
	if !p.attached {
		return api.CheckResult{Problems: []string{fmt.Sprintf("%s is recorded but not attached to the router (attaching it failed; a retried ADD tries again)", p.Name)}}, nil
	}
	ns, err := d.openNetNS(p.NetNS)
	if err != nil {
		return api.CheckResult{Problems: []string{fmt.Sprintf("network namespace: %v", err)}}, nil
	}
	defer ns.Close()
	pod := d.pod(&p)
	pod.NS = ns
	problems := append(podnet.CheckPod(pod, p.iface.MAC), d.routerProblems(&p)...)
	return api.CheckResult{OK: len(problems) == 0, Problems: problems}, nil
}

// routerProblems is what CheckPort finds wrong with the router's side of a
// port: no port, a port that is down (its device failed), or a route for
// the pod's address elsewhere.
func (d *Daemon) routerProblems(p *port) []string {
	rp, ok := d.router.Port(p.Name)
	if !ok {
		return []string{fmt.Sprintf("the router has no port %s", p.Name)}
	}
	var problems []string
	for _, info := range d.router.Ports() {
		if info.ID == rp.ID && info.Down {
			problems = append(problems, fmt.Sprintf("the router's port %s is down: %s", p.Name, info.DownReason))
		}
	}
	if nh, _ := d.router.FIB().Lookup(p.IP); nh.Kind != fib.Local || nh.Port != rp.ID {
		problems = append(problems, fmt.Sprintf("the router routes %s to %s, want port %s", p.IP, d.describe(nh), p.Name))
	}
	return problems
}

// openForDetach opens a recorded port's namespace, without d.mu held; nil
// and no error if it is gone.
func (d *Daemon) openForDetach(p *port) (*os.File, error) {
	ns, err := d.openNetNS(p.NetNS)
	if nsGone(err) {
		return nil, nil
	}
	return ns, err
}

// RemovePort implements api.Backend; removing an unknown port is no error.
func (d *Daemon) RemovePort(a api.Attachment) error {
	name := portName(a)
	for {
		d.mu.Lock()
		p, ok := d.ports[name]
		d.mu.Unlock()
		if !ok {
			return nil
		}
		ns, err := d.openForDetach(p)
		if nsUnavailable(err) {
			return api.Unavailable("detaching the pod: netns: " + err.Error())
		}
		if err != nil {
			return &api.Error{Message: "detaching the pod: " + err.Error(), Code: api.CodeInternal}
		}
		done, err := d.removeLocked(name, p, ns)
		if ns != nil {
			ns.Close()
		}
		if done {
			return err
		}
		// The record changed while the namespace was being opened: again.
	}
}

func (d *Daemon) removeLocked(name string, p *port, ns *os.File) (done bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ports[name] != p {
		return false, nil
	}
	if d.closing {
		return true, api.Unavailable("taprouterd is shutting down")
	}
	err = d.detach(p, ns)
	if serr := d.save(); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return true, &api.Error{Message: "detaching the pod: " + err.Error(), Code: api.CodeInternal}
	}
	d.log.Info("pod detached", zap.String("containerID", p.ContainerID), zap.String("ifName", p.IfName))
	return true, nil
}

// GC implements api.Backend: ports added through the API and not listed as
// valid are removed. Ports from the config file are never collected. A port
// that could not be removed is reported under Errors, not Removed: its
// address must not be released while the pod may still use it. Each pod's
// namespace is opened without d.mu held.
func (d *Daemon) GC(req api.GCRequest) api.GCResult {
	valid := map[string]bool{}
	for _, a := range req.Valid {
		valid[portName(a)] = true
	}
	d.mu.Lock()
	var doomed []*port
	for name, p := range d.ports {
		if p.ContainerID != "" && !valid[name] {
			doomed = append(doomed, p)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(doomed, func(a, b *port) int { return strings.Compare(a.Name, b.Name) })
	var res api.GCResult
	for _, p := range doomed {
		ns, err := d.openForDetach(p)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", p.Name, err))
			continue
		}
		d.mu.Lock()
		if d.ports[p.Name] == p { // not removed or replaced meanwhile
			if err := d.detach(p, ns); err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", p.Name, err))
				// still recorded: its address must not be released yet
			} else {
				res.Removed = append(res.Removed, p.attachment())
				d.log.Info("pod collected", zap.String("containerID", p.ContainerID), zap.String("ifName", p.IfName))
			}
		}
		d.mu.Unlock()
		if ns != nil {
			ns.Close()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.save(); err != nil {
		res.Errors = append(res.Errors, "saving the state: "+err.Error())
	}
	return res
}

// Status implements api.Backend.
func (d *Daemon) Status() api.Status {
	d.mu.Lock()
	n := 0
	for _, p := range d.ports {
		if p.attached {
			n++
		}
	}
	d.mu.Unlock()
	return api.Status{Node: d.cfg.Node, PodCIDR: d.cfg.PodCIDR.String(), Gateway: d.cfg.Gateway.String(), MTU: d.podMTU, Backend: d.cfg.Backend, Ports: n}
}

// Stats implements api.Backend: the router's counters and the daemon's own
// goroutines and open file descriptors (for leak checks).
func (d *Daemon) Stats() map[string]uint64 {
	m := d.router.Stats()
	m["goroutines"] = uint64(runtime.NumGoroutine())
	if d.masq != nil {
		m["masquerade_repairs"] = d.masq.Repairs()
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		m["open_fds"] = uint64(len(fds))
	}
	return m
}
