// Package api is taprouterd's control and status API: HTTP with JSON bodies
// over a unix socket (root-only, default /run/taprouter/taprouterd.sock).
//
// HTTP+JSON rather than gRPC: the API is small, curl can speak it
// (`curl --unix-socket /run/taprouter/taprouterd.sock http://taprouter/v1/stats`),
// and it needs no code generation or extra dependency in the CNI plugin.
// Every path starts with its version, /v1/.
//
//	GET    /v1/status                              node, podCIDR, gateway, pod MTU, backend
//	GET    /v1/ready                               {"ready": true}: 200 when the node forwards, else 503 and {"ready": false, "problems": [...]}
//	GET    /v1/stats                               {"counters": {"forwarded": 12, "drop_spoofed": 1, ...}}
//	GET    /v1/ports                               every port of the router
//	GET    /v1/routes                              the FIB
//	GET    /v1/peers                               the applied peers: [{"node","address","podCIDRs","backend","vtepMAC","id"}]
//	GET    /v1/neighbours                          the neighbour tables
//	POST   /v1/ports                               attach a pod: {"containerID","ifName","netns","ip","mtu"}
//	GET    /v1/ports/{containerID}/{ifName}        one attached pod
//	GET    /v1/ports/{containerID}/{ifName}/check  {"ok": false, "problems": ["eth0 MTU is 1500, want 1450"]}
//	DELETE /v1/ports/{containerID}/{ifName}        detach (idempotent: 204 also when unknown)
//	POST   /v1/gc                                  {"valid": [...]}: detach every other API-attached pod
//
// Errors are {"error": "...", "code": "invalid|not-found|conflict|unavailable|internal",
// "field": "ip"} with the matching HTTP status (400, 404, 409, 503, 500).
// Client is the Go client the CNI plugin uses.
package api
