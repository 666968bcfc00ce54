package cni

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// A daemon reply that is no usable pod range (host bits set, too small to
// hold a pod, the whole address space) never reaches the IPAM plugin as
// its subnet: it is an error naming what the daemon said. (found by
// attack review)
func TestIPAMStdinPodCIDRGarbage(t *testing.T) {
	in := []byte(`{"cniVersion":"1.1.0","name":"taprouter","ipam":{"type":"host-local","ranges":[[{"subnet":"usePodCidr"}]]}}`)
	for _, said := range []string{"10.244.0.7/24", "10.244.0.0/31", "10.244.0.4/32", "0.0.0.0/0", "fd00::/64", "10.244.0.0/24 junk"} {
		d := startFakeDaemon(t, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/status" {
					w.Header().Set("Content-Type", "application/json")
					w.Write([]byte(`{"node":"node1","podCIDR":"` + said + `"}`))
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		out, err := ipamStdin(context.Background(), &NetConf{Socket: d.Socket}, in)
		var e *types.Error
		if !errors.As(err, &e) || !strings.Contains(e.Msg, `"`+said+`"`) {
			t.Errorf("daemon says %q: %s, %v; want an error naming it", said, out, err)
		}
	}
}
