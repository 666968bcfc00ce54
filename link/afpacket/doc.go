// Package afpacket owns the raw Ethernet socket on the underlay interface
// that taprouter's "direct" mode (flannel host-gw style: frames straight to
// the peer node's MAC) sends and receives through, as a link.Device.
//
// The socket is AF_PACKET/SOCK_RAW bound to one interface for every
// EtherType. PACKET_IGNORE_OUTGOING keeps frames that this host transmits on
// the interface (taprouter's own and the kernel's) out of the receive queue,
// so Read sees only what arrives from the wire. The socket does not take the
// frames away from the kernel: the node's own traffic keeps flowing, and
// Read returns a copy of it too, which the caller filters out.
//
// The socket is non-blocking and registered with Go's netpoller through
// os.NewFile and syscall.RawConn. Read drains every ready frame in one
// wake-up, one recvfrom(2) per frame; Write skips a frame the kernel rejects
// instead of stopping at it. These loops are package link/internal/fdio's,
// shared with package tap. A PACKET_MMAP ring (TPACKET_V3) and a BPF filter
// for pod traffic are the next steps if this path needs to be faster. System
// calls go through golang.org/x/sys/unix.
package afpacket
