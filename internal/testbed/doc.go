// Package testbed builds throwaway Linux network topologies for taprouter's
// end-to-end tests, demo and comparison benchmark, and runs the standard
// network tools inside them.
//
// A Bed owns everything it creates: network namespaces (named
// "tr<pid>x<n>-<role>" so that concurrent runs never collide), the devices
// inside them, the processes it starts, and a temporary directory for
// configuration files, logs and control sockets. Close kills the processes
// first and then deletes the namespaces, which deletes their devices. Nothing
// is ever created in the caller's own (root) network namespace: devices are
// created directly inside the bed's namespaces with "ip -n".
//
// The topology mirrors a small Kubernetes cluster: nodes are namespaces whose
// eth0 hangs off a Linux bridge in a dedicated "switch" namespace (the
// underlay, 192.168.49.0/24, MTU 1500); pods are empty namespaces that
// taprouterd fills with its TAP devices, or that the kernel reference
// topologies (ptp routes as kindnet does, a vxlan device as flannel does)
// wire with veth pairs.
//
// The package drives the ip, bridge, ping, iperf3, traceroute, tracepath and
// tcpdump commands rather than netlink directly: the tests then exercise the
// same tools an operator would use, and their output is what the tests parse
// (ping's TTL and RTT, iperf3's JSON, traceroute's hop list, tracepath's PMTU,
// tcpdump's pcap files). Sockets that must be opened inside a namespace
// (SendUDP) use github.com/vishvananda/netns to switch a locked OS thread.
// For the comparison benchmark it also reads /proc: a process's CPU time and
// resident memory (ProcessCPU, ProcessMemory) and the machine's softirq
// time (SoftirqCPU).
package testbed
