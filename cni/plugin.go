package cni

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/link/ifname"
)

// Versions are the CNI spec versions a network configuration may declare.
var Versions = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

// About is what the plugin prints when run without CNI_COMMAND.
const About = "taprouter CNI plugin: attaches pods to the node's taprouterd"

// Funcs are the plugin's commands, for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: Add, Del: Del, Check: Check, Status: Status, GC: GC}
}

const (
	// commandTimeout bounds one command, its IPAM and daemon calls included.
	commandTimeout = 60 * time.Second
	// undoTimeout bounds each step of a failed ADD's rollback, which may
	// run after the command's own deadline has passed.
	undoTimeout = 20 * time.Second
)

// Add attaches the pod in args.Netns: an address from the IPAM plugin, then
// a port from taprouterd (with the rate limits of runtimeConfig.bandwidth,
// which the router enforces), then the result on stdout. If a step after
// IPAM ADD fails, what was done is undone, so that a failed ADD leaves no
// TAP, FIB entry or lease behind.
func Add(args *skel.CmdArgs) (err error) {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	bandwidth, err := conf.bandwidth()
	if err != nil {
		return err
	}
	if err := ifname.Check(args.IfName); err != nil {
		// Before the IPAM: taprouterd would refuse it, as the kernel
		// would rename it ("eth%d") or refuse it.
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME: "+err.Error(), "")
	}
	if own, nsErr := ns.CheckNetNS(args.Netns); nsErr != nil {
		return nsErr
	} else if own {
		return types.NewError(types.ErrInvalidNetNS, "CNI_NETNS "+args.Netns+" is the node's own network namespace, not a pod's", "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()

	ipamConf, err := ipamStdin(ctx, conf, args.StdinData)
	if err != nil {
		return err
	}
	ipamResult, err := invoke.DelegateAdd(ctx, conf.IPAM.Type, ipamConf, nil)
	if err != nil {
		return ipamError(conf, "ADD", err, types.ErrInternal)
	}
	defer func() {
		if err != nil {
			err = undo(err, "release the address (ipam "+conf.IPAM.Type+" DEL)", func(ctx context.Context) error {
				return invoke.DelegateDel(ctx, conf.IPAM.Type, ipamConf, nil)
			})
		}
	}()
	ip, dns, err := podAddress(conf, ipamResult)
	if err != nil {
		return err
	}

	daemon := api.NewClient(conf.Socket)
	att := api.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	port, addErr := daemon.AddPort(ctx, api.PortRequest{
		ContainerID: args.ContainerID, IfName: args.IfName, NetNS: args.Netns, IP: ip.String(), MTU: conf.MTU,
		Bandwidth: bandwidth,
	})
	if addErr == nil || outcomeUnknown(addErr) {
		defer func() {
			if err != nil {
				err = undo(err, "remove the port from taprouterd", func(ctx context.Context) error {
					return daemon.RemovePort(ctx, att)
				})
			}
		}()
	}
	if addErr != nil {
		return daemonError(conf, "add the port", addErr)
	}
	result, err := newResult(conf, args, ip, dns, port)
	if err != nil {
		return err
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// podAddress returns the one IPv4 address the IPAM plugin gave the pod.
func podAddress(conf *NetConf, r types.Result) (net.IP, types.DNS, error) {
	res, err := current.NewResultFromResult(r)
	if err != nil {
		return nil, types.DNS{}, ipamError(conf, "ADD", fmt.Errorf("unusable result: %w", err), types.ErrInternal)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.IP.To4() == nil {
		addrs := make([]string, len(res.IPs))
		for i, ipc := range res.IPs {
			addrs[i] = ipc.Address.String()
		}
		return nil, types.DNS{}, invalidConf("ipam", "%s returned [%s]; taprouter gives each pod exactly one IPv4 address, so give it one IPv4 range",
			conf.IPAM.Type, strings.Join(addrs, " "))
	}
	return res.IPs[0].Address.IP.To4(), res.DNS, nil
}

// newResult describes the pod's port as the daemon set it up: eth0 with
// its MAC (and MTU, a field spec 1.1.0 added), the address as a /32 with the
// node's gateway, and the default route via the gateway. The IPAM plugin's
// gateway and routes are not used: the daemon installs only these routes.
func newResult(conf *NetConf, args *skel.CmdArgs, ip net.IP, dns types.DNS, port api.Port) (*current.Result, error) {
	gw := net.ParseIP(port.Gateway).To4()
	if gw == nil {
		return nil, fmt.Errorf("taprouterd answered gateway %q for %s, not an IPv4 address", port.Gateway, args.IfName)
	}
	iface := &current.Interface{Name: args.IfName, Mac: port.MAC, Sandbox: args.Netns}
	if conf.atLeast("1.1.0") {
		iface.Mtu = port.MTU
	}
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{iface},
		IPs: []*current.IPConfig{{
			Interface: current.Int(0),
			Address:   net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)},
			Gateway:   gw,
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw}},
		DNS:    dns,
	}, nil
}

// Del detaches the pod: the daemon removes its port, then the IPAM plugin
// releases its address. Both steps succeed when there is nothing to remove
// (unknown container, netns gone, second DEL). If the daemon cannot be
// reached, the address is kept, so that it is not given to another pod
// while the port still holds it, and the runtime is told to retry.
func Del(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	att := api.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	if err := api.NewClient(conf.Socket).RemovePort(ctx, att); err != nil {
		return daemonError(conf, "remove the port", err)
	}
	ipamConf, err := ipamStdin(ctx, conf, args.StdinData)
	if err != nil {
		return err
	}
	if err := invoke.DelegateDel(ctx, conf.IPAM.Type, ipamConf, nil); err != nil {
		return ipamError(conf, "DEL", err, types.ErrInternal)
	}
	return nil
}

// Check verifies the pod against prevResult (the result of its ADD): the
// IPAM plugin's lease, the daemon's port (address, MAC, netns, MTU,
// gateway, and its rate limits against runtimeConfig.bandwidth) and the
// daemon's own check of the pod's eth0 (device, address, routes, MTU). The
// error lists every difference.
func Check(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := conf.parsePrevResult(); err != nil {
		return err
	}
	bandwidth, err := conf.bandwidth()
	if err != nil {
		return err
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return invalidConf("prevResult", "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()

	daemon := api.NewClient(conf.Socket)
	att := api.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	port, err := daemon.GetPort(ctx, att)
	if err != nil {
		return daemonError(conf, "look up the port", err)
	}
	problems := append(comparePort(prev, args, port), compareBandwidth(bandwidth, port.Bandwidth)...)
	check, err := daemon.CheckPort(ctx, att)
	if err != nil {
		return daemonError(conf, "check the port", err)
	}
	problems = append(problems, check.Problems...)
	if !check.OK && len(check.Problems) == 0 {
		problems = append(problems, "taprouterd reports the port as not OK without saying why")
	}
	if ipamConf, err := ipamStdin(ctx, conf, args.StdinData); err != nil {
		problems = append(problems, err.Error())
	} else if err := invoke.DelegateCheck(ctx, conf.IPAM.Type, ipamConf, nil); err != nil {
		problems = append(problems, ipamError(conf, "CHECK", err, types.ErrInternal).Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("CHECK %s of container %s: %s", args.IfName, args.ContainerID, strings.Join(problems, "; "))
	}
	return nil
}

// comparePort lists where prevResult and the daemon's port disagree.
func comparePort(prev *current.Result, args *skel.CmdArgs, port api.Port) []string {
	idx := -1
	for i, iface := range prev.Interfaces {
		if iface.Name == args.IfName && iface.Sandbox == args.Netns {
			idx = i
		}
	}
	if idx < 0 {
		return []string{fmt.Sprintf("prevResult has no interface %s in sandbox %s", args.IfName, args.Netns)}
	}
	var problems []string
	differ := func(what, inDaemon, inPrev string) {
		problems = append(problems, fmt.Sprintf("%s is %s in taprouterd but %s in prevResult", what, inDaemon, inPrev))
	}
	iface := prev.Interfaces[idx]
	if port.NetNS != args.Netns {
		problems = append(problems, fmt.Sprintf("taprouterd has the port in netns %s, not %s", port.NetNS, args.Netns))
	}
	if !strings.EqualFold(iface.Mac, port.MAC) {
		differ(args.IfName+" MAC", port.MAC, iface.Mac)
	}
	if iface.Mtu != 0 && iface.Mtu != port.MTU {
		differ(args.IfName+" MTU", fmt.Sprint(port.MTU), fmt.Sprint(iface.Mtu))
	}
	var ips []*current.IPConfig
	for _, ipc := range prev.IPs {
		if ipc.Interface == nil || *ipc.Interface == idx {
			ips = append(ips, ipc)
		}
	}
	if len(ips) != 1 {
		problems = append(problems, fmt.Sprintf("prevResult gives %s %d addresses, taprouterd one (%s/32)", args.IfName, len(ips), port.IP))
		return problems
	}
	if addr := ips[0].Address.String(); addr != port.IP+"/32" {
		differ(args.IfName+" address", port.IP+"/32", addr)
	}
	if gw := ips[0].Gateway.String(); gw != port.Gateway {
		differ("the gateway", port.Gateway, gw)
	}
	return problems
}

// Status reports whether the plugin can serve ADD: taprouterd answers on
// its socket and the IPAM plugin is ready. Anything else is error 50.
func Status(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	if _, err := api.NewClient(conf.Socket).Status(ctx); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "taprouterd is not available: "+err.Error(), "")
	}
	ipamConf, err := ipamStdin(ctx, conf, args.StdinData)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if err := invoke.DelegateStatus(ctx, conf.IPAM.Type, ipamConf, nil); err != nil {
		return ipamError(conf, "STATUS", err, types.ErrPluginNotAvailable)
	}
	return nil
}

// GC removes what belongs to attachments missing from the configuration's
// cni.dev/valid-attachments: the daemon removes their ports (never the ports
// of its config file) and says which; the IPAM plugin then releases each of
// their addresses, and runs its own GC.
func GC(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	valid := make([]api.Attachment, len(conf.ValidAttachments))
	for i, a := range conf.ValidAttachments {
		valid[i] = api.Attachment{ContainerID: a.ContainerID, IfName: a.IfName}
	}
	gc, err := api.NewClient(conf.Socket).GC(ctx, api.GCRequest{Valid: valid})
	if err != nil {
		return daemonError(conf, "collect stale ports", err)
	}
	ipamPath, err := invoke.FindInPath(conf.IPAM.Type, filepath.SplitList(args.Path))
	if err != nil {
		return ipamError(conf, "GC", err, types.ErrInternal)
	}
	ipamConf, err := ipamStdin(ctx, conf, args.StdinData)
	if err != nil {
		return err
	}
	failed := gc.Errors // ports the daemon removed only in part
	for _, a := range gc.Removed {
		del := &invoke.Args{Command: "DEL", ContainerID: a.ContainerID, IfName: a.IfName, Path: args.Path}
		if err := invoke.ExecPluginWithoutResult(ctx, ipamPath, ipamConf, del, nil); err != nil {
			failed = append(failed, fmt.Sprintf("releasing the address of %s %s: %v", a.ContainerID, a.IfName, err))
		}
	}
	if err := invoke.DelegateGC(ctx, conf.IPAM.Type, ipamConf, nil); err != nil {
		failed = append(failed, err.Error())
	}
	if len(failed) > 0 {
		return fmt.Errorf("GC: taprouterd removed %d stale ports, but ipam %s: %s", len(gc.Removed), conf.IPAM.Type, strings.Join(failed, "; "))
	}
	return nil
}
