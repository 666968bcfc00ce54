package gso_test

import "gvisor.dev/gvisor/pkg/tcpip"

func tcpipAddr(a, b, c, d byte) tcpip.Address { return tcpip.AddrFrom4([4]byte{a, b, c, d}) }
