// Package fdio owns batch I/O on a non-blocking file descriptor through the
// Go netpoller: the read and write loops that the TAP/TUN devices (package
// tap) and the AF_PACKET socket (package afpacket) share.
//
// The descriptor is registered with the netpoller by its owner (os.NewFile,
// then syscall.RawConn), so a blocked Read or Write parks a goroutine, not an
// OS thread, and closing the file wakes it. Reader.Read blocks only for the
// first frame, then receives until EAGAIN or the batch is full, one system
// call per frame; the owner supplies that call (read(2) for a TAP, recvmsg(2)
// with MSG_TRUNC for a packet socket). A frame longer than its buffer is
// dropped and counted, unless the owner kept it whole (link.RxLarge): then
// it ends the batch. Writer.Write sends one frame per
// write(2) and either stops at the first frame the kernel rejects or skips it,
// as its owner chooses.
//
// Neither allocates per call: the closure that RawConn runs is built once,
// in NewReader or NewWriter, and the call's arguments and results live in the
// Reader or Writer, under a mutex that serialises calls. Errors are returned
// as RawConn or the system call reported them; mapping them (for example to
// link.ErrClosed after Close) is the owner's job.
package fdio
