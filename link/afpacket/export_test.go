package afpacket

import "golang.org/x/net/bpf"

// OpenPerFrame is Open with one system call per frame both ways
// (recvmsg(2), writev(2)), as the socket was before recvmmsg and sendmmsg.
func OpenPerFrame(ifname string) (*Socket, error) { return open(ifname, []bpf.Instruction(nil), false) }

// Calls returns the recvmmsg calls s made and the frames they received,
// and the sendmmsg calls and the frames they sent.
func Calls(s *Socket) (recvCalls, recvFrames, sendCalls, sendFrames uint64) {
	return s.recv.calls.Load(), s.recv.frames.Load(), s.send.calls.Load(), s.send.frames.Load()
}
