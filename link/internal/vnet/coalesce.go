package vnet

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/taprouter/taprouter/link"
	"github.com/taprouter/taprouter/link/gso"
	"github.com/taprouter/taprouter/link/internal/fdio"
)

// Coalescing: the receive offload (GRO) of a TAP with tap.Options.Offload,
// and the send side of a packet socket with PACKET_VNET_HDR.
//
// Write merges runs of adjacent frames of one TCP flow into one super-frame
// and writes it with one writev: a virtio_net_hdr asking for GSO_TCPV4, the
// first frame's headers rewritten for the whole, and every frame's payload
// where it lies (no copy). The pod's kernel takes it as a NIC's LRO/GRO
// frame. A frame joins the run before it only if it is what the kernel's
// GRO would merge and nothing is lost by merging:
//
//   - the same Ethernet header, and IPv4 with no options, not a fragment,
//     with the same TOS, flags, TTL and addresses as the first, and,
//     without DF, an ID one more than the frame before it's (the segments
//     cut from the super-frame are numbered so; with DF the ID means
//     nothing, RFC 6864);
//   - TCP with the same ports, acknowledgement number, window and option
//     bytes (timestamps included), flags exactly ACK, or ACK|PSH on the last
//     frame of a run (no SYN, FIN, RST, URG, ECE, CWR: those travel alone);
//   - its sequence number right after the previous frame's payload, a
//     payload no longer than the first's (a shorter one ends the run), and
//     every frame before it as long as the first, whose payload is at
//     least minGSOSize (48) bytes;
//   - valid IPv4 and TCP checksums, checked before merging: the merged frame
//     asks the kernel to trust its checksum, so a corrupt segment must not
//     hide in it.
//
// Runs of UDP datagrams of one flow are merged the same way into a UDP
// super-datagram (GSO_UDP_L4), which the receiving kernel cuts back into
// the same datagrams, as a sender's UDP_SEGMENT: the same Ethernet header,
// IPv4 fields and ID rule as for TCP, the same ports, a valid UDP checksum
// that is not zero (a datagram sent without one keeps it that way), every
// datagram as long as the first but the last, which may be shorter, and
// at least minGSOSize payload bytes in the first.
//
// A run is at most maxCoalesce frames and 65535 bytes of IPv4. If the
// kernel refuses a GSO write (EINVAL on kernels with broken virtio GSO
// handling), GSO writes of that kind (TCP or UDP) stop for the device and
// every frame of it goes alone.

// maxCoalesce is the most frames merged into one super-frame.
const maxCoalesce = 64

// maxHeaders is the longest header block: Ethernet, IPv4 without options
// and TCP with the most options.
const maxHeaders = 14 + 20 + 60

// Coalescer writes frames behind a virtio_net_hdr, merging runs into
// super-frames (see above). Writes are serialised.
type Coalescer struct {
	mu       sync.Mutex
	conn     syscall.RawConn
	onReject fdio.OnReject
	fn       func(fd uintptr) bool
	gsoOK    atomic.Bool // TCP super-frames are taken (coalesced runs, and WriteGSO's)
	udpOK    atomic.Bool // UDP super-frames are taken

	plain [HdrLen]byte     // all zero: no offload
	vhdr  [HdrLen]byte     // the super-frame's
	head  [maxHeaders]byte // the super-frame's headers
	iov   [maxCoalesce + 2]unix.Iovec

	// The current Write's arguments and results.
	bufs   [][]byte
	gso    []link.GSO // WriteGSO's; nil for Write
	offset int
	next   int
	sent   int
	err    error

	// A super-frame the kernel refused whole, being cut: its segmenter
	// and the buffer each segment is written from.
	cut     gso.Segmenter
	scratch []byte

	superFrames, merged, refused, whole, cutWrites atomic.Uint64

	// writev, if set, is called instead of writev(2): tests use it to
	// see what is written and to refuse writes as a kernel would.
	writev func(fd uintptr, iov []unix.Iovec) syscall.Errno

	b *sendBatch // with NewBatchCoalescer
}

