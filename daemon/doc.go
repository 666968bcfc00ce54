// Package daemon is taprouterd: it turns a validated config.Config into a
// running router. It reads the underlay interface, opens the tunnel's
// transport, creates the host port (a TUN with a route for the pod range —
// the only kernel routing taprouter uses, and only for traffic that starts
// or ends on the node itself), attaches the configured pods (a persistent
// TAP moved into each pod's namespace as eth0), and serves the API.
//
// A pod's namespace is opened with podnet.OpenNetNS (which refuses what is
// not a network namespace, and the node's own) before the daemon's lock is
// taken, and with a timeout, so that a path that never opens holds up only
// its own request. A hung open keeps its thread until it ends, so a path is
// never opened twice at once (a retried request waits for the open under
// way), and at most 16 opens are in flight: beyond, a request is a 503. At
// start, the config's and the state file's namespaces are opened
// concurrently under one timeout, so that hung ones delay the API by one
// timeout, however many there are. Entries of the state file pass the same checks as API
// requests; a bad one is dropped alone.
//
// A pod interface, the namespace's identity (device and inode of its nsfs
// file, whatever path names it) and ifName, is one port's: a second port
// for it is a 409 from the API, an error in the config, and dropped from
// the state file. A port's removal deletes only its own TAP (the device
// it attached, by index; for a port that never attached, a TAP that no
// one else has open), never another port's or a device taprouter did not
// make. Unlike an API request, the state
// file may have fields this taprouterd does not know (a newer one wrote
// them): they are ignored, so that rolling taprouterd back keeps the pods.
//
// Close undoes what the daemon added to the node's namespace (the host port,
// the socket) and leaves the pods' TAP devices in place, so that a restarted
// daemon need not take a pod's eth0 away.
package daemon
