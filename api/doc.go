// Package api is taprouterd's control and status API: HTTP with JSON bodies
// over a unix socket (root-only, default /run/taprouter/taprouterd.sock).
//
// HTTP+JSON rather than gRPC: the API is small, curl can speak it
// (`curl --unix-socket /run/taprouter/taprouterd.sock http://taprouter/v1/stats`),
// and it needs no code generation or extra dependency in the CNI plugin.
// Every path starts with its version, /v1/.
//
//	GET /v1/stats       {"counters": {"forwarded": 12, "drop_spoofed": 1, ...}}
//	GET /v1/ports       [{"id":1,"name":"pa","kind":"pod","ip":"10.244.0.4",...}]
//	GET /v1/routes      [{"prefix":"10.244.1.0/24","nexthop":"peer node2"}, ...]
//	GET /v1/neighbours  [{"port":"pa","ip":"10.244.0.4","mac":"..","state":"reachable"}]
package api
