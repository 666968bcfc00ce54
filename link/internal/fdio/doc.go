// Package fdio owns batch I/O on a non-blocking file descriptor: how a
// link's descriptor waits (OneShotConn), the plain read and write loops of a
// TAP/TUN device without offloads (package tap), and the reject policy
// (OnReject) that the offload-aware loops of package link/internal/vnet
// share with them.
//
// Every per-packet descriptor of a link (TAP, packet socket, UDP socket) is a
// OneShotConn: a syscall.RawConn whose descriptor is registered one-shot in
// an epoll instance of its own per direction (made by the direction's first
// wait), and that instance in the Go netpoller. A Read or Write that finds
// nothing arms the registration and parks its goroutine; one event wakes it
// and disarms it again. Registered with the netpoller directly (os.NewFile),
// a descriptor is in the runtime's epoll for reads and writes,
// edge-triggered, for its whole life, and the kernel runs epoll's callback,
// waking a thread of the daemon that waits in epoll_wait, for every frame
// queued to it and every sent frame it frees, also while the reader is busy
// and would find the frame anyway. Measured against that on the 2-core bench
// machine, medians of 6 interleaved runs each (bench/profiles/README.md, "Out
// of the netpoller"): 64-byte UDP packets/s +18 % (vxlan) and +24 % (direct),
// TCP -P 4 direct +10 %, CPU per GB 6-7 % less, one TCP stream +4-6 % (within
// the noise), for 6-7 % more ping time (two system calls more per wait:
// epoll_ctl to arm, epoll_wait to take the event, and a nested wake-up).
// Waiting in ppoll(2) instead, without any registration, held an OS thread
// and its P per waiting Read and cost 20 % of same-node TCP; it is not kept.
//
// Reader.Read blocks only for the first frame, then receives until EAGAIN or
// the batch is full, one system call per frame; the owner supplies that call
// (read(2) for a TAP). A frame that the call reports longer than its buffer
// is dropped and counted. Writer.Write sends one frame per write(2) and
// either stops at the first frame the kernel rejects or skips it, as its
// owner chooses.
//
// Neither allocates per call: the closure that RawConn runs is built once, in
// NewReader or NewWriter, and the call's arguments and results live in the
// Reader or Writer, under a mutex that serialises calls; a OneShotConn's
// arming and draining use arrays in the conn. Errors are returned as the
// RawConn or the system call reported them; mapping them (for example to
// link.ErrClosed after Close) is the owner's job.
package fdio