// writevIov writes c.iov[:n] to fd with one writev(2); on a packet
// socket, once more after EINVAL (see retryEINVAL).
func (c *Coalescer) writevIov(fd uintptr, n int) syscall.Errno {
	for try := 0; ; try++ {
		var errno syscall.Errno
		if c.writev != nil {
			errno = c.writev(fd, c.iov[:n])
		} else {
			_, _, errno = unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&c.iov[0])), uintptr(n))
		}
		if !c.retryEINVAL(errno, try) {
			return errno
		}
	}
}

// NewCoalescer returns a Coalescer to conn that treats a frame the kernel
// rejects as onReject says (a merged run is rejected as a whole).
func NewCoalescer(conn syscall.RawConn, onReject fdio.OnReject) *Coalescer {
	c := &Coalescer{conn: conn, onReject: onReject}
	c.fn = c.do
	c.gsoOK.Store(true)
	c.udpOK.Store(true)
	return c
}

// Write is link.Device's Write: bufs[i][offset:] in order, stopping at or
// skipping a frame the kernel rejects, as NewCoalescer was told; merged
// frames count one each.
func (c *Coalescer) Write(bufs [][]byte, offset int) (int, error) {
	return c.WriteGSO(bufs, nil, offset)
}

// WriteGSO is link.GSODevice's WriteGSO: Write, where a frame that gso
// says is a super-frame is written whole, behind a virtio header asking
// the kernel to segment it and complete its checksum; if the kernel
// refuses that kind (EINVAL), it is cut here and written segment by
// segment, and so is every one of its kind after it. Runs of plain frames
// are coalesced as Write does; a run never takes in a super-frame.
func (c *Coalescer) WriteGSO(bufs [][]byte, gso []link.GSO, offset int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bufs, c.gso, c.offset, c.next, c.sent, c.err = bufs, gso, offset, 0, 0, nil
	if c.b != nil {
		c.b.runAt = -1
	}
	err := c.conn.Write(c.fn)
	sent := c.sent
	if err == nil {
		err = c.err
	}
	c.bufs, c.gso, c.err = nil, nil, nil
	// A cut the write gave up on (the conn failed while the device was
	// not writable) is abandoned: it reads the caller's buffer, which is
	// the caller's again, and the next call's super-frame is not its rest.
	c.abandonCut()
	return sent, err
}

// abandonCut drops what is left of a super-frame being cut.
func (c *Coalescer) abandonCut() { c.cut = gso.Segmenter{} }

// plainRun is how many frames from c.next on are not super-frames, up to
// maxCoalesce: what a coalesced run may take.
func (c *Coalescer) plainRun() int {
	end := min(len(c.bufs), c.next+maxCoalesce)
	if c.gso == nil {
		return end - c.next
	}
	k := 0
	for c.next+k < end && c.gso[c.next+k].Type == link.GSONone {
		k++
	}
	return k
}

func (c *Coalescer) do(fd uintptr) bool {
	for c.next < len(c.bufs) {
		var errno syscall.Errno
		if c.gso != nil && c.gso[c.next].Type != link.GSONone {
			errno = c.writeSuper(fd, c.bufs[c.next][c.offset:], c.gso[c.next])
			switch errno {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			case 0:
				c.sent++
			default:
				if c.err == nil {
					c.err = errno
				}
				if c.onReject == fdio.StopAtReject {
					return true
				}
			}
			c.next++
			continue
		}
		k := c.coalesceAt()
		if k == 1 && c.b != nil {
			// Frames that go alone: a run of them with one sendmmsg.
			if batched, errno := c.sendAlone(fd); batched {
				switch errno {
				case 0, unix.EINTR:
					continue
				case unix.EAGAIN:
					return false
				}
				if c.err == nil {
					c.err = errno
				}
				if c.onReject == fdio.StopAtReject {
					return true
				}
				c.next++
				continue
			}
		}
		if k == 1 {
			f := c.bufs[c.next][c.offset:]
			c.iov[0].Base, c.iov[1].Base = &c.plain[0], unsafe.SliceData(f)
			c.iov[0].SetLen(HdrLen)
			c.iov[1].SetLen(len(f))
			errno = c.writevIov(fd, 2)
		} else {
			n := c.prepare(c.bufs[c.next:c.next+k], c.offset)
			errno = c.writevIov(fd, n)
			if errno == unix.EINVAL {
				// The kernel refuses GSO writes of this kind: frames
				// of it alone from now on.
				if isUDPv4(c.bufs[c.next][c.offset:]) {
					c.udpOK.Store(false)
				} else {
					c.gsoOK.Store(false)
				}
				c.refused.Add(1)
				if c.b != nil {
					c.b.runAt = -1 // the run sendAlone found is no run any more
				}
				continue
			}
		}
		switch errno {
		case 0:
			c.sent += k
			if k > 1 {
				c.superFrames.Add(1)
				c.merged.Add(uint64(k))
			}
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			if c.err == nil {
				c.err = errno
			}
			if c.onReject == fdio.StopAtReject {
				return true
			}
		}
		c.next += k
	}
	return true
}

