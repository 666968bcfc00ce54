//go:build tools

// Package tools records the command make k8s-tools builds (etcd), so that
// go mod tidy keeps its dependencies. The build tag keeps it out of every build.
package tools

import _ "go.etcd.io/etcd/server/v3"
