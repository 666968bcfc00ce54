// Package podnet owns the kernel-side plumbing around taprouter's devices:
// the pod ports (a TAP moved into each pod's network namespace as eth0, with
// the pod's address and routes) and the host port (a TUN in the node's
// namespace with routes to the pod CIDRs). It also reads the underlay
// interface's address, MAC and MTU. A restarted daemon adopts the pods'
// persistent TAPs (AdoptPod) and CheckPod lists how a pod's interface
// differs from what it should be, for CNI CHECK. DetachPod deletes only the
// caller's TAP: the one of the index AttachPod or AdoptPod returned, or one
// no one else has open (ErrNotOwned otherwise).
//
// Configuration outside the caller's namespace goes through
// github.com/vishvananda/netlink with a handle whose sockets were opened in
// the pod's namespace. Devices are created in the calling thread's
// namespace, which is the node's: the daemon runs there (for tests, see
// netnstest.NS.Do). Two things must run inside the pod: opening those
// netlink sockets, and re-opening a pod's existing TAP (AdoptPod), because a
// TUN/TAP device is found by name in the namespace of whoever opens
// /dev/net/tun. Both go through one function (internal/inns.Do) that enters the pod
// on a locked OS thread and moves the thread back before releasing it; a
// thread whose way back failed stays locked and dies with its goroutine, so
// no other goroutine can find itself in the pod's namespace.
//
// A pod's namespace is opened with OpenNetNS, which refuses what is not a
// network namespace (without blocking on a FIFO) and the node's own
// namespace, where a pod's address and default route would take over the
// node's traffic.
//
// The pod side is what kindnet and Calico configure: the pod's IP as a /32,
// a link-scope route to the gateway and a default route via it. With
// gateway 169.254.1.1 this is exactly Calico's layout; with the pod CIDR's
// .1 it is kindnet's.
package podnet