// writeSuper writes the super-frame f, described by g: whole, or, once
// the kernel refused its kind, cut (see cutSuper). EINVAL for a whole one
// turns that kind off for the device and cuts this one.
func (c *Coalescer) writeSuper(fd uintptr, f []byte, g link.GSO) syscall.Errno {
	if c.cut.Done() && !superFits(f, g) {
		// Not what g says (a caller's stage rewrote its headers): refused
		// alone, read no further, and not offered to the kernel, whose
		// EINVAL would turn the kind off for the device.
		return unix.EINVAL
	}
	ok := &c.gsoOK
	if g.Type == link.GSOUDPv4 {
		ok = &c.udpOK
	}
	if c.cut.Done() && ok.Load() {
		c.superHeader(f, g)
		c.iov[0].Base, c.iov[1].Base = &c.vhdr[0], unsafe.SliceData(f)
		c.iov[0].SetLen(HdrLen)
		c.iov[1].SetLen(len(f))
		errno := c.writevIov(fd, 2)
		c.iov[1].Base = nil
		if errno != unix.EINVAL {
			if errno == 0 {
				c.whole.Add(1)
			}
			return errno
		}
		ok.Store(false)
		c.refused.Add(1)
	}
	return c.cutSuper(fd, f, g)
}

// superFits reports whether the frame f holds what a super-frame of g's
// kind needs for its virtio header and its cut: an IPv4 header, and the TCP
// (with its whole header) or UDP header behind it, of the right protocol,
// and a segment size.
func superFits(f []byte, g link.GSO) bool {
	if len(f) < 14+20 || g.Size == 0 {
		return false
	}
	ihl := int(f[14]&0x0f) * 4
	if ihl < 20 {
		return false
	}
	if g.Type == link.GSOUDPv4 {
		return f[14+9] == 17 && len(f) >= 14+ihl+8
	}
	if f[14+9] != 6 || len(f) < 14+ihl+20 {
		return false
	}
	thl := int(f[14+ihl+12]>>4) * 4
	return thl >= 20 && 14+ihl+thl <= len(f)
}

// superHeader sets c.vhdr for the super-frame f: GSO of g's kind and
// size, the checksum partial (the field holds the pseudo-header sum). The
// headers' length is f's own.
func (c *Coalescer) superHeader(f []byte, g link.GSO) {
	ihl := int(f[14]&0x0f) * 4
	gsoType, hl, field := uint8(unix.VIRTIO_NET_HDR_GSO_TCPV4), 14+ihl+int(f[14+ihl+12]>>4)*4, 16
	if g.Type == link.GSOUDPv4 {
		gsoType, hl, field = unix.VIRTIO_NET_HDR_GSO_UDP_L4, 14+ihl+8, 6
	} else if f[14+ihl+13]&tcpCWR != 0 {
		gsoType |= unix.VIRTIO_NET_HDR_GSO_ECN // as the kernel marks a super-segment with CWR
	}
	c.vhdr = [HdrLen]byte{unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType}
	binary.NativeEndian.PutUint16(c.vhdr[2:], uint16(hl))
	binary.NativeEndian.PutUint16(c.vhdr[4:], g.Size)
	binary.NativeEndian.PutUint16(c.vhdr[6:], uint16(14+ihl))
	binary.NativeEndian.PutUint16(c.vhdr[8:], uint16(field))
}

