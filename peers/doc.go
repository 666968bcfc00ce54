// Package peers owns the model of the other nodes — who they are, where
// they are on the underlay and which pod ranges they own — and the one
// reconciler that turns a desired set of them into router state.
//
// A Peer is identified by its node name, never by its position in a list.
// A source (the static config file, or the Kubernetes Node watcher in
// package kube) computes the whole desired set and hands it to
// Reconciler.Apply, again whenever it changes. Apply validates the set with
// one set of rules (Validate), keeps the previous entry of a peer that turns
// invalid and reports why, and applies only the difference: the router's
// FIB routes and tunnel peers, the direct backend's neighbours, and the node
// routes in the node's namespace. It orders each change so that no packet is
// ever sent to a node that does not own its destination: a route is removed
// before its peer, and a peer is added before its routes.
package peers
