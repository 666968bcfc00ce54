package tunnel

import "github.com/taprouter/taprouter/link"

// DefaultUDPPort is flannel's udp backend port.
const DefaultUDPPort = 8285

// UDPConfig configures the udp backend.
type UDPConfig struct {
	// Port is the peers' UDP port; 0 means DefaultUDPPort.
	Port uint16
	// MTU is the inner MTU (the pod MTU): Recv splits a super-packet (a
	// kernel sender's segmentation offload) into segments of at most MTU
	// bytes. 0 means as large as Recv's buffers allow.
	MTU int
	// Senders, if not empty, are the sockets Send spreads flows over, as
	// VXLANConfig.Senders. Empty: Send sends through conn, from the port
	// it is bound to. The backend owns them: Close closes them.
	Senders []link.DatagramConn
}

// UDP is IP-in-UDP, flannel's old udp backend: the datagram payload is the
// inner IPv4 packet, with no header of its own.
type UDP struct {
	datagramBackend
}

var _ Tunnel = (*UDP)(nil)

// NewUDP returns a udp backend receiving through conn, a UDP socket bound
// to this node's underlay address and port, and sending through it or
// cfg.Senders. The backend owns conn: Close closes it.
func NewUDP(conn link.DatagramConn, cfg UDPConfig) (*UDP, error) {
	if cfg.Port == 0 {
		cfg.Port = DefaultUDPPort
	}
	u := &UDP{}
	if err := u.init(conn, cfg.Senders, cfg.Port, udpEncap{}, cfg.MTU); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *UDP) Name() string  { return NameUDP }
func (u *UDP) Overhead() int { return OverheadUDP }

// udpEncap is the udp backend's encapsulation: none.
type udpEncap struct{}

func (udpEncap) headerLen() int               { return 0 }
func (udpEncap) writeHeader(h []byte, p Peer) {}
func (udpEncap) checkHeader(d []byte) drop    { return dropNone }
