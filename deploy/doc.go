// Package deploy holds taprouter's Kubernetes manifests (the *.yaml files,
// applied with `kubectl apply -f deploy/`), the CNI network config list
// they install on every node (10-taprouter.conflist), and the tests that
// check them: statically (the DaemonSet's privileges, volumes, probes and
// init container; the ConfigMap's conflist is the file) and against a real
// kube-apiserver (internal/k8stest: a server-side dry run of every
// manifest, a real apply, and what the ServiceAccount may and may not do,
// by `kubectl auth can-i`). It has no Go code of its own.
package deploy
