// Command image builds container image tarballs from files on this
// machine, for clusters that cannot reach a registry: `make images` builds
// the pause, agnhost, coredns and taprouter images with it, and each node
// imports them with `ctr -n k8s.io images import`.
//
// It owns only the assembly: the single layer's tar (sorted entries, root
// owned, every time the Unix epoch, so equal inputs give equal bytes), the
// shared libraries of the ELF files it is given (through ldd), and the
// image config (entrypoint, cmd, env). The manifest, config JSON and the
// docker-archive tarball with its RepoTags are go-containerregistry's
// (pkg/v1/mutate, pkg/v1/tarball). What goes into each image is the
// Makefile's (the images target); the pause program is in ./pause.
//
// A module of its own (github.com/taprouter/taprouter/tools/image), so that
// go-containerregistry stays out of the root go.mod. Run `go run -C
// tools/image . --help` for the manual.
package main
