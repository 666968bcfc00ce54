package cni

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/taprouter/taprouter/api"
)

// withBandwidth is the runtimeConfig a runtime adds for the "bandwidth"
// capability.
func withBandwidth(bw any) map[string]any {
	return map[string]any{"runtimeConfig": map[string]any{"bandwidth": bw}}
}

// TestAddForwardsBandwidth: the limits reach the daemon exactly as the
// runtime gave them; no limits (absent or all zero) is no Bandwidth.
func TestAddForwardsBandwidth(t *testing.T) {
	tests := []struct {
		name  string
		extra map[string]any
		want  *api.Bandwidth
	}{
		{"both directions", withBandwidth(map[string]uint64{
			"ingressRate": 50_000_000, "ingressBurst": 1_000_000, "egressRate": 20_000_000, "egressBurst": 400_000}),
			&api.Bandwidth{IngressRate: 50_000_000, IngressBurst: 1_000_000, EgressRate: 20_000_000, EgressBurst: 400_000}},
		{"egress only", withBandwidth(map[string]uint64{"egressRate": 1000, "egressBurst": 8}),
			&api.Bandwidth{EgressRate: 1000, EgressBurst: 8}},
		{"largest burst", withBandwidth(map[string]uint64{"ingressRate": 1 << 40, "ingressBurst": maxBurst}),
			&api.Bandwidth{IngressRate: 1 << 40, IngressBurst: maxBurst}},
		{"all zero", withBandwidth(map[string]uint64{"ingressRate": 0, "ingressBurst": 0}), nil},
		{"runtimeConfig without bandwidth", map[string]any{"runtimeConfig": map[string]any{"portMappings": []any{}}}, nil},
		{"no runtimeConfig", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, tt.extra), IPAM: newFakeIPAM(t)}).wantOK(t)
			if len(d.requests) != 1 || !reflect.DeepEqual(d.requests[0].Bandwidth, tt.want) {
				t.Errorf("daemon got %+v, want Bandwidth %+v", d.requests, tt.want)
			}
		})
	}
}

// TestAddBandwidthInvalid: limits the reference bandwidth plugin refuses
// are a CNI error 7 naming the field, before any address is taken.
func TestAddBandwidthInvalid(t *testing.T) {
	tests := []struct {
		name    string
		bw      any
		mention string
	}{
		{"ingress rate without burst", map[string]uint64{"ingressRate": 50_000_000},
			"runtimeConfig.bandwidth.ingressBurst: missing: ingressRate is 50000000 bit/s"},
		{"ingress burst without rate", map[string]uint64{"ingressBurst": 1_000_000},
			"runtimeConfig.bandwidth.ingressRate: missing: ingressBurst is 1000000 bits"},
		{"egress rate without burst", map[string]uint64{"ingressRate": 1000, "ingressBurst": 1000, "egressRate": 1000},
			"runtimeConfig.bandwidth.egressBurst: missing"},
		{"egress burst without rate", map[string]uint64{"egressBurst": 1000},
			"runtimeConfig.bandwidth.egressRate: missing"},
		{"burst of 4 GB", map[string]uint64{"egressRate": 1000, "egressBurst": maxBurst + 1},
			"runtimeConfig.bandwidth.egressBurst: 34359738360 bits is more than 4 GB: at most 34359738359"},
		{"negative rate", map[string]int{"ingressRate": -1, "ingressBurst": 1000},
			"runtimeConfig.bandwidth.ingressRate: got a JSON number -1, want an integer from 0 to 18446744073709551615"},
		{"rate beyond 64 bits", json.RawMessage(`{"egressRate": 18446744073709551616, "egressBurst": 8}`),
			"runtimeConfig.bandwidth.egressRate: got a JSON number 18446744073709551616"},
		{"rate as a string", map[string]any{"ingressRate": "50M", "ingressBurst": 1000},
			"runtimeConfig.bandwidth.ingressRate: got a JSON string, want an integer"},
		{"bandwidth not an object", "50M", "runtimeConfig.bandwidth: got a JSON string, want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startFakeDaemon(t, nil)
			ipam := newFakeIPAM(t)
			run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, withBandwidth(tt.bw)), IPAM: ipam}).
				wantCode(t, types.ErrInvalidNetworkConfig, "invalid network configuration: "+tt.mention)
			ipam.wantCalls(t)
			if len(d.requests) != 0 {
				t.Errorf("daemon got %+v", d.requests)
			}
		})
	}
}

