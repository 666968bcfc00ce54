package tunnel

import (
	"github.com/taprouter/taprouter/link/afpacket"
	"github.com/taprouter/taprouter/link/udp"
)

// The real transports count oversize drops; Stats reads them through
// oversizeCounter, so a rename there must not silently hide them.
var (
	_ oversizeCounter = (*udp.Conn)(nil)
	_ oversizeCounter = (*afpacket.Socket)(nil)
)
