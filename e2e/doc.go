// Package e2e holds taprouter's end-to-end tests: they build cmd/taprouterd,
// run it in network namespaces that internal/testbed creates (nodes on a
// bridged underlay, pods on the daemon's TAP devices) and check with the
// standard tools what a pod sees: ping replies and their TTL, iperf3
// transfers, traceroute hops, tracepath's path MTU, ARP entries, tcpdump
// captures, and the daemon's status API counters, by their exact growth.
//
// The tests need root and the tools "make deps" installs; without them they
// skip with the reason. Run them with "make test".
package e2e
