// Package kube owns taprouterd's Kubernetes source of truth: it watches
// Node objects and hands out this node (Self: name, InternalIP, podCIDRs)
// and the full desired peer set (peers.Peer, sorted by node name) through
// Config.OnChange, and publishes this node's annotations for its peers. It
// does not touch the router: the daemon passes each set to
// peers.Reconciler.Apply.
//
// Why a client-go shared informer and not raw watches: the informer's
// reflector lists, watches, resumes from the last resourceVersion, re-lists
// on 410 Expired and backs off during outages, while its store keeps the
// last state. The watcher reads the store after each burst of events
// (debounced, DefaultDebounce) and hands out only a set that differs from
// the last one, so watch restarts and re-lists never flap routes. Its
// transform keeps only names, podCIDRs, addresses and the annotations below.
//
// A Node without an IPv4 podCIDR (or without an address) is waited for and
// logged once; until this node's own Node has both, nothing is handed out.
// An outage is seen on every list and watch call (the reflector retries a
// refused watch without calling its WatchErrorHandler) and logged once,
// "API server unreachable, forwarding on last known state", and once on
// recovery.
//
// What this node announces is Config.Announce, replaced by
// Watcher.SetAnnouncement (taprouterd knows its backend and VTEP MAC only
// once it has started from its Node).
//
// Annotations, read on every Node, published on ours (merge patch of
// metadata.annotations; RBAC: nodes get, list, watch, patch):
//
//	taprouter.io/backend    vxlan | udp | direct
//	taprouter.io/vtep-mac   aa:bb:cc:dd:ee:ff (vxlan)
//	taprouter.io/public-ip  underlay IPv4 address
//
// flannel's, as github.com/flannel-io/flannel names them
// (pkg/subnet/kube/annotations.go, prefix flannel.alpha.coreos.com/;
// backend-data is pkg/backend/vxlan's vxlanLeaseAttrs as JSON,
// {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}):
//
//	flannel.alpha.coreos.com/backend-type         vxlan (host-gw → direct, udp → udp)
//	flannel.alpha.coreos.com/backend-data         VtepMAC read when backend-type is vxlan
//	flannel.alpha.coreos.com/public-ip            underlay IPv4 address
//	flannel.alpha.coreos.com/kube-subnet-manager  "true" (flannel skips Nodes without it)
//
// Precedence per field: taprouter's annotation, then flannel's, then the
// default (backend = this node's, VTEP MAC derived from the address,
// address = InternalIP). An unusable value (bad JSON or MAC, not a unicast
// IPv4, over 256 bytes) is skipped and logged once. With the vxlan backend
// the watcher also publishes flannel's four annotations, so a kernel
// flannel node programs this one; with another backend it removes them.
package kube
