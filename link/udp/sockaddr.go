package udp

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockaddr is room for either a sockaddr_in or a sockaddr_in6; which one it
// holds depends on the socket's family.
type sockaddr = unix.RawSockaddrInet6

const (
	sizeofSockaddrInet4 = unix.SizeofSockaddrInet4
	sizeofSockaddrInet6 = unix.SizeofSockaddrInet6
)

// putPort stores port in network byte order into a sin_port/sin6_port.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// encode writes ap into sa in the socket's family and returns the length,
// or 0 if ap cannot be sent on a socket of that family.
func encode(sa *sockaddr, family int, ap netip.AddrPort) uint32 {
	a := ap.Addr()
	switch {
	case family == unix.AF_INET && a.Is4():
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		putPort(&sa4.Port, ap.Port())
		sa4.Addr = a.As4()
		sa4.Zero = [8]uint8{}
		return sizeofSockaddrInet4
	case family == unix.AF_INET6 && a.IsValid():
		*sa = sockaddr{Family: unix.AF_INET6, Addr: a.As16()} // IPv4 becomes ::ffff:a.b.c.d
		putPort(&sa.Port, ap.Port())
		return sizeofSockaddrInet6
	}
	return 0
}

// decode returns the address in sa; IPv4-mapped IPv6 addresses are unmapped.
func decode(sa *sockaddr) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), getPort(&sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), getPort(&sa.Port))
	}
	return netip.AddrPort{}
}
