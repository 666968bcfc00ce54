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
)

// HdrLen is the size of struct virtio_net_hdr, which IFF_VNET_HDR puts in
// front of every frame, both ways (TUNSETVNETHDRSZ's default).
const HdrLen = 10

// virtioHdr is a decoded virtio_net_hdr, in the host's byte
// order (legacy virtio; TUNSETVNETLE/BE are not used).
type virtioHdr struct {
	flags, gsoType uint8
	hdrLen         uint16 // not used: the headers' length is read from them
	gsoSize        uint16
	csumStart      uint16 // where the partial checksum's sum starts (bounds-checked)
	csumOffset     uint16 // where its field is, from csumStart
}

func decodeHeader(b []byte) virtioHdr {
	return virtioHdr{
		flags: b[0], gsoType: b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

// RecvFunc receives one frame from fd into iov: iov[0] is the virtio
// header's HdrLen bytes, iov[1] the caller's buffer, iov[2] (if present) the
// rest of the Reader's 64 KB buffer behind it. It returns the bytes received,
// header included, any metadata the descriptor reports besides the header
// (link.RxVLAN from a packet socket's PACKET_AUXDATA; not a partial
// checksum, which the header tells and Read completes), and the errno.
type RecvFunc func(fd uintptr, iov []unix.Iovec) (n int, meta link.RxMeta, errno syscall.Errno)

// Readv is the RecvFunc of a TAP: readv(2), no metadata.
func Readv(fd uintptr, iov []unix.Iovec) (int, link.RxMeta, syscall.Errno) {
	n, _, errno := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), 0, errno
}

// Reader reads frames behind a virtio_net_hdr and hands the caller what
// a device without offloads would have: whole frames of at most the MTU with
// complete checksums. A super-frame (GSO_TCPV4, or GSO_UDP_L4) is read
// whole into the
// reader's own 64 KB buffer and cut into segments of the sender's segment
// size (gso_size, at most the MTU), one per caller buffer; segments that do
// not fit this Read's batch are handed out by the next one, before anything
// new is read. A super-frame read behind other frames whose segments would
// not all fit the rest of the batch, but would fit an empty one, is held
// for the next Read whole, so that its segments stay in one batch.
type Reader struct {
	mu   sync.Mutex
	conn syscall.RawConn
	mtu  int
	recv RecvFunc
	fn   func(fd uintptr) bool

	hdr   [HdrLen]byte
	iov   [3]unix.Iovec
	large []byte // link.MaxLarge bytes

	// A super-frame being cut: its Ethernet header, its metadata and the
	// segmenter over its IPv4 packet (in large).
	seg     gso.Segmenter
	eth     [14]byte
	segMeta link.RxMeta

	// The current Read's arguments and results.
	bufs      [][]byte
	sizes     []int
	meta      []link.RxMeta // nil: not asked for
	gso       []link.GSO    // nil: not asked for (Read, ReadMeta)
	keepWhole bool          // super-frames are handed out whole (gso, offset at most MaxHeadroom), else cut
	offset    int
	n         int
	refused   int  // frames the kernel could not describe in this Read
	held      bool // a super-frame was read that the next Read hands out
	whole     bool // a super-frame was handed out whole: the batch ends
	err       error

	checksums, superFrames, segments, dropped, readWhole atomic.Uint64

	// With NewBatchReader: the batch receive, and the buffer the last
	// super-frame handed out whole is in (one of its overflow slots; nil:
	// large).
	b        *recvBatch
	superBuf []byte
}

// MaxHeadroom is the most headroom ReadGSO keeps in front of a super-frame
// in its buffer: a larger offset makes it cut super-frames as Read does.
const MaxHeadroom = 128

// NewReader returns a Reader of conn for a device of the given MTU that
// receives each frame with recv.
func NewReader(conn syscall.RawConn, mtu int, recv RecvFunc) *Reader {
	r := &Reader{conn: conn, mtu: mtu, recv: recv, large: make([]byte, MaxHeadroom+link.MaxLarge)}
	r.fn = r.do
	r.iov[0].Base = &r.hdr[0]
	r.iov[0].SetLen(HdrLen)
	return r
}

// Stats returns what the Reader did with offloaded frames. Every segment's
// checksum is in Checksums too, and a snapshot taken during a cut never
// shows fewer checksums than segments (Checksums - Segments is the partial
// checksums completed): cut counts a checksum before its segment, and
// Stats reads Segments before Checksums.
func (r *Reader) Stats() link.OffloadStats {
	segments := r.segments.Load()
	return link.OffloadStats{
		Checksums: r.checksums.Load(), SuperFrames: r.superFrames.Load(),
		Segments: segments, Dropped: r.dropped.Load(), ReadWhole: r.readWhole.Load(),
	}
}

// Read is link.Device's Read.
func (r *Reader) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return r.ReadMeta(bufs, sizes, nil, offset)
}

