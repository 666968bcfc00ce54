//go:build tools

// Package tools records the commands make k8s-tools builds, so that go mod
// tidy keeps their dependencies. The build tag keeps it out of every build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
