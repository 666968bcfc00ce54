// Command taprouter-cni is taprouter's CNI plugin, installed as
// /opt/cni/bin/taprouter: a container runtime runs it to attach a pod to the
// node's taprouterd and to detach it (see package cni).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/taprouter/taprouter/cni"
)

func main() {
	skel.PluginMainFuncs(cni.Funcs(), cni.Versions, cni.About)
}
