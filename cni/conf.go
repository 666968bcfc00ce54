package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/taprouter/taprouter/api"
	"github.com/taprouter/taprouter/config"
)

// NetConf is the plugin's entry in a network configuration list:
//
//	{"type": "taprouter", "socket": "/run/taprouter/taprouterd.sock", "mtu": 0,
//	 "capabilities": {"bandwidth": true},
//	 "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}}
//
// The runtime adds runtimeConfig for the capabilities the entry declares.
type NetConf struct {
	types.NetConf
	// Socket is taprouterd's API socket, as given to taprouterd --socket;
	// default api.DefaultSocket.
	Socket string `json:"socket,omitempty"`
	// MTU is the pod's eth0 MTU; 0 (the default) leaves it to the daemon,
	// which uses the underlay MTU minus the tunnel overhead.
	MTU int `json:"mtu,omitempty"`
	// RuntimeConfig is what the runtime passes for the declared
	// capabilities: "bandwidth", the pod's rate limits, in the units and
	// with the field names of the reference bandwidth plugin.
	RuntimeConfig struct {
		Bandwidth *api.Bandwidth `json:"bandwidth,omitempty"`
	} `json:"runtimeConfig,omitempty"`
}

// loadConf parses and checks the network configuration on stdin. A field of
// the wrong type or value is a CNI error 7 that names the field.
func loadConf(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" { // not an object at all
			return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("network configuration: got a JSON %s, want an object", typeErr.Value), "")
		}
		if errors.As(err, &typeErr) {
			return nil, invalidConf(typeErr.Field, "got a JSON %s, want %s", typeErr.Value, jsonKind(typeErr.Type))
		}
		return nil, types.NewError(types.ErrDecodingFailure, "network configuration: "+err.Error(), "")
	}
	if conf.Socket == "" {
		conf.Socket = api.DefaultSocket
	}
	if !filepath.IsAbs(conf.Socket) {
		return nil, invalidConf("socket", "%q is not an absolute path", conf.Socket)
	}
	if conf.MTU != 0 && (conf.MTU < config.MinPodMTU || conf.MTU > config.MaxPodMTU) {
		return nil, invalidConf("mtu", "%d is out of range: want %d to %d, or 0 for the node's pod MTU", conf.MTU, config.MinPodMTU, config.MaxPodMTU)
	}
	if conf.IPAM.Type == "" {
		return nil, invalidConf("ipam", "missing: taprouter takes the pod's address from an IPAM plugin, e.g. \"ipam\": {\"type\": \"host-local\", ...}")
	}
	return conf, nil
}

// parsePrevResult decodes the prevResult a runtime passes to CHECK.
func (c *NetConf) parsePrevResult() error {
	if c.RawPrevResult == nil {
		return invalidConf("prevResult", "missing: CHECK compares the pod with the result of its ADD")
	}
	if err := version.ParsePrevResult(&c.NetConf); err != nil {
		return invalidConf("prevResult", "%v", err)
	}
	return nil
}

// atLeast reports whether the configuration's cniVersion is v or later.
func (c *NetConf) atLeast(v string) bool {
	ok, err := version.GreaterThanOrEqualTo(c.CNIVersion, v)
	return err == nil && ok
}

func invalidConf(field, format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "invalid network configuration: "+field+": "+fmt.Sprintf(format, args...), "")
}

// jsonKind names what JSON value decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer from 0 to " + strconv.FormatUint(math.MaxUint64>>(64-t.Bits()), 10)
	}
	return "a number"
}