// TestDelIgnoresBandwidth: DEL cleans up whatever limits it is given.
func TestDelIgnoresBandwidth(t *testing.T) {
	d := startFakeDaemon(t, nil)
	ipam := newFakeIPAM(t)
	run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, nil), IPAM: ipam}).wantOK(t)
	run(t, invocation{Command: "DEL", Stdin: netConf("1.1.0", d.Socket, withBandwidth(map[string]uint64{"ingressRate": 1})), IPAM: ipam}).wantOK(t)
	d.wantNoPorts(t)
	ipam.wantCalls(t, "ADD ctr1 eth0", "DEL ctr1 eth0")
}

// TestCheckBandwidth: CHECK compares the limits the runtime asks for with
// the daemon's port and says both when they differ.
func TestCheckBandwidth(t *testing.T) {
	limits := map[string]uint64{"ingressRate": 50_000_000, "ingressBurst": 1_000_000, "egressRate": 20_000_000, "egressBurst": 400_000}
	// checkConf is CHECK's configuration for a pod added with addBW: the
	// ADD's result as prevResult, and checkBW as runtimeConfig.
	checkConf := func(t *testing.T, d *fakeDaemon, ipam *fakeIPAM, addBW, checkBW map[string]uint64) string {
		o := run(t, invocation{Command: "ADD", Stdin: netConf("1.1.0", d.Socket, withBandwidth(addBW)), IPAM: ipam})
		o.wantOK(t)
		extra := withBandwidth(checkBW)
		extra["prevResult"] = json.RawMessage(o.Stdout)
		return netConf("1.1.0", d.Socket, extra)
	}
	t.Run("same limits", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		run(t, invocation{Command: "CHECK", Stdin: checkConf(t, d, ipam, limits, limits), IPAM: ipam}).wantOK(t)
	})
	t.Run("no limits either side", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		run(t, invocation{Command: "CHECK", Stdin: checkConf(t, d, ipam, nil, map[string]uint64{}), IPAM: ipam}).wantOK(t)
	})
	t.Run("daemon lost a limit", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		conf := checkConf(t, d, ipam, limits, limits)
		a := api.Attachment{ContainerID: "ctr1", IfName: "eth0"}
		d.mu.Lock()
		p := d.ports[a]
		p.Bandwidth = &api.Bandwidth{IngressRate: 50_000_000, IngressBurst: 1_000_000}
		d.ports[a] = p
		d.mu.Unlock()
		run(t, invocation{Command: "CHECK", Stdin: conf, IPAM: ipam}).wantCode(t, types.ErrInternal,
			"bandwidth is ingress 50000000 bit/s (burst 1000000 bits), egress unlimited in taprouterd "+
				"but ingress 50000000 bit/s (burst 1000000 bits), egress 20000000 bit/s (burst 400000 bits) in runtimeConfig")
	})
	t.Run("limits the pod was not added with", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		run(t, invocation{Command: "CHECK", Stdin: checkConf(t, d, ipam, nil, limits), IPAM: ipam}).wantCode(t, types.ErrInternal,
			"bandwidth is ingress unlimited, egress unlimited in taprouterd but ingress 50000000 bit/s")
	})
	t.Run("invalid limits", func(t *testing.T) {
		d := startFakeDaemon(t, nil)
		ipam := newFakeIPAM(t)
		run(t, invocation{Command: "CHECK", Stdin: checkConf(t, d, ipam, nil, map[string]uint64{"egressBurst": 5}), IPAM: ipam}).
			wantCode(t, types.ErrInvalidNetworkConfig, "runtimeConfig.bandwidth.egressRate: missing")
	})
}
