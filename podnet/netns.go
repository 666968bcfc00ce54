package podnet

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/taprouter/taprouter/internal/inns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Errors of OpenNetNS.
var (
	// ErrNotNetNS: the path exists but is not a network namespace (a
	// regular file, a directory, a FIFO, another kind of namespace).
	ErrNotNetNS = errors.New("not a network namespace")
	// ErrNodeNetNS: the path is the node's own network namespace (the
	// caller's, the process's or the initial one); a pod's TAP, address and
	// default route there would take over the node's traffic.
	ErrNodeNetNS = errors.New("the node's own network namespace, not a pod's")
)

// OpenNetNS opens the network namespace at path (a bind mount such as
// /var/run/netns/NAME, or /proc/PID/ns/net) for use as a pod's. It checks,
// without blocking on what is not a namespace, that path is an nsfs file of
// a network namespace (else an error wrapping ErrNotNetNS, or os.ErrNotExist
// if there is nothing at path), and that the namespace is not the node's:
// not the calling thread's, the process's or PID 1's (else ErrNodeNetNS).
func OpenNetNS(path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG { // nsfs files are regular files
		return nil, fmt.Errorf("%s is a %s: %w", path, fileKind(st.Mode), ErrNotNetNS)
	}
	// O_NONBLOCK: should path be swapped for a FIFO meanwhile, the open
	// does not wait for a writer (and the nsfs check below refuses it).
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if err := checkNetNS(fd, path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// NSID identifies a network namespace: the device and inode numbers of its
// nsfs file, the same whichever path or descriptor names it. Two pods'
// ports with one NSID and one interface name are one interface. The zero
// NSID is no namespace's.
type NSID struct{ Dev, Ino uint64 }

// NetNSID returns the identity of the namespace f, which OpenNetNS opened.
func NetNSID(f *os.File) (NSID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return NSID{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return NSID{Dev: st.Dev, Ino: st.Ino}, nil
}

func checkNetNS(fd int, path string) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return &os.PathError{Op: "fstatfs", Path: path, Err: err}
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is a regular file: %w", path, ErrNotNetNS)
	}
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil {
		return fmt.Errorf("%s: NS_GET_NSTYPE: %v: %w", path, err, ErrNotNetNS)
	} else if t != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is a namespace of another kind (CLONE_NEW* %#x): %w", path, t, ErrNotNetNS)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	// The calling thread's namespace first: a thread that entered another
	// namespace (see inns.Do) may run the process's main thread elsewhere.
	for _, node := range []string{"/proc/thread-self/ns/net", "/proc/self/ns/net", "/proc/1/ns/net"} {
		var ns unix.Stat_t
		if unix.Stat(node, &ns) == nil && ns.Dev == st.Dev && ns.Ino == st.Ino {
			return fmt.Errorf("%s is %s: %w", path, node, ErrNodeNetNS)
		}
	}
	return nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("file of mode %#o", mode)
}

// openNS opens the pod's namespace with OpenNetNS, or uses p.NS when the
// caller opened it; done releases what openNS opened.
func (p Pod) openNS() (ns netns.NsHandle, done func(), err error) {
	f := p.NS
	if f == nil {
		if f, err = OpenNetNS(p.NetNS); err != nil {
			return netns.None(), func() {}, err
		}
	}
	done = func() {
		runtime.KeepAlive(f)
		if p.NS == nil {
			f.Close()
		}
	}
	return netns.NsHandle(f.Fd()), done, nil
}

// newHandleIn returns a netlink handle whose sockets live in ns. It does
// what netlink.NewHandleAt does, but through inns.Do, which keeps a thread
// whose way back failed locked, where NewHandleAt releases it regardless.
func newHandleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inns.Do(ns, func() (err error) {
		h, err = netlink.NewHandle() // sockets of the calling thread's namespace
		return err
	})
	return h, err
}
