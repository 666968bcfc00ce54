package cni

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

// "usePodCidr" as an IPAM subnet, in ranges or as ipam.subnet, becomes the
// daemon's pod CIDR, and nothing else of the configuration changes; a
// configuration without it reaches the IPAM plugin byte for byte, and the
// daemon is not asked.
func TestIPAMStdinPodCIDR(t *testing.T) {
	d := startFakeDaemon(t, nil) // podCIDR 10.244.0.0/24
	ctx := context.Background()
	for _, tc := range []struct{ name, in, want string }{
		{"ranges",
			`{"cniVersion":"1.1.0","name":"taprouter","type":"taprouter","mtu":1450,"ipam":{"type":"host-local","dataDir":"/var/lib/cni/x","ranges":[[{"subnet":"usePodCidr","rangeStart":"10.244.0.10"}],[{"subnet":"10.9.0.0/24"}]]}}`,
			`{"cniVersion":"1.1.0","name":"taprouter","type":"taprouter","mtu":1450,"ipam":{"type":"host-local","dataDir":"/var/lib/cni/x","ranges":[[{"subnet":"10.244.0.0/24","rangeStart":"10.244.0.10"}],[{"subnet":"10.9.0.0/24"}]]}}`},
		{"ipam.subnet",
			`{"cniVersion":"0.4.0","name":"n","type":"taprouter","ipam":{"type":"host-local","subnet":"usePodCidr"}}`,
			`{"cniVersion":"0.4.0","name":"n","type":"taprouter","ipam":{"type":"host-local","subnet":"10.244.0.0/24"}}`},
	} {
		conf := &NetConf{Socket: d.Socket}
		got, err := ipamStdin(ctx, conf, []byte(tc.in))
		if err != nil || !reflect.DeepEqual(decodeJSON(t, got), decodeJSON(t, []byte(tc.want))) {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
	// Without the keyword as a subnet: the very bytes, and no daemon
	// (the socket does not exist) is asked.
	conf := &NetConf{Socket: missingSocket(t)}
	for _, in := range []string{
		`{"cniVersion":"1.1.0","name":"taprouter","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24"}]]}}`,
		`{"cniVersion":"1.1.0","name":"usePodCidr","ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.0.0/24","gateway":"usePodCidr"}]]}}`,
	} {
		got, err := ipamStdin(ctx, conf, []byte(in))
		if err != nil || string(got) != in {
			t.Errorf("%s: %s, %v; want it unchanged", in, got, err)
		}
	}
}

// A daemon that is not there, or does not know its pod CIDR yet, is error
// 11: the runtime retries.
func TestIPAMStdinPodCIDRUnknown(t *testing.T) {
	in := []byte(`{"cniVersion":"1.1.0","name":"taprouter","ipam":{"type":"host-local","ranges":[[{"subnet":"usePodCidr"}]]}}`)
	noCIDR := startFakeDaemon(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/status" {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"node":"node1","podCIDR":""}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	for _, tc := range []struct{ socket, msg string }{
		{noCIDR.Socket, `ipam subnet usePodCidr: taprouterd does not know the node's pod CIDR yet (it says "")`},
	} {
		_, err := ipamStdin(context.Background(), &NetConf{Socket: tc.socket}, in)
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrTryAgainLater || e.Msg != tc.msg {
			t.Errorf("%v, want error 11 %q", err, tc.msg)
		}
	}
	none := missingSocket(t)
	_, err := ipamStdin(context.Background(), &NetConf{Socket: none}, in)
	var e *types.Error
	if !errors.As(err, &e) || e.Code != types.ErrTryAgainLater {
		t.Errorf("no daemon: %v, want error 11", err)
	}
}

// FuzzIPAMStdin: whatever the configuration, ipamStdin returns it byte for
// byte or fails with a CNI error, unless an IPAM subnet is usePodCidr; then
// it returns the same JSON with every such subnet the daemon's pod CIDR
// and no other value changed.
func FuzzIPAMStdin(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"t","ipam":{"type":"host-local","ranges":[[{"subnet":"usePodCidr"}]]}}`))
	f.Add([]byte(`{"ipam":{"subnet":"usePodCidr","ranges":[[{"subnet":"usePodCidr"},{"subnet":"10.1.0.0/16"}],[]]},"mtu":1e3}`))
	f.Add([]byte(`{"name":"usePodCidr","ipam":{"ranges":"usePodCidr"}}`))
	f.Add([]byte(`[{"ipam":{"subnet":"usePodCidr"}}]`))
	d := startFakeDaemon(f, nil)
	f.Fuzz(func(t *testing.T, stdin []byte) {
		out, err := ipamStdin(context.Background(), &NetConf{Socket: d.Socket}, stdin)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: %v is not a CNI error", stdin, err)
			}
			return
		}
		if string(out) == string(stdin) {
			return
		}
		// Changed: put the placeholder back where the pod CIDR now is, and
		// the two documents must be equal.
		var before, after any
		if json.Unmarshal(stdin, &before) != nil || json.Unmarshal(out, &after) != nil {
			t.Fatalf("changed %s into %s, and one is not JSON", stdin, out)
		}
		ipam := after.(map[string]any)["ipam"].(map[string]any)
		restore := func(m map[string]any) {
			if m["subnet"] == "10.244.0.0/24" {
				m["subnet"] = UsePodCIDR
			}
		}
		restore(ipam)
		if rs, ok := ipam["ranges"].([]any); ok {
			for _, set := range rs {
				if s, ok := set.([]any); ok {
					for _, r := range s {
						if m, ok := r.(map[string]any); ok {
							restore(m)
						}
					}
				}
			}
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("%s became %s: more changed than the usePodCidr subnets", stdin, out)
		}
	})
}
