// Package arp owns taprouter's address resolution: the ARP codec (RFC 826,
// IPv4 over Ethernet) and the router's own neighbour table.
//
// The router resolves next hops itself instead of asking the kernel, so this
// package mirrors the kernel's neighbour state machine (NUD states, timers and
// defaults of net.ipv4.neigh.*): a neighbour is INCOMPLETE while broadcast
// requests are outstanding, REACHABLE after a reply, STALE once ReachableTime
// has passed without confirmation, DELAY and then PROBE (unicast requests)
// when a STALE entry is used, FAILED when nobody answered, and STATIC when it
// was configured.
//
// As the kernel does by default (arp_accept=0), Learn creates no entry from
// a reply nobody asked for: a reply completes an entry being resolved, and
// only a request for one of our own addresses creates one, as Stale (see
// Claim); any other claim for an unknown neighbour is counted in
// Stats.Unsolicited and changes nothing. Resolve starts a resolution ahead
// of traffic, so that the reply to it is taken; Keep also keeps the
// neighbour's entry (an idle one is re-probed by unicast, not collected),
// for neighbours such as configured peer nodes whose known MAC must always
// be there to defend.
//
// Unlike the kernel, which lets a reply with another MAC replace a known one
// once its one-second locktime is over, Learn never replaces a usable MAC on
// the word of one ARP packet: anyone on a shared link can send an
// unsolicited reply. The known MAC is re-probed with unicast requests
// (RFC 5227's conflict detection applied to neighbours); the claimed MAC is
// taken only when the known one stops answering, and is then probed in
// turn. Conflicts are counted in Stats.Conflicts.
//
// A neighbour is keyed by the router port it lives on and its IPv4 address.
// Table.Lookup is the forwarding hot path: it reads an immutable map
// published through an atomic pointer and atomic per-entry fields, takes no
// lock and does not allocate. Everything else (misses, replies, timers) takes
// the table's mutex.
//
// The table has no goroutines and reads time only through a Clock: the router
// calls Table.Tick periodically, and tests drive it with a fake clock. The
// table never touches a device either; it asks for requests to be sent and
// hands queued packets back through Hooks, which it calls without holding its
// lock.
//
// The package uses only the standard library: the codec is 28 fixed bytes,
// and a general packet library would add allocations and indirection to a
// path the router runs for every ARP frame.
package arp
