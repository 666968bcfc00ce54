// Package bench holds taprouter's whole-path benchmarks and the tools that
// compare it with the kernel.
//
//   - go test -bench . ./bench: two routers in one process, wired by an
//     in-memory underlay, forwarding through their public API with their
//     real goroutines: pod frame in on node1, vxlan (or udp) across, pod
//     frame out on node2. No root, no kernel devices. Reports ns/pkt,
//     pkts/s and allocations; TestCrossNodeAllocatesNothing holds the path
//     to zero allocations per packet.
//   - bench/compare (make bench): the demo topology in network namespaces,
//     iperf3 and ping through taprouter and through the kernel (kindnet-style
//     routes, flannel-style kernel vxlan) in the same run, as ratios.
//
// The per-package micro-benchmarks live beside their code: fib (lookup at
// 100, 10k and 1M routes), router (one worker's forwarding path), tunnel
// (encap and decap), link (devices).
package bench
