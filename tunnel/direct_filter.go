package tunnel

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/net/bpf"

	"github.com/taprouter/taprouter/link"
)

// DirectFilter returns the classic BPF program for the direct backend's
// AF_PACKET socket (afpacket.OpenFiltered): the frames Recv can use, and
// nothing else, reach it. Those are every ARP frame (peers' replies and
// requests, which Recv learns from) and IPv4 frames sent to mac, the
// underlay interface's address, whose destination is in podCIDR, this
// node's pod range. The node's own traffic (its SSH, its kubelet, the API
// server's answers, other nodes' pod ranges) stays with the kernel and is
// never copied to the daemon, where Recv used to count and drop it as
// ignored. The kernel drops what the program refuses before any copy; a
// frame too short for a load is refused too.
//
// 802.1Q-tagged frames are not refused here: the kernel moves the tag out
// of the frame before the filter runs, and Recv drops them by their
// metadata (drop_vlan), so that they are counted.
func DirectFilter(mac link.HardwareAddr, podCIDR netip.Prefix) []bpf.Instruction {
	p := podCIDR.Masked()
	network := binary.BigEndian.Uint32(p.Addr().AsSlice())
	mask := uint32(0)
	if p.Bits() > 0 {
		mask = ^uint32(0) << (32 - p.Bits())
	}
	const accept, drop = 10, 11 // the last two instructions
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2}, // EtherType
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: ethTypeARP, SkipTrue: accept - 2},
		/* 2 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: ethTypeIPv4, SkipTrue: drop - 3},
		/* 3 */ bpf.LoadAbsolute{Off: 0, Size: 4}, // destination MAC, first 4 bytes
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(mac[0:4]), SkipTrue: drop - 5},
		/* 5 */ bpf.LoadAbsolute{Off: 4, Size: 2}, // and the last 2
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(mac[4:6])), SkipTrue: drop - 7},
		/* 7 */ bpf.LoadAbsolute{Off: ethHeaderLen + 16, Size: 4}, // IPv4 destination
		/* 8 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: network, SkipTrue: drop - 10},
		/* 10 */ bpf.RetConstant{Val: 0xffffffff}, // the whole frame (a super-frame is up to 64 KB)
		/* 11 */ bpf.RetConstant{Val: 0},
	}
}
