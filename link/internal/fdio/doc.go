// Package fdio owns batch I/O on a non-blocking file descriptor through the
// Go netpoller: the plain read and write loops of a TAP/TUN device without
// offloads (package tap), and the reject policy (OnReject) that the
// offload-aware loops of package link/internal/vnet share with them.
//
// The descriptor is registered with the netpoller by its owner (os.NewFile,
// then syscall.RawConn), so a blocked Read or Write parks a goroutine, not an
// OS thread, and closing the file wakes it. Reader.Read blocks only for the
// first frame, then receives until EAGAIN or the batch is full, one system
// call per frame; the owner supplies that call (read(2) for a TAP). A frame
// that the call reports longer than its buffer is dropped and counted.
// Writer.Write sends one frame per write(2) and either stops at the first
// frame the kernel rejects or skips it, as its owner chooses.
//
// Neither allocates per call: the closure that RawConn runs is built once,
// in NewReader or NewWriter, and the call's arguments and results live in the
// Reader or Writer, under a mutex that serialises calls. Errors are returned
// as RawConn or the system call reported them; mapping them (for example to
// link.ErrClosed after Close) is the owner's job.
package fdio