// ReadMeta is link.MetaReader's ReadMeta, meta as the RecvFunc reported it
// (a segment has its super-frame's). Partial checksums are completed, not
// reported.
func (r *Reader) ReadMeta(bufs [][]byte, sizes []int, meta []link.RxMeta, offset int) (int, error) {
	return r.ReadGSO(bufs, sizes, meta, nil, offset)
}

// ReadGSO is link.GSODevice's ReadGSO (with gso nil, ReadMeta): a
// super-frame is handed out whole, in SuperFrame(), as the last frame of
// the batch, its checksum left partial; every other frame as ReadMeta
// hands it out. With an offset beyond MaxHeadroom super-frames are cut,
// and gso says every frame is plain.
func (r *Reader) ReadGSO(bufs [][]byte, sizes []int, meta []link.RxMeta, gso []link.GSO, offset int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Beyond MaxHeadroom super-frames are cut, but gso still says of
	// every frame that it is plain.
	r.keepWhole = gso != nil && offset <= MaxHeadroom
	r.bufs, r.sizes, r.meta, r.gso, r.offset, r.n, r.refused, r.held, r.whole, r.err = bufs, sizes, meta, gso, offset, 0, 0, false, false, nil
	var err error
	for r.drain(); r.n == 0 && len(bufs) > 0 && err == nil && r.err == nil; r.refused = 0 {
		// Again after a batch of frames the kernel could not describe
		// and nothing else (see do): each call of fn is bounded, so that
		// Close is not held up, but Read still returns a frame or an
		// error.
		err = r.conn.Read(r.fn)
	}
	n := r.n
	if err == nil {
		err = r.err
	}
	r.bufs, r.sizes, r.meta, r.gso, r.keepWhole, r.err = nil, nil, nil, nil, false, nil
	return n, err
}

// SuperFrame is the buffer of the super-frame the last ReadGSO handed out:
// it is at SuperFrame()[offset:offset+size].
func (r *Reader) SuperFrame() []byte {
	if r.superBuf != nil {
		return r.superBuf
	}
	return r.large
}

// largeOffset is where in large a super-frame read now starts: the Read's
// offset, when it hands super-frames out whole, else 0.
func (r *Reader) largeOffset() int {
	if r.keepWhole {
		return r.offset
	}
	return 0
}

// handOut records the frame of size bytes in slot r.n.
func (r *Reader) handOut(size int, meta link.RxMeta) {
	r.sizes[r.n] = size
	if r.meta != nil {
		r.meta[r.n] = meta
	}
	if r.gso != nil {
		r.gso[r.n] = link.GSO{}
	}
	r.n++
}

// cut hands out segments of the super-frame being cut, one per free buffer.
func (r *Reader) cut() {
	for !r.seg.Done() && r.n < len(r.bufs) {
		dst := r.bufs[r.n][r.offset:]
		if len(dst) < len(r.eth) {
			r.abandon()
			return
		}
		k := r.seg.Next(dst[len(r.eth):])
		if k == 0 {
			r.abandon() // a buffer too small for a segment
			return
		}
		copy(dst, r.eth[:])
		r.handOut(len(r.eth)+k, r.segMeta)
		r.checksums.Add(1) // before segments: see Stats
		r.segments.Add(1)
	}
}

// abandon drops what is left of the super-frame.
func (r *Reader) abandon() {
	r.seg = gso.Segmenter{}
	r.dropped.Add(1)
}

