// Package fib is taprouter's forwarding information base: the router's own
// longest-prefix-match table from destination address to next hop (a local
// pod port, a peer node, the host port, the router itself, blackhole or
// unreachable). The kernel's routing table is not involved.
//
// Readers never lock: Table publishes an immutable trie through an
// atomic.Pointer, and writers, serialized by a mutex, build the next trie by
// copy-on-write (path copying) and swap it in. Update batches many changes
// into one swap; past Len()/128 changes it deep copies the trie once and
// changes the copy in place, so bulk loads run at in-place speed.
//
// Addresses and prefixes are net/netip values, IPv4 and IPv6 alike.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are rejected rather than
// treated as IPv4: they never appear in real packets (RFC 4291 §2.5.5.2;
// RFC 6890 marks ::ffff:0:0/96 not forwardable), and when one shows up it
// is almost always a 16-byte net.IP converted without Unmap. Lookup of one
// misses; Insert of a prefix inside ::ffff:0:0/96 panics (see CheckPrefix).
//
// # Why gaissmai/bart's Fast trie
//
// fib_bench_test.go compares, on cluster-shaped tables (a default route,
// node /24 blocks, ~15 pod /32s per block; lookups a third pod addresses,
// a third other hosts in blocks, a third random), bart.Table, bart.Fast and
// a hand-written LPM (hashLPM: one Go map per prefix length and a bitmap
// of the lengths in use, in hashlpm_test.go). Go 1.26, 2-vCPU AMD EPYC VM
// shared with other jobs; min (median) of 6-8 runs, all 0 allocs/op:
//
//	Lookup ns/op          100 routes   10k routes   1M routes
//	bart.Table            14.1 (14.3)  15.8 (18.8)  57-160
//	bart.Fast              9.1 (9.3)   13.3 (15.4)  51-160
//	hashLPM               18.1 (18.6)  19.4 (26.6)  41-90
//	fib.Table (on Fast)   10.5 (10.6)  13.2 (17.4)  as bart.Fast
//
//	one Insert or Delete, other CPU reading   100      10k      1M
//	bart.Table                              1.6µs    3.1µs    5.3µs
//	bart.Fast (fib.Table)                   2.3µs    3.7µs    6.8µs
//	hashLPM (copies one length's map)       1.6µs    130µs    7-11ms
//
// At 1M routes every lookup is a few cache misses, so those numbers
// mostly measure the memory system and the VM's neighbours. hashLPM wins
// there (fewer dependent loads) but loses at the sizes a node really holds
// (one /24 per node plus its own pods: hundreds to ~10k routes), and its
// copy-on-write update costs a copy of a whole map, 1000 times bart's path
// copy at 1M routes, so pod churn would stall (a persistent hash map would
// fix that at the price of more dependent loads per probe; not tried).
// bart.Fast is the fastest at realistic sizes, 15-35% ahead of
// bart.Table, for 1.4x the memory (57 vs
// 40 bytes per route), ~1.3x the per-change cost and 1.6x the bulk-load
// time, all of which are off the packet path. bart also gives path-copying
// InsertPersist/DeletePersist and Clone, which the lock-free publication
// needs, and handles IPv6 with the same code.
//
// Other numbers (fib.Table): Lookup from 2 goroutines at once 5.2 ns/op
// at 100 routes, 6.5 at 10k (readers share only the atomic pointer);
// bulk load of 1M routes in one Update 122-145ms; an Update of k changes
// to a 1M table costs ~4.4µs per change up to k = 7812 (Len()/128), one
// deep copy of ~27ms after that, then ~0.1µs per change (65536 changes:
// ~65ms).
package fib
