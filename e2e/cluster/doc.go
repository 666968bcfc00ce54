// Package cluster holds the tests that run a real Kubernetes cluster on
// this machine (internal/kubecluster: control plane, and three nodes with
// containerd, runc, kubelet and kube-proxy in network namespaces), install
// taprouter into it the way a user would (kubectl apply -f deploy/, its
// DaemonSet's init container installs the plugin on every node), and check
// it with Kubernetes' own e2e conformance specs (bin/k8s/e2e.test) and with
// pods the tests create: a 20-pod Deployment's full mesh and its cleanup, a
// hostPort through portmap, and a TCP stream that outlives restarts and an
// image upgrade of the DaemonSet.
//
// They take minutes, so they run only when TAPROUTER_CLUSTER_TESTS=1 (make
// test-cluster, which make test runs after the other tests) and need the
// binaries of make k8s-tools and the images of make images.
package cluster