// do reads frames until the batch is full or none is ready. It returns
// false (wait for readability) only while it has read nothing.
//
// EINVAL is a frame the kernel took off the queue but could not describe
// in a virtio header (a packet socket's GSO frame of a type virtio has no
// name for: SCTP's, or UDP's before Linux 6.2): it is dropped and counted,
// and reading goes on. It is never an error: a host on the underlay can
// send such frames, and a Read error stops the caller for good. After a
// batch of them do returns what it has, possibly nothing; ReadMeta then
// calls it again.
func (r *Reader) do(fd uintptr) bool {
	for r.n < len(r.bufs) && !r.held && !r.whole {
		if !r.seg.Done() {
			r.cut()
			continue
		}
		p := r.bufs[r.n][r.offset:]
		// A frame longer than p continues in large, where it is made
		// whole: large[len(p):] is the third iovec.
		r.iov[1].Base = unsafe.SliceData(p)
		r.iov[1].SetLen(len(p))
		rest := r.large[min(r.largeOffset()+len(p), len(r.large)):]
		r.iov[2].Base = unsafe.SliceData(rest)
		r.iov[2].SetLen(len(rest))
		iovcnt := 3
		if len(rest) == 0 {
			iovcnt = 2
		}
		got, meta, errno := r.recv(fd, r.iov[:iovcnt])
		r.iov[1].Base, r.iov[2].Base = nil, nil // do not pin the caller's buffers
		if errno != 0 {
			retry, ret := r.failed(errno)
			if retry {
				continue
			}
			return ret
		}
		r.accept(got-HdrLen, p, meta)
	}
	return true
}

// failed says what do and doBatch do after a receive call failed with
// errno: call again (retry), or return ret to RawConn (false: wait for
// readability). EINTR is retried; EAGAIN waits unless frames were read;
// EINVAL drops and counts one frame and is retried up to a batch of them;
// any other errno ends the Read, and is its error if nothing was read.
func (r *Reader) failed(errno unix.Errno) (retry, ret bool) {
	switch errno {
	case unix.EINTR:
		return true, false
	case unix.EAGAIN:
		return false, r.n > 0
	case unix.EINVAL:
		r.dropped.Add(1)
		r.refused++
		return r.refused < len(r.bufs), true
	default:
		if r.n == 0 {
			r.err = errno
		}
		return false, true
	}
}

// accept takes the frame just read: size bytes behind the header in r.hdr,
// in p and continued in r.large. It hands out the frame, or the first
// segments of a super-frame, or drops it.
func (r *Reader) accept(size int, p []byte, meta link.RxMeta) {
	if size < 0 {
		r.dropped.Add(1)
		return
	}
	h := decodeHeader(r.hdr[:])
	if h.gsoType == unix.VIRTIO_NET_HDR_GSO_NONE {
		r.plain(h, p, size, meta)
		return
	}
	// A super-frame: whole in large, then handed out or cut.
	off := r.largeOffset()
	size = min(size, len(r.large)-off)
	copy(r.large[off:], p[:min(size, len(p))])
	r.super(h, r.large, off, size, meta)
}

// plain hands out the plain frame of size bytes in p, behind header h.
func (r *Reader) plain(h virtioHdr, p []byte, size int, meta link.RxMeta) {
	// A frame longer than p is handed on truncated, as read(2)
	// truncates it on a device without offloads: the router answers
	// it as too big for its buffer.
	size = min(size, len(p))
	if h.flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 && completeFrameChecksum(p[:size], h) {
		r.checksums.Add(1)
	}
	r.handOut(size, meta)
}

// super takes the super-frame behind header h that is whole in
// large[off:off+size] (off is largeOffset): it hands it out whole, or
// cuts it (or holds it for the next Read), or drops it.
func (r *Reader) super(h virtioHdr, large []byte, off, size int, meta link.RxMeta) {
	if r.keepWhole {
		g, ok := r.checkWhole(h, large[off:off+size])
		if !ok {
			r.dropped.Add(1)
			return
		}
		r.handOut(size, meta)
		r.gso[r.n-1] = g
		r.readWhole.Add(1)
		r.whole = true
		r.superBuf = large
		return
	}
	if !r.startCut(h, large[off:off+size]) {
		r.dropped.Add(1)
		return
	}
	r.segMeta = meta
	r.superFrames.Add(1)
	if r.n > 0 && r.seg.Count() > len(r.bufs)-r.n && r.seg.Count() <= len(r.bufs) {
		// It would be split between this Read and the next: it goes whole
		// with the next, so that the run of its segments reaches the
		// writer (a coalescer, UDP GSO) in one batch.
		r.held = true
		return
	}
	r.cut()
}

// minGSOSize is the smallest segment size taken: Linux's tcp_min_snd_mss.
// A kernel's TCP never sends smaller segments; a pod writing its own virtio
// header could ask for 1-byte ones, 65,000 segments from one write.
const minGSOSize = 48

