// Command pause is the pod sandbox's process, as upstream's
// build/pause/linux/pause.c: it sleeps until SIGINT or SIGTERM and then
// exits 0, and it reaps every child that exits, since it may be PID 1 of
// a pod's shared PID namespace, where orphans are reparented to it. Build
// it static (CGO_ENABLED=0); `make images` puts it at /pause in the image
// named as the e2e suite's pause image.
package main
