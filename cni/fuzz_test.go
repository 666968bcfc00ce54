package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/taprouter/taprouter/config"
)

// FuzzLoadConf: a network configuration loadConf accepts satisfies the
// plugin's own rules (absolute socket, MTU 0 or in range, an IPAM type) and
// loads again unchanged from its own JSON (confJSON); bandwidth accepts only limits
// the bandwidth plugin would; every refusal is a CNI error of code 6 or 7,
// and a code 7 names the field.
func FuzzLoadConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion": "1.1.0", "name": "k8s", "type": "taprouter", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}}`))
	f.Add([]byte(`{"cniVersion": "1.0.0", "name": "k8s", "type": "taprouter", "socket": "/run/t.sock", "mtu": 1400, "ipam": {"type": "x"}, "runtimeConfig": {"bandwidth": {"ingressRate": 8000, "ingressBurst": 80000}}}`))
	f.Add([]byte(`{"cniVersion": "0.4.0", "name": "k8s", "type": "taprouter", "socket": "rel", "ipam": {"type": "x"}}`))
	f.Add([]byte(`{"cniVersion": "1.1.0", "mtu": "1400", "ipam": {"type": 5}}`))
	f.Add([]byte(`{"ipam": {"type": "x"}, "runtimeConfig": {"bandwidth": {"egressBurst": 99999999999}}}`))
	f.Add([]byte(`{"ipam": {"type": "x"}, "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.244.0.7/32"}]}}`))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		conf, err := loadConf(stdin)
		if err != nil {
			checkConfError(t, stdin, err)
			return
		}
		if !filepath.IsAbs(conf.Socket) || conf.IPAM.Type == "" || conf.MTU != 0 && (conf.MTU < config.MinPodMTU || conf.MTU > config.MaxPodMTU) {
			t.Fatalf("accepted %s as %+v", stdin, conf)
		}
		if bw, err := conf.bandwidth(); err != nil {
			checkConfError(t, stdin, err)
		} else if bw != nil {
			if (bw.IngressRate == 0) != (bw.IngressBurst == 0) || (bw.EgressRate == 0) != (bw.EgressBurst == 0) ||
				bw.IngressBurst > maxBurst || bw.EgressBurst > maxBurst {
				t.Fatalf("bandwidth accepted %+v", bw)
			}
		}
		b := confJSON(t, conf)
		again, err := loadConf(b)
		if err != nil {
			t.Fatalf("accepted %s, but not its own JSON %s: %v", stdin, b, err)
		}
		// Compared as JSON: types.NetConf writes an empty prevResult as
		// none, so the maps may differ in nil-ness, not in content.
		if b2 := confJSON(t, again); !bytes.Equal(b2, b) || !reflect.DeepEqual(again.RuntimeConfig, conf.RuntimeConfig) {
			t.Fatalf("round trip changed the configuration:\n%s\n%s", b, b2)
		}
	})
}

func checkConfError(t *testing.T, stdin []byte, err error) {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %v is not a CNI error", stdin, err)
	}
	switch e.Code {
	case types.ErrDecodingFailure:
	case types.ErrInvalidNetworkConfig:
		field, _, ok := strings.Cut(strings.TrimPrefix(e.Msg, "invalid network configuration: "), ": ")
		if !ok || field == "" || strings.ContainsAny(field, " \n") {
			t.Fatalf("%s: %q names no field", stdin, e.Msg)
		}
	default:
		t.Fatalf("%s: error code %d (%v), want 6 or 7", stdin, e.Code, e)
	}
}

// confJSON writes conf as a network configuration. json.Marshal(conf)
// would not do: the embedded types.NetConf's MarshalJSON is promoted and
// drops the plugin's own fields.
func confJSON(t *testing.T, conf *NetConf) []byte {
	t.Helper()
	b, err := json.Marshal(&conf.NetConf)
	if err != nil {
		t.Fatalf("%+v does not marshal: %v", conf.NetConf, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["socket"], m["mtu"], m["runtimeConfig"] = conf.Socket, conf.MTU, conf.RuntimeConfig
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}
