package afpacket

import (
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// OpenPerFrame is Open with one system call per frame both ways
// (recvmsg(2), writev(2)), as the socket was before recvmmsg and sendmmsg.
func OpenPerFrame(ifname string) (*Socket, error) { return open(ifname, []bpf.Instruction(nil), false) }

// Calls returns the recvmmsg calls s made and the frames they received,
// and the sendmmsg calls and the frames they sent.
func Calls(s *Socket) (recvCalls, recvFrames, sendCalls, sendFrames uint64) {
	return s.recv.calls.Load(), s.recv.frames.Load(), s.send.calls.Load(), s.send.frames.Load()
}

// WaitQueued waits until the kernel queued n frames on s since the last
// WaitQueued (or since s was opened), by PACKET_STATISTICS, which counts
// the frames it queued or dropped for a full buffer, and resets on reading.
// It fails t if they have not come in 5 s, or if one was dropped.
func WaitQueued(t testing.TB, s *Socket, n int) {
	t.Helper()
	queued, drops := 0, 0
	for deadline := time.Now().Add(5 * time.Second); queued < n; time.Sleep(time.Millisecond) {
		var st *unix.TpacketStats
		var err error
		if cerr := s.conn.Control(func(fd uintptr) {
			st, err = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		}); cerr != nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("PACKET_STATISTICS: %v", err)
		}
		queued += int(st.Packets)
		drops += int(st.Drops)
		if time.Now().After(deadline) {
			break
		}
	}
	if queued != n || drops != 0 {
		t.Fatalf("the kernel queued %d frames on %s (%d dropped), want %d", queued, s.name, drops, n)
	}
}
