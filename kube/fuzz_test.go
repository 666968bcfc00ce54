package kube

import (
	"net/netip"
	"testing"

	"github.com/taprouter/taprouter/link"
)

// FuzzParseAnnotations feeds hostile values to the annotation parser.
// Invariants: it never panics; what it returns is valid (a known backend,
// a unicast MAC, a unicast IPv4 address) or zero; a valid taprouter value
// always wins over flannel's; and what an Announcement publishes parses
// back to itself.
func FuzzParseAnnotations(f *testing.F) {
	f.Add("vxlan", "0a:58:c0:a8:31:02", "192.168.49.2", "vxlan", `{"VNI":1,"VtepMAC":"6e:1f:33:44:55:66"}`, "192.168.49.3")
	f.Add("", "", "", "vxlan", `{"VNI":1,"VtepMAC":"6e:1f:33:44:55:66"}`, "10.0.0.1")
	f.Add("ipip", "ff:ff:ff:ff:ff:ff", "::1", "host-gw", `{"VNI":"x"}`, "0.0.0.0")
	f.Add("udp", "zz", "1.2.3.4.5", "wireguard", `{"VtepMAC":null}`, "255.255.255.255")
	f.Fuzz(func(t *testing.T, backend, vtep, public, ftype, fdata, fpublic string) {
		a := map[string]string{}
		for k, v := range map[string]string{
			AnnotationBackend: backend, AnnotationVTEPMAC: vtep, AnnotationPublicIP: public,
			FlannelBackendType: ftype, FlannelBackendData: fdata, FlannelPublicIP: fpublic,
		} {
			if v != "" {
				a[k] = v
			}
		}
		r, _ := parseAnnotations(a)
		if r.Backend != "" && !isBackend(r.Backend) {
			t.Fatalf("backend %q", r.Backend)
		}
		if !r.VTEPMAC.IsZero() && r.VTEPMAC[0]&1 != 0 {
			t.Fatalf("multicast VTEP MAC %s", r.VTEPMAC)
		}
		if r.Addr.IsValid() && (!r.Addr.Is4() || !r.Addr.IsGlobalUnicast()) {
			t.Fatalf("address %s", r.Addr)
		}
		if isBackend(backend) && r.Backend != backend {
			t.Fatalf("valid %s %q lost to %q", AnnotationBackend, backend, r.Backend)
		}
		if m, why := parseVTEPMAC(vtep); why == "" && r.VTEPMAC != m {
			t.Fatalf("valid %s %q lost to %s", AnnotationVTEPMAC, vtep, r.VTEPMAC)
		}
		if addr, why := parseUnderlay(public); why == "" && r.Addr != addr {
			t.Fatalf("valid %s %q lost to %s", AnnotationPublicIP, public, r.Addr)
		}

		// Round trip: a valid announcement parses back to itself.
		addr, why := parseUnderlay(public)
		if why != "" || !isBackend(backend) {
			return
		}
		var mac link.HardwareAddr
		if m, why := parseVTEPMAC(vtep); why == "" {
			mac = m
		}
		ann := Announcement{Backend: backend, PublicIP: addr, VTEPMAC: mac}
		have := map[string]string{}
		for k, v := range ann.annotations(netip.Addr{}) {
			if v != nil {
				have[k] = *v
			}
		}
		back, problems := parseAnnotations(have)
		if len(problems) > 0 || back.Backend != backend || back.Addr != addr {
			t.Fatalf("announcement %+v parsed back as %+v, problems %v", ann, back, problems)
		}
		if backend == "vxlan" && back.VTEPMAC.IsZero() {
			t.Fatalf("vxlan announcement without a VTEP MAC: %v", have)
		}
	})
}
