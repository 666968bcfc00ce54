// Package fdio owns batch I/O on a non-blocking file descriptor: the
// descriptor's wait (PollConn), the plain read and write loops of a TAP/TUN
// device without offloads (package tap), and the reject policy (OnReject)
// that the offload-aware loops of package link/internal/vnet share with them.
//
// Every per-packet descriptor of a link (TAP, packet socket, UDP socket) is
// a PollConn, a syscall.RawConn that waits in ppoll(2) and is never
// registered with the Go netpoller. The netpoller's epoll registration
// would make the kernel run epoll's callback, and often wake a thread of
// the daemon, for every frame queued to the descriptor and every sent frame
// it frees, even while a reader is busy and would find the frame anyway; a
// descriptor under ppoll has a waiter only while a Read or Write waits. On
// the 2-core bench machine that was worth 12 % more 64-byte packets/s, 25 %
// more TCP cross-node, and a third of the vxlan ping time
// (bench/profiles/README.md, "Out of the netpoller"). A waiting Read holds
// an OS thread; Close wakes it (an eventfd in the same ppoll).
//
// Reader.Read blocks only for the
// first frame, then receives until EAGAIN or the batch is full, one system
// call per frame; the owner supplies that call (read(2) for a TAP). A frame
// that the call reports longer than its buffer is dropped and counted.
// Writer.Write sends one frame per write(2) and either stops at the first
// frame the kernel rejects or skips it, as its owner chooses.
//
// Neither allocates per call: the closure that RawConn runs is built once,
// in NewReader or NewWriter, and the call's arguments and results live in the
// Reader or Writer, under a mutex that serialises calls; PollConn's wait
// keeps its pollfd array on the stack. Errors are returned
// as the RawConn or the system call reported them; mapping them (for example to
// link.ErrClosed after Close) is the owner's job.
package fdio