// startCut starts the segmenter on the super-frame f (Ethernet header and
// an IPv4 packet) with h's segment size:
//
//   - GSO_TCPV4: segments of the sender's segment size, capped at the MTU.
//     The cut follows the sender's segment size, not the MTU alone: after a
//     frag-needed the sender's TCP lowers its MSS, and segments cut to the
//     MTU would exceed the path MTU it learnt.
//   - GSO_UDP_L4 (a sender's UDP_SEGMENT, with USO offered): datagrams of
//     exactly gso_size payload bytes (the last one shorter), which must fit
//     the MTU; at most 128 of them, the kernel's own limit.
func (r *Reader) startCut(h virtioHdr, f []byte) bool {
	gsoType := h.gsoType &^ unix.VIRTIO_NET_HDR_GSO_ECN
	if gsoType != unix.VIRTIO_NET_HDR_GSO_TCPV4 && gsoType != unix.VIRTIO_NET_HDR_GSO_UDP_L4 {
		return false
	}
	if len(f) < len(r.eth)+20 || binary.BigEndian.Uint16(f[12:14]) != 0x0800 {
		return false
	}
	pkt := f[len(r.eth):]
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+20 {
		return false
	}
	// The IPv4 total length of a super-frame is its length (at most 64 KB
	// by construction; the kernel sets it). Reset checks it.
	var err error
	if gsoType == unix.VIRTIO_NET_HDR_GSO_UDP_L4 {
		if ihl+8+int(h.gsoSize) > r.mtu {
			return false
		}
		err = r.seg.ResetUDP(pkt, int(h.gsoSize))
	} else {
		if h.gsoSize < minGSOSize {
			return false
		}
		thl := int(pkt[ihl+12]>>4) * 4
		err = r.seg.Reset(pkt, min(r.mtu, ihl+thl+int(h.gsoSize)))
	}
	if err != nil {
		r.seg = gso.Segmenter{}
		return false
	}
	copy(r.eth[:], f[:len(r.eth)])
	return true
}

// checkWhole checks the super-frame f (Ethernet header and IPv4 packet)
// as startCut does and returns what link.GSO describes it: its segment
// size, capped (for TCP) so that a segment fits the MTU.
func (r *Reader) checkWhole(h virtioHdr, f []byte) (link.GSO, bool) {
	ok := r.startCut(h, f)
	r.seg = gso.Segmenter{}
	if !ok {
		return link.GSO{}, false
	}
	pkt := f[len(r.eth):]
	ihl := int(pkt[0]&0x0f) * 4
	udp := h.gsoType&^unix.VIRTIO_NET_HDR_GSO_ECN == unix.VIRTIO_NET_HDR_GSO_UDP_L4
	// link.GSO promises the transport checksum field holds the
	// pseudo-header sum: what a kernel's TSO or UDP_SEGMENT leaves there,
	// with NEEDS_CSUM at that field. A sender that said otherwise (its
	// own virtio header) gets the sum written, as cutting would have
	// overwritten the field too.
	field := 16
	if udp {
		field = 6
	}
	if h.flags&unix.VIRTIO_NET_HDR_F_NEEDS_CSUM == 0 || int(h.csumStart) != len(r.eth)+ihl || int(h.csumOffset) != field {
		binary.BigEndian.PutUint16(pkt[ihl+field:], gso.PseudoHeaderSum(pkt, len(pkt)-ihl))
	}
	if udp {
		return link.GSO{Type: link.GSOUDPv4, Size: h.gsoSize}, true
	}
	thl := int(pkt[ihl+12]>>4) * 4
	return link.GSO{Type: link.GSOTCPv4, Size: uint16(min(int(h.gsoSize), r.mtu-ihl-thl))}, true
}

// completeFrameChecksum completes the checksum that h says is partial in
// the frame f, as the kernel's skb_checksum_help does: the ones' complement
// sum from csum_start to the end (the field holds the pseudo-header sum)
// stored at csum_start + csum_offset. The sender chose where, so it is
// held to f's bounds, behind the Ethernet header; everything written is in
// f, bytes the pod could have sent as they are. (Where the checksum is need
// not be the outer packet's: a pod that encapsulates itself, in VXLAN or
// IPIP, leaves its inner TCP checksum partial.)
func completeFrameChecksum(f []byte, h virtioHdr) bool {
	start, field := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if start < 14 || field+2 > len(f) {
		return false
	}
	c := ^checksum.Checksum(f[start:], 0)
	if c == 0 {
		c = 0xffff // as the kernel stores a computed 0 (CSUM_MANGLED_0)
	}
	binary.BigEndian.PutUint16(f[field:], c)
	return true
}
