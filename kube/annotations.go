package kube

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/tunnel"
)

// The annotations a taprouterd publishes on its own Node, and reads on the
// others (see the package comment for the precedence).
const (
	// AnnotationPrefix is the domain of taprouter's own annotations.
	AnnotationPrefix = "taprouter.io/"
	// AnnotationBackend is the encapsulation the node speaks: "vxlan",
	// "udp" or "direct".
	AnnotationBackend = AnnotationPrefix + "backend"
	// AnnotationVTEPMAC is the node's VXLAN VTEP MAC, aa:bb:cc:dd:ee:ff
	// (vxlan only).
	AnnotationVTEPMAC = AnnotationPrefix + "vtep-mac"
	// AnnotationPublicIP is the node's underlay IPv4 address, where peers
	// send its encapsulated traffic.
	AnnotationPublicIP = AnnotationPrefix + "public-ip"
)

// flannel's annotations, with its default prefix (flannel's main.go
// --kube-annotation-prefix), as pkg/subnet/kube/annotations.go names them.
const (
	FlannelPrefix = "flannel.alpha.coreos.com/"
	// FlannelBackendType is flannel's backend: "vxlan", "host-gw", "udp", ...
	FlannelBackendType = FlannelPrefix + "backend-type"
	// FlannelBackendData is the vxlan backend's lease attributes as JSON,
	// {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"} (pkg/backend/vxlan:
	// vxlanLeaseAttrs).
	FlannelBackendData = FlannelPrefix + "backend-data"
	// FlannelPublicIP is the node's underlay IPv4 address.
	FlannelPublicIP = FlannelPrefix + "public-ip"
	// FlannelKubeSubnetManager must be "true": flannel ignores every Node
	// without it (pkg/subnet/kube/kube.go handleAddLeaseEvent).
	FlannelKubeSubnetManager = FlannelPrefix + "kube-subnet-manager"
)

// maxAnnotationValue bounds the values the parser reads; every valid one is
// far shorter. Longer values are rejected unread.
const maxAnnotationValue = 256

// announced is what a Node's annotations say about reaching it; zero fields
// are not announced (or were unusable).
type announced struct {
	Backend string
	VTEPMAC link.HardwareAddr
	Addr    netip.Addr
}

// parseAnnotations reads a Node's taprouter annotations, then flannel's for
// what the first leave unset. An unusable value is skipped, with a problem
// naming it, so that the next source (or the default) applies.
func parseAnnotations(a map[string]string) (announced, []string) {
	var r announced
	var problems []string
	bad := func(key, why string) {
		problems = append(problems, key+" "+quoteShort(a[key])+": "+why)
	}
	get := func(key string) (string, bool) {
		v, ok := a[key]
		if ok && len(v) > maxAnnotationValue {
			problems = append(problems, key+": value of "+strconv.Itoa(len(v))+" bytes is too long")
			return "", false
		}
		return v, ok
	}

	if v, ok := get(AnnotationBackend); ok {
		if isBackend(v) {
			r.Backend = v
		} else {
			bad(AnnotationBackend, "want vxlan, udp or direct")
		}
	}
	if v, ok := get(AnnotationVTEPMAC); ok {
		if mac, why := parseVTEPMAC(v); why == "" {
			r.VTEPMAC = mac
		} else {
			bad(AnnotationVTEPMAC, why)
		}
	}
	if v, ok := get(AnnotationPublicIP); ok {
		if addr, why := parseUnderlay(v); why == "" {
			r.Addr = addr
		} else {
			bad(AnnotationPublicIP, why)
		}
	}

	ftype, hasType := get(FlannelBackendType)
	if hasType && r.Backend == "" {
		switch ftype {
		case "vxlan":
			r.Backend = tunnel.NameVXLAN
		case "host-gw":
			r.Backend = tunnel.NameDirect
		case "udp":
			r.Backend = tunnel.NameUDP
		default:
			bad(FlannelBackendType, "a flannel backend taprouter does not speak")
		}
	}
	if v, ok := get(FlannelBackendData); ok && hasType && ftype == "vxlan" && r.VTEPMAC.IsZero() {
		var data struct {
			VNI     uint32
			VtepMAC string
		}
		if err := json.Unmarshal([]byte(v), &data); err != nil {
			bad(FlannelBackendData, "not flannel's vxlan JSON: "+err.Error())
		} else if mac, why := parseVTEPMAC(data.VtepMAC); why != "" {
			bad(FlannelBackendData, "VtepMAC: "+why)
		} else {
			r.VTEPMAC = mac
		}
	}
	if v, ok := get(FlannelPublicIP); ok && !r.Addr.IsValid() {
		if addr, why := parseUnderlay(v); why == "" {
			r.Addr = addr
		} else {
			bad(FlannelPublicIP, why)
		}
	}
	return r, problems
}

