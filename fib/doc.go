// Package fib is taprouter's forwarding information base: the router's own
// longest-prefix-match table from destination address to next hop (a local
// pod port, a peer node, the host port, the router itself, blackhole or
// unreachable). The kernel's routing table is not involved.
//
// Readers never lock: Table publishes an immutable trie through an
// atomic.Pointer, and writers, serialized by a mutex, build the next trie by
// copy-on-write (path copying) and swap it in. Update batches many changes
// into one swap; past a size-dependent number of changes it deep copies the
// trie once and changes the copy in place, so bulk loads run at in-place
// speed.
//
// Addresses and prefixes are net/netip values, IPv4 and IPv6 alike.
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are rejected rather than
// treated as IPv4: they never appear in real packets (RFC 4291 §2.5.5.2,
// RFC 6890 marks ::ffff:0:0/96 not forwardable), and when one shows up it
// is almost always a 16-byte net.IP converted without Unmap. Lookup of one
// misses; Insert of a prefix inside ::ffff:0:0/96 panics (see CheckPrefix).
//
// # Why gaissmai/bart
//
// TODO: numbers.
package fib
