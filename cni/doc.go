// Package cni is taprouter's CNI plugin: what a container runtime runs (as
// /opt/cni/bin/taprouter) to attach a pod to the node's taprouterd and to
// detach it again. It owns the translation between the CNI contract and
// taprouterd's API; the TAP device, the pod's address, routes and MTU, and
// the router's FIB entry are the daemon's work.
//
//	ADD     IPAM ADD (exactly one IPv4) → POST /v1/ports (with the
//	        runtimeConfig.bandwidth limits) → the result:
//	        eth0 with its MAC, sandbox and MTU, ip/32 via the node's gateway,
//	        default route via the gateway. A failure after IPAM ADD undoes
//	        what was done (daemon port, then the IPAM lease).
//	DEL     DELETE /v1/ports/{id}/{ifName} → IPAM DEL. Idempotent.
//	CHECK   IPAM CHECK, the daemon's port against prevResult and its
//	        limits against runtimeConfig.bandwidth, and the daemon's own
//	        check of the pod's eth0; every difference is named.
//	STATUS  GET /v1/status (and IPAM STATUS).
//	GC      POST /v1/gc with the valid attachments → IPAM DEL for each port
//	        the daemon removed → IPAM GC.
//
// The plugin is built on github.com/containernetworking/cni, the reference
// library every runtime and plugin uses: skel parses the environment and
// stdin, checks the config's cniVersion against the versions the plugin
// supports and prints errors as CNI error objects; types/100 is the result
// and converts it to the config's cniVersion; invoke runs the IPAM plugin
// (delegation, with a context and the GC and STATUS verbs that
// containernetworking/plugins' pkg/ipam wrappers lack). The daemon is
// reached through api.Client.
//
// An IPAM subnet of "usePodCidr" (UsePodCIDR) is the node's pod CIDR: the
// plugin asks the daemon's GET /v1/status and gives the IPAM plugin the
// configuration with the prefix in its place, so that one network
// configuration (the DaemonSet's ConfigMap) serves every node.
//
// The plugin implements the CNI "bandwidth" capability itself: the
// reference bandwidth plugin shapes the host side of a veth pair, and a
// taprouter pod's eth0 is a TAP with no host-side device. The limits go to
// the daemon, whose router polices each pod's traffic; the plugin checks
// them as the reference plugin does (a rate needs a burst and the reverse,
// a burst is below 4 GB) on ADD and CHECK. DEL ignores them, so that it
// can always clean up.
//
// Errors carry the CNI code a runtime acts on: 7 for a bad network config
// field (named), 11 when taprouterd is unreachable or busy (retry), 50 from
// STATUS when it is not available, 3 from CHECK when the daemon does not know
// the container; skel itself answers 1 (incompatible cniVersion), 4 (missing
// CNI_* variable) and 6 (stdin is not JSON).
package cni