func isBackend(s string) bool {
	return s == tunnel.NameVXLAN || s == tunnel.NameUDP || s == tunnel.NameDirect
}

func parseVTEPMAC(s string) (link.HardwareAddr, string) {
	mac, err := link.ParseMAC(s)
	switch {
	case err != nil:
		return mac, "want aa:bb:cc:dd:ee:ff"
	case mac.IsZero() || mac[0]&1 != 0:
		return link.HardwareAddr{}, "not a unicast MAC"
	}
	return mac, ""
}

// parseUnderlay accepts a unicast IPv4 address a node can be reached at.
func parseUnderlay(s string) (netip.Addr, string) {
	addr, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Addr{}, "not an IP address"
	case !addr.Is4():
		return netip.Addr{}, "not an IPv4 address"
	case !addr.IsGlobalUnicast():
		return netip.Addr{}, "not a unicast address"
	}
	return addr, ""
}

// quoteShort quotes the first 64 bytes of s for a log line.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

// Announcement is what this node publishes on its own Node for its peers.
type Announcement struct {
	// Backend is this node's encapsulation: "vxlan", "udp" or "direct";
	// "" publishes nothing.
	Backend string
	// PublicIP is the underlay address; zero means the Node's InternalIP.
	PublicIP netip.Addr
	// VTEPMAC is the VXLAN VTEP MAC; zero means tunnel.VTEPMAC(PublicIP).
	VTEPMAC link.HardwareAddr
	// VNI goes into flannel's backend-data; 0 means 1, flannel's default.
	VNI uint32
}

// annotations returns the annotations a publishes for a node whose
// InternalIP is internal: a value to set, or nil to remove. With the vxlan
// backend it includes flannel's, so that a kernel flannel node programs
// this one; with another it removes them, so that no flannel node keeps
// sending VXLAN to a node that no longer speaks it.
func (a Announcement) annotations(internal netip.Addr) map[string]*string {
	addr := a.PublicIP
	if !addr.IsValid() {
		addr = internal
	}
	s := func(v string) *string { return &v }
	m := map[string]*string{
		AnnotationBackend:        s(a.Backend),
		AnnotationPublicIP:       s(addr.String()),
		AnnotationVTEPMAC:        nil,
		FlannelBackendType:       nil,
		FlannelBackendData:       nil,
		FlannelPublicIP:          nil,
		FlannelKubeSubnetManager: nil,
	}
	if a.Backend != tunnel.NameVXLAN {
		return m
	}
	mac := a.VTEPMAC
	if mac.IsZero() {
		mac = tunnel.VTEPMAC(addr)
	}
	vni := a.VNI
	if vni == 0 {
		vni = 1
	}
	data, _ := json.Marshal(struct {
		VNI     uint32
		VtepMAC string
	}{vni, mac.String()})
	m[AnnotationVTEPMAC] = s(mac.String())
	m[FlannelBackendType] = s("vxlan")
	m[FlannelBackendData] = s(string(data))
	m[FlannelPublicIP] = s(addr.String())
	m[FlannelKubeSubnetManager] = s("true")
	return m
}

// annotationsMatch reports whether have already holds want: every value
// set, every nil absent.
func annotationsMatch(have map[string]string, want map[string]*string) bool {
	for k, v := range want {
		got, ok := have[k]
		if v == nil && ok || v != nil && (!ok || got != *v) {
			return false
		}
	}
	return true
}

// ours reports whether the parser or the publisher look at key; the
// informer's cache keeps only those annotations.
func ours(key string) bool {
	return strings.HasPrefix(key, AnnotationPrefix) || strings.HasPrefix(key, FlannelPrefix)
}
