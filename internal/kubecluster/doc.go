// Package kubecluster runs a whole Kubernetes cluster on one machine for
// tests and for people: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler in a control-plane network namespace, and N nodes, each a
// network namespace with its own hostname (UTS namespace) and its own mount
// namespace shared by that node's containerd, kubelet and kube-proxy, all on
// one bridged underlay in a switch namespace. Pods are created by kubelet
// through containerd and runc, and networked by whatever CNI plugin the
// node's /etc/cni/net.d names: taprouter, installed by applying deploy/ (its
// DaemonSet's init container writes the plugins and the conflist).
//
// What makes a node a node, and why:
//
//   - Its mount namespace (unshare --mount, bound to a file so that it
//     outlives its processes) has its own /run (tmpfs), /var/lib, /var/log
//     and /opt (bind mounts) and /etc (an overlay of the machine's): the
//     DaemonSet's hostPath volumes (/run/taprouter,
//     /var/lib/taprouter, /etc/cni/net.d, /opt/cni/bin), containerd's root
//     and state, kubelet's root and the pods' network namespaces are
//     node-private, as on real machines. Processes are started in it with
//     nsenter, not ip netns exec, which would give each process a private
//     mount namespace and hide kubelet's volume mounts from containerd. Its
//     / is made rshared, so that mounts propagate into containers that ask
//     for it (HostToContainer).
//   - Its cgroup root (kubelet's cgroupRoot) is a directory of its own in
//     every cgroup v1 hierarchy (these machines have cgroup v1: kubelet runs
//     with failCgroupV1: false).
//   - containerd runs with restrict_oom_score_adj and kubelet with
//     oomScoreAdj 0: the sandbox lacks CAP_SYS_RESOURCE, and runc fails
//     every container that would lower its oom_score_adj.
//
// The control plane is not a node (no kubelet, no CNI), but the API server
// proxies to pods and Services (/api/v1/.../proxy): its namespace routes
// each node's podCIDR via that node's underlay address, as a control-plane
// host outside the pod network would with flannel's host-gw routes.
//
// Nothing is configured in the machine's root network namespace: the API
// server is reached from inside the control-plane namespace (Kubectl) or a
// node; every address is on the test underlay 192.168.49.0/24, whose
// nodes' default route points at the switch namespace, which forwards
// nothing.
//
// Up records everything it creates in <Dir>/state.json before creating it,
// so Down (or `taprouter-cluster down`) removes a cluster also when Up
// failed half-way or the process that ran it is gone: it stops the
// kubelets, removes every pod sandbox through containerd (so the CNI DEL of
// each pod runs), kills every process in the cluster's namespaces and
// cgroups, and removes the cgroups, mounts and namespaces.
package kubecluster