// cutSuper writes the super-frame f cut into segments of g.Size payload
// bytes, each alone with its checksums computed. EAGAIN leaves the cut
// where it is, to go on when the device is writable; any other error
// abandons the rest of f and is returned.
func (c *Coalescer) cutSuper(fd uintptr, f []byte, g link.GSO) syscall.Errno {
	if c.cut.Done() {
		if c.scratch == nil {
			c.scratch = make([]byte, link.MaxLarge)
		}
		pkt := f[14:]
		var err error
		if g.Type == link.GSOUDPv4 {
			err = c.cut.ResetUDP(pkt, int(g.Size))
		} else {
			ihl := int(pkt[0]&0x0f) * 4
			err = c.cut.Reset(pkt, ihl+int(pkt[ihl+12]>>4)*4+int(g.Size))
		}
		if err != nil {
			return unix.EINVAL // not what ReadGSO checks: nothing sent
		}
		c.cutWrites.Add(1)
		copy(c.scratch, f[:14])
	}
	for !c.cut.Done() {
		// Next writes the segment; a retry after EAGAIN writes the same
		// one again, so the segmenter moves on only once it is sent.
		saved := c.cut
		n := c.cut.Next(c.scratch[14:])
		if n == 0 {
			c.cut = gso.Segmenter{}
			return unix.EINVAL
		}
		c.iov[0].Base, c.iov[1].Base = &c.plain[0], &c.scratch[0]
		c.iov[0].SetLen(HdrLen)
		c.iov[1].SetLen(14 + n)
		errno := c.writevIov(fd, 2)
		switch errno {
		case 0:
		case unix.EINTR, unix.EAGAIN:
			c.cut = saved
			return errno
		default:
			c.cut = gso.Segmenter{}
			return errno
		}
	}
	return 0
}

// prepare builds the iovecs of the super-frame of run (at least two frames
// that coalesceRun or coalesceRunUDP accepted) and returns how many there
// are.
func (c *Coalescer) prepare(run [][]byte, offset int) int {
	first := run[0][offset:]
	udp := isUDPv4(first)
	hl := udpHeadersLen
	if !udp {
		hl = headersLen(first)
	}
	payload := 0
	for _, b := range run {
		payload += len(b) - offset - hl
	}
	h := c.head[:hl]
	copy(h, first[:hl])
	ip := h[14:]
	binary.BigEndian.PutUint16(ip[2:4], uint16(hl-14+payload))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], ^checksum.Checksum(ip[:20], 0))
	l4Len := hl - 14 - 20 + payload
	gsoType, field := uint8(unix.VIRTIO_NET_HDR_GSO_TCPV4), 16
	if udp {
		gsoType, field = unix.VIRTIO_NET_HDR_GSO_UDP_L4, 6
		binary.BigEndian.PutUint16(ip[20+4:20+6], uint16(l4Len))
	} else {
		ip[20+13] |= run[len(run)-1][offset+14+20+13] & tcpPSH // the last frame's PSH
	}
	binary.BigEndian.PutUint16(ip[20+field:], gso.PseudoHeaderSum(ip, l4Len))

	c.vhdr = [HdrLen]byte{unix.VIRTIO_NET_HDR_F_NEEDS_CSUM, gsoType}
	binary.NativeEndian.PutUint16(c.vhdr[2:], uint16(hl))
	binary.NativeEndian.PutUint16(c.vhdr[4:], uint16(len(first)-hl))
	binary.NativeEndian.PutUint16(c.vhdr[6:], 14+20)
	binary.NativeEndian.PutUint16(c.vhdr[8:], uint16(field))

	c.iov[0].Base = &c.vhdr[0]
	c.iov[0].SetLen(HdrLen)
	c.iov[1].Base = &h[0]
	c.iov[1].SetLen(hl)
	for i, b := range run {
		p := b[offset+hl:]
		c.iov[2+i].Base = unsafe.SliceData(p)
		c.iov[2+i].SetLen(len(p))
	}
	return 2 + len(run)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpCWR = 0x80
)

// headersLen is the length of the Ethernet, IPv4 and TCP headers of a frame
// that mergeable accepted.
func headersLen(f []byte) int { return 14 + 20 + int(f[14+20+12]>>4)*4 }

