package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/taprouter/taprouter/api"
)

// UsePodCIDR, as an IPAM subnet ("ipam": {"ranges": [[{"subnet":
// "usePodCidr"}]]}, or "ipam": {"subnet": "usePodCidr"}), stands for the
// node's pod CIDR, which the plugin asks the node's taprouterd for (GET
// /v1/status) and puts in its place before it runs the IPAM plugin: one
// network configuration for every node, as the DaemonSet installs it. The
// keyword is Calico's and kubenet's for the same thing.
const UsePodCIDR = "usePodCidr"

// ipamStdin returns the network configuration to give the IPAM plugin:
// stdin itself, unchanged, unless an IPAM subnet is UsePodCIDR; then stdin
// with every such subnet replaced by the node's pod CIDR. A daemon that
// cannot be asked, or does not know its pod CIDR yet, is a CNI error 11
// (try again later).
func ipamStdin(ctx context.Context, conf *NetConf, stdin []byte) ([]byte, error) {
	if !bytes.Contains(stdin, []byte(UsePodCIDR)) {
		return stdin, nil
	}
	dec := json.NewDecoder(bytes.NewReader(stdin))
	dec.UseNumber() // every other value passes through as it was
	var doc map[string]any
	err := dec.Decode(&doc)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF { // one JSON value, as loadConf's json.Unmarshal wants
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "network configuration: "+err.Error(), "")
	}
	ipam, _ := doc["ipam"].(map[string]any)
	var subnets []map[string]any // the objects whose "subnet" is UsePodCIDR
	if ipam["subnet"] == UsePodCIDR {
		subnets = append(subnets, ipam)
	}
	ranges, _ := ipam["ranges"].([]any)
	for _, rs := range ranges {
		set, _ := rs.([]any)
		for _, r := range set {
			if m, ok := r.(map[string]any); ok && m["subnet"] == UsePodCIDR {
				subnets = append(subnets, m)
			}
		}
	}
	if len(subnets) == 0 {
		return stdin, nil
	}
	status, err := api.NewClient(conf.Socket).Status(ctx)
	if err != nil {
		return nil, daemonError(conf, "tell the node's pod CIDR (ipam subnet "+UsePodCIDR+")", err)
	}
	cidr, err := netip.ParsePrefix(status.PodCIDR)
	if err != nil || !cidr.Addr().Is4() {
		return nil, types.NewError(types.ErrTryAgainLater,
			"ipam subnet "+UsePodCIDR+": taprouterd does not know the node's pod CIDR yet (it says "+
				`"`+status.PodCIDR+`")`, "")
	}
	if cidr != cidr.Masked() || cidr.Bits() < 8 || cidr.Bits() > 30 {
		// A range with host bits set, too small for a pod beside the
		// gateway, or wider than a /8 is no node's pod range: the daemon
		// is broken, and no IPAM plugin gets it (found by attack review).
		return nil, types.NewError(types.ErrInternal,
			"ipam subnet "+UsePodCIDR+`: taprouterd says the node's pod CIDR is "`+status.PodCIDR+`", which is no pod range (masked, /8 to /30)`, "")
	}
	for _, m := range subnets {
		m["subnet"] = cidr.String()
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, types.NewError(types.ErrInternal, "network configuration: "+err.Error(), "")
	}
	return out, nil
}
