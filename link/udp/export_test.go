package udp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetSockoptInt sets an integer socket option on c's socket, for tests
// that make the kernel refuse GSO (SO_NO_CHECK).
func SetSockoptInt(c *Conn, level, opt, value int) error {
	var serr error
	if err := c.conn.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		return err
	}
	return serr
}

// SizeofGSOCmsg is the size of a message's control buffer, which must hold
// the cmsg space the kernel is told of.
var SizeofGSOCmsg = int(unsafe.Sizeof(gsoCmsg{}))

// RefuseGSO makes WriteTo's system call fail every GSO message with errno,
// as a kernel that refuses UDP_SEGMENT does: the messages before the first
// GSO one of a call are sent, and the call fails if it starts with one. It
// returns how many GSO messages it refused so far and a function that
// undoes it.
func RefuseGSO(errno unix.Errno) (refused func() int, restore func()) {
	real := sendmmsg
	n := 0
	sendmmsg = func(fd uintptr, msgs []unix.Mmsghdr) (int, unix.Errno) {
		for i, m := range msgs {
			if m.Hdr.Iovlen > 1 {
				if i == 0 {
					n++
					return 0, errno
				}
				return real(fd, msgs[:i])
			}
		}
		return real(fd, msgs)
	}
	return func() int { return n }, func() { sendmmsg = real }
}
