// Package bench holds taprouter's whole-path benchmarks and the tools that
// compare it with the kernel.
//
//   - go test -bench . ./bench: two routers in one process, wired by an
//     in-memory underlay, forwarding through their public API with their
//     real goroutines: pod frame in on node1, vxlan (or udp) across, pod
//     frame out on node2. No root, no kernel devices. Reports Mpps and
//     ns/pkt (wall clock), cpu-ns/pkt (the process's CPU time per packet,
//     steadier on a shared machine) and allocations; with -cpu=1 every
//     goroutine (the source pod, both routers' ports and tunnels, the
//     sink) shares one core. CrossNodeVXLAN/UDP carry 1450-byte packets
//     (about a third of the time is the three copies of each frame that
//     the pod's TAP and the underlay's sockets make), CrossNodeVXLAN64/UDP64
//     64-byte ones (what the routers cost per packet). On 2 cores (AMD
//     EPYC, a quiet moment), -cpu=1, median of 5: vxlan 5.4 Mpps at 1450
//     bytes, 8.0 Mpps at 64; -cpu=2 4.1 and 6.2 (the goroutines hand
//     batches across cores). TestCrossNodeAllocatesNothing holds the path
//     to zero allocations per packet; profiles/inmemory has CPU profiles.
//   - go test -bench Netstack ./bench: the same two routers, with gVisor
//     network stacks (gvisor.dev/gvisor/pkg/tcpip) as the pods: each a NIC
//     (a channel endpoint under an Ethernet one) on a router pod port,
//     configured as the CNI plugin configures a pod (ip/32, MTU 1450, the
//     gateway resolved by ARP). Pod A on node1 streams TCP (gonet) to pod C
//     on node2, vxlan across (NetstackCrossNodeVXLAN), or to pod B on node1
//     (NetstackSameNode), 1 MiB per op. Reports MB/s, Gbit/s, pkts/s (data
//     segments and ACKs, each counted once where it enters a router) and
//     allocations per MiB. On 2 cores (AMD EPYC, an idle machine): cross
//     node 2.4-3.0 Gbit/s (median 2.6) and about 245k pkts/s, same node
//     2.6-3.2 Gbit/s and about 250k pkts/s; about 830 allocs per MiB, one
//     per packet, all gVisor's (its NIC's write path), none the routers'.
//     The pods' TCP costs far more than the routers' forwarding (the frame
//     benchmark above moves nine times the packets), so this is what a
//     userspace pod pair gets through taprouter, not the routers' limit.
//     TestNetstackDeliversExactBytes holds it to moving real data: 4 MiB of
//     pseudo-random bytes arrive with the same SHA-256.
//   - bench/compare (make bench): the demo topology in network namespaces,
//     iperf3 and ping through taprouter and through the kernel (kindnet-style
//     routes, flannel-style kernel vxlan) in the same run, as ratios, plus
//     taprouterd's CPU per GB and its memory at 110 ports and 5,000 peers:
//     one table, bench/results.json and the chart bench/results.svg.
//
// The per-package micro-benchmarks live beside their code: fib (lookup at
// 100, 10k and 1M routes), router (one worker's forwarding path), tunnel
// (encap and decap), link (devices).
package bench