// mergeable reports whether the frame f may be part of a run, as its first
// frame or a later one: Ethernet, IPv4 without options, not a fragment, of
// exactly its total length, TCP with a payload, flags ACK or ACK|PSH, valid
// checksums.
func mergeable(f []byte) bool {
	if len(f) < 14+20+20 || !plainIPv4(f, 6) {
		return false
	}
	ip := f[14:]
	thl := int(ip[20+12]>>4) * 4
	if thl < 20 || 20+thl >= len(ip) {
		return false // a bad header length, or no payload
	}
	if flags := ip[20+13]; flags&^tcpPSH != tcpACK || ip[20+12]&0x0f != 0 {
		return false // SYN, FIN, RST, URG, ECE, CWR, or the reserved/AE bits
	}
	tcpLen := len(ip) - 20
	return checksum.Checksum(ip[20:], gso.PseudoHeaderSum(ip, tcpLen)) == 0xffff
}

// follows reports whether frame b may follow frame a (the run's previous
// frame) in a run that started with first: same flow and headers, the next
// sequence number, a payload no longer than the first's.
func follows(first, a, b []byte) bool {
	hl := headersLen(first)
	if headersLen(b) != hl || len(b) > len(first) || !sameIPv4(first, a, b) {
		return false
	}
	ft, at, bt := first[34:hl], a[34:], b[34:hl]
	// Ports; acknowledgement number, data offset, window; options.
	if string(ft[0:4]) != string(bt[0:4]) || string(ft[8:13]) != string(bt[8:13]) ||
		string(ft[14:16]) != string(bt[14:16]) || string(ft[20:]) != string(bt[20:]) {
		return false
	}
	aPayload := len(a) - hl
	return binary.BigEndian.Uint32(bt[4:8]) == binary.BigEndian.Uint32(at[4:8])+uint32(aPayload)
}

// plainIPv4 reports whether the frame f (at least 14+20 bytes) is what a
// run may take at the IPv4 layer: Ethernet carrying IPv4 of protocol
// proto, without options, not a fragment, of exactly its total length,
// with a valid header checksum.
func plainIPv4(f []byte, proto uint8) bool {
	ip := f[14:]
	if binary.BigEndian.Uint16(f[12:14]) != 0x0800 || ip[0] != 0x45 || ip[9] != proto ||
		int(binary.BigEndian.Uint16(ip[2:4])) != len(ip) {
		return false
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return false // MF or a fragment offset
	}
	return checksum.Checksum(ip[:20], 0) == 0xffff
}

// sameIPv4 reports whether frame b, after frame a in a run that started
// with first, has first's Ethernet header and IPv4 fields: TOS; flags,
// TTL and protocol; addresses; and, without DF, the ID after a's.
func sameIPv4(first, a, b []byte) bool {
	if string(first[:14]) != string(b[:14]) || first[14+1] != b[14+1] ||
		string(first[14+6:14+10]) != string(b[14+6:14+10]) || string(first[14+12:14+20]) != string(b[14+12:14+20]) {
		return false
	}
	// Without DF, the ID is what a fragment is reassembled by, and the
	// segments cut from the super-frame get the first one's plus their
	// number: they must have those already (the kernel's GRO asks the
	// same). With DF it means nothing (RFC 6864).
	return first[14+6]&0x40 != 0 || binary.BigEndian.Uint16(b[14+4:14+6]) == binary.BigEndian.Uint16(a[14+4:14+6])+1
}

// coalesceRun returns how many frames from bufs[0] form one super-frame:
// 1 if bufs[0] goes alone.
func coalesceRun(bufs [][]byte, offset int) int {
	if len(bufs) < 2 {
		return 1
	}
	first := bufs[0][offset:]
	if !mergeable(first) || first[14+20+13]&tcpPSH != 0 {
		return 1 // a PSH ends a run, so it cannot start one
	}
	if len(first)-headersLen(first) < minGSOSize {
		return 1 // segments a kernel's TCP would not send (see minGSOSize)
	}
	size := len(first)
	total := len(first) - 14
	hl := headersLen(first)
	k := 1
	for k < len(bufs) && k < maxCoalesce {
		prev, b := bufs[k-1][offset:], bufs[k][offset:]
		if len(prev) != size || !mergeable(b) || !follows(first, prev, b) {
			break // only a full-sized frame may have one after it
		}
		if total+len(b)-hl > 0xffff {
			break
		}
		total += len(b) - hl
		k++
		if b[14+20+13]&tcpPSH != 0 {
			break // PSH: the run ends here
		}
	}
	return k
}

// udpHeadersLen is the length of the Ethernet, IPv4 and UDP headers of a
// datagram that mergeableUDP accepted.
const udpHeadersLen = 14 + 20 + 8

// isUDPv4 reports whether the frame f is IPv4 carrying UDP: which rules a
// run starting with it follows.
func isUDPv4(f []byte) bool {
	return len(f) >= 14+20 && binary.BigEndian.Uint16(f[12:14]) == 0x0800 && f[14+9] == 17
}

// mergeableUDP is mergeable for UDP: Ethernet, IPv4 without options, not a
// fragment, of exactly its total length, UDP of exactly the rest, with a
// payload, and valid checksums, the UDP one not zero.
func mergeableUDP(f []byte) bool {
	if len(f) <= udpHeadersLen || !plainIPv4(f, 17) {
		return false
	}
	ip := f[14:]
	udpLen := len(ip) - 20
	if int(binary.BigEndian.Uint16(ip[20+4:20+6])) != udpLen || binary.BigEndian.Uint16(ip[20+6:20+8]) == 0 {
		return false
	}
	return checksum.Checksum(ip[20:], gso.PseudoHeaderSum(ip, udpLen)) == 0xffff
}

// followsUDP is follows for UDP: b may follow a in a run that started
// with first if it has the same Ethernet header, IPv4 fields (the ID as
// follows asks) and ports, and a payload no longer than the first's. Both
// hold at least udpHeadersLen bytes; it does not check that they are
// valid (mergeableUDP does).
func followsUDP(first, a, b []byte) bool {
	return len(b) <= len(first) && sameIPv4(first, a, b) && string(first[34:38]) == string(b[34:38]) // ports
}

// coalesceRunUDP is coalesceRun for UDP datagrams.
func coalesceRunUDP(bufs [][]byte, offset int) int {
	if len(bufs) < 2 {
		return 1
	}
	first := bufs[0][offset:]
	// Below minGSOSize: tiny datagrams (DNS, say) gain little from a merge,
	// and a kernel's TCP would not cut segments that small either. The
	// cheap checks come first: datagrams of interleaved flows are not
	// checksummed only to be refused.
	if len(first)-udpHeadersLen < minGSOSize {
		return 1
	}
	size := len(first)
	total := len(first) - 14
	k := 1
	for k < len(bufs) && k < maxCoalesce {
		prev, b := bufs[k-1][offset:], bufs[k][offset:]
		if len(prev) != size || len(b) < udpHeadersLen || !followsUDP(first, prev, b) {
			break // only a full-sized datagram may have one after it
		}
		if k == 1 && !mergeableUDP(first) {
			return 1 // checked once a second datagram could join it
		}
		if !mergeableUDP(b) {
			break
		}
		if total+len(b)-udpHeadersLen > 0xffff {
			break
		}
		total += len(b) - udpHeadersLen
		k++
	}
	return k
}

// runLen is how many frames from bufs[0] on form one super-frame, 1 if
// bufs[0] goes alone: a UDP run while the device takes UDP super-frames, a
// TCP run while it takes TCP's.
func (c *Coalescer) runLen(bufs [][]byte) int {
	if len(bufs) < 2 {
		return 1
	}
	if isUDPv4(bufs[0][c.offset:]) {
		if c.udpOK.Load() {
			return coalesceRunUDP(bufs, c.offset)
		}
		return 1
	}
	if c.gsoOK.Load() {
		return coalesceRun(bufs, c.offset)
	}
	return 1
}

// Coalesced is what Write merged: super-frames written and the frames in
// them, and how often the kernel refused a GSO write (TCP's or UDP's, each
// once at most: then writes of that kind go alone or cut).
func (c *Coalescer) Coalesced() (superFrames, frames, refused uint64) {
	return c.superFrames.Load(), c.merged.Load(), c.refused.Load()
}

// Whole is what WriteGSO did with super-frames: written whole, and cut.
func (c *Coalescer) Whole() (whole, cut uint64) { return c.whole.Load(), c.cutWrites.Load() }
