package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The tests below check the images `make images` built, in
// TAPROUTER_IMAGES (default ../../bin/images); each skips, saying so, when
// its tarball is not there. The chroot ones need root.

func imagesDir() string {
	if d := os.Getenv("TAPROUTER_IMAGES"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "bin", "images")
}

// builtImage returns the path of bin/images/NAME.tar or skips.
func builtImage(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(imagesDir(), name+".tar")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not built (make images): %v", p, err)
	}
	return p
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot, ip netns")
	}
}

// makefileVar reads NAME := VALUE from the root Makefile.
func makefileVar(t *testing.T, name string) string {
	t.Helper()
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + `\s*:?=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatalf("Makefile: no %s", name)
	}
	v := string(m[1])
	if v == "registry.k8s.io/coredns/coredns:$(COREDNS_VERSION)" {
		v = "registry.k8s.io/coredns/coredns:" + makefileVar(t, "COREDNS_VERSION")
	}
	return v
}

// extract unpacks the image's file system into a new temporary directory.
func extract(t *testing.T, file string) string {
	t.Helper()
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
			if err == nil {
				err = os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var f *os.File
			f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, os.FileMode(h.Mode&0o777))
			if err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		default:
			err = fmt.Errorf("unexpected type %c", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
	return root
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return fm
}

// inImage runs argv chrooted into root, in the network namespace netns
// when not empty, with the image's PATH; it returns stdout and stderr
// together.
func inImage(t *testing.T, root, netns string, argv ...string) (string, error) {
	t.Helper()
	// chroot(8), so that a command without a / is looked up in the image.
	cmd := exec.Command("chroot", append([]string{root}, argv...)...)
	if netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, "chroot", root}, argv...)...)
	}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkNeeded asserts that every dynamic ELF file of the image finds each
// library it needs (DT_NEEDED) in the image, and its loader (PT_INTERP).
func checkNeeded(t *testing.T, root string) (elves int) {
	t.Helper()
	libdirs := []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
		"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		f, err := elf.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		elves++
		for _, pr := range f.Progs {
			if pr.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(pr.Open())
				interp := strings.TrimRight(string(b), "\x00")
				if _, err := os.Stat(filepath.Join(root, interp)); err != nil {
					t.Errorf("%s: loader %s missing", strings.TrimPrefix(p, root), interp)
				}
			}
		}
		needed, _ := f.ImportedLibraries()
		for _, n := range needed {
			found := false
			for _, d := range libdirs {
				if _, err := os.Stat(filepath.Join(root, d, n)); err == nil {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: needs %s, not in the image", strings.TrimPrefix(p, root), n)
			}
		}
		return nil
	})
	return elves
}

func TestImageTags(t *testing.T) {
	for _, tc := range []struct {
		file, tagVar, entry string
		cmd                 []string
	}{
		{"pause", "PAUSE_IMAGE", "/pause", nil},
		{"agnhost", "AGNHOST_IMAGE", "/agnhost", []string{"pause"}},
		{"coredns", "COREDNS_IMAGE", "/coredns", nil},
		{"taprouter", "TAPROUTER_IMAGE", "/usr/local/bin/taprouterd", nil},
		{"glibc-dns-testing", "GLIBC_DNS_IMAGE", "", []string{"/bin/sh"}},
		{"nginx", "NGINX_IMAGE", "", []string{"nginx", "-g", "daemon off;"}},
		{"busybox", "BUSYBOX_IMAGE", "", []string{"sh"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := builtImage(t, tc.file)
			want := makefileVar(t, tc.tagVar)
			if got := repoTags(t, p); len(got) != 1 || got[0] != want {
				t.Errorf("RepoTags %q, want [%q]", got, want)
			}
			img, err := tarball.ImageFromPath(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if tc.entry == "" && len(cf.Config.Entrypoint) != 0 ||
				tc.entry != "" && (len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != tc.entry) {
				t.Errorf("entrypoint %q, want [%q]", cf.Config.Entrypoint, tc.entry)
			}
			if strings.Join(cf.Config.Cmd, "\x00") != strings.Join(tc.cmd, "\x00") {
				t.Errorf("cmd %q, want %q", cf.Config.Cmd, tc.cmd)
			}
			if tc.entry != "" {
				hs := layerHeaders(t, p)
				if h := hs[tc.entry]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 {
					t.Errorf("%s: %+v, want a 0755 file", tc.entry, h)
				}
			}
		})
	}
}

// TestE2EImageNames: the Makefile's names are those of the e2e suite of
// K8S_VERSION (test/utils/image/manifest.go in the module cache).
func TestE2EImageNames(t *testing.T) {
	out, err := exec.Command("go", "list", "-C", "../k8s", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Skipf("k8s.io/kubernetes not in the module cache (make k8s-tools): %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "test/utils/image/manifest.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, registry, tagVar string }{
		{"Agnhost", "registry.k8s.io/e2e-test-images", "AGNHOST_IMAGE"},
		{"Pause", "registry.k8s.io", "PAUSE_IMAGE"},
		{"GlibcDnsTesting", "registry.k8s.io/e2e-test-images", "GLIBC_DNS_IMAGE"},
		{"Nginx", "registry.k8s.io/e2e-test-images", "NGINX_IMAGE"},
		{"BusyBox", "registry.k8s.io/e2e-test-images", "BUSYBOX_IMAGE"},
	} {
		m := regexp.MustCompile(`configs\[` + tc.id + `\] = Config\{list\.\w+, "([^"]+)", "([^"]+)"\}`).FindSubmatch(src)
		if m == nil {
			t.Fatalf("manifest.go: no configs[%s]", tc.id)
		}
		want := tc.registry + "/" + string(m[1]) + ":" + string(m[2])
		if got := makefileVar(t, tc.tagVar); got != want {
			t.Errorf("%s = %s, e2e wants %s", tc.tagVar, got, want)
		}
	}
}

func TestAgnhostImage(t *testing.T) {
	p := builtImage(t, "agnhost")
	needRoot(t)
	root := extract(t, p)
	if n := checkNeeded(t, root); n < 10 {
		t.Errorf("%d ELF files, want the agnhost tools", n)
	}
	// /bin/sh is dash, the very binary of the build machine.
	if l, err := os.Readlink(filepath.Join(root, "bin/sh")); err != nil || l != "dash" {
		t.Errorf("/bin/sh -> %q (%v), want dash", l, err)
	}
	hostDash, _ := exec.LookPath("dash")
	a, _ := os.ReadFile(hostDash)
	b, _ := os.ReadFile(filepath.Join(root, "bin/dash"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("/bin/dash (%d bytes) is not the host's %s (%d bytes)", len(b), hostDash, len(a))
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Size() == 0 {
			t.Errorf("/%s: %v", f, err)
		}
	}
	for _, tc := range []struct {
		argv []string
		want string // a regexp the output must match
	}{
		{[]string{"/bin/sh", "-c", "echo ok; echo $((6*7))"}, `^ok\n42\n$`},
		// dash has no [[ ]]; bash and busybox ash do. (No /dev in a bare
		// chroot: the runtime mounts it in a container.)
		{[]string{"/bin/sh", "-c", "[[ 1 ]] 2>&1 && echo notdash || echo dash"}, `^/bin/sh: 1: \[\[: not found\ndash\n$`},
		{[]string{"nc", "-h"}, `(?m)^\s+-u\s+UDP mode`},
		{[]string{"curl", "--version"}, `^curl \d+\.\d+`},
		// As service.go runs it; nothing listens on port 1 of loopback: 4, a network failure.
		{[]string{"/bin/sh", "-c", "wget -T 1 -q -O - http://127.0.0.1:1/; echo $?; wget -T 5 -qO- http://127.0.0.1:1/; echo $?"}, `^4\n4\n$`},
		{[]string{"/agnhost", "--help"}, `(?s)netexec.*porter`},
		{[]string{"/agnhost-2", "--help"}, `(?s)netexec.*porter`},
		{[]string{"/coredns", "-version"}, `CoreDNS-\d`},
		{[]string{"dig", "-v"}, `DiG \d`},
		{[]string{"ip", "-V"}, `iproute2`},
		{[]string{"ss", "-V"}, `iproute2`},
		{[]string{"bash", "-c", "echo $BASH_VERSION"}, `^5\.`},
		{[]string{"socat", "-V"}, `socat version`},
		{[]string{"iperf", "-v"}, `iperf version`},
		{[]string{"getent", "group", "group-defined-in-image"}, `^group-defined-in-image:x:50000:user-defined-in-image\n$`},
		{[]string{"/bin/sh", "-c", "cd /tmp && echo x > f && cat f && rm f && ls -d /uploads && hostname >h && rm h && sleep 0.01 && seq 3 | wc -l"}, `^x\n/uploads\n3\n$`},
	} {
		out, err := inImage(t, root, "", tc.argv...)
		if !regexp.MustCompile(tc.want).MatchString(out) {
			t.Errorf("%q: %v, output %q; want %s", tc.argv, err, out, tc.want)
		}
	}
}

func TestTaprouterImage(t *testing.T) {
	p := builtImage(t, "taprouter")
	needRoot(t)
	root := extract(t, p)
	if n := checkNeeded(t, root); n < 50 {
		t.Errorf("%d ELF files, want taprouterd, the plugins, iptables and its modules", n)
	}
	for _, f := range []string{"usr/local/bin/taprouterd", "usr/lib/taprouter/cni/taprouter",
		"usr/lib/taprouter/cni/host-local", "usr/lib/taprouter/cni/portmap"} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("/%s: %v %v", f, fi, err)
		}
	}
	host, err := exec.Command("iptables", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("host iptables --version: %v %s", err, host)
	}
	out, err := inImage(t, root, "", "iptables", "--version")
	if err != nil || out != string(host) {
		t.Errorf("image iptables --version: %v %q; host says %q", err, out, host)
	}
	if out, err := inImage(t, root, "", "taprouterd", "--help"); !strings.Contains(out, "Usage") && !strings.Contains(out, "usage") {
		t.Errorf("taprouterd --help: %v %q", err, out)
	}

	// The nat table of a namespace of our own, with the modules
	// --masquerade uses (comment, MASQUERADE).
	ns := fmt.Sprintf("h-images-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	rule := []string{"-t", "nat", "-A", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-d", "10.244.0.0/16",
		"-p", "tcp", "-m", "comment", "--comment", "taprouter image test", "-j", "MASQUERADE"}
	if out, err := inImage(t, root, ns, append([]string{"iptables"}, rule...)...); err != nil {
		t.Fatalf("iptables %q: %v %s", rule, err, out)
	}
	want := `-A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -p tcp -m comment --comment "taprouter image test" -j MASQUERADE`
	out, err = inImage(t, root, ns, "iptables", "-t", "nat", "-S", "POSTROUTING")
	if err != nil || out != "-P POSTROUTING ACCEPT\n"+want+"\n" {
		t.Errorf("iptables -t nat -S: %v %q, want the rule %q", err, out, want)
	}
	out, err = inImage(t, root, ns, "iptables-save", "-t", "nat")
	if err != nil || !strings.Contains(out, want+"\n") {
		t.Errorf("iptables-save: %v %q", err, out)
	}
	if out, err := inImage(t, root, ns, "iptables-restore", "--test"); err != nil {
		t.Errorf("iptables-restore --test: %v %s", err, out)
	}
}

func TestCorednsImage(t *testing.T) {
	p := builtImage(t, "coredns")
	needRoot(t)
	root := extract(t, p)
	checkNeeded(t, root)
	if out, err := inImage(t, root, "", "/coredns", "-version"); err != nil || !strings.Contains(out, "CoreDNS-"+strings.TrimPrefix(makefileVar(t, "COREDNS_VERSION"), "v")) {
		t.Errorf("coredns -version: %v %q", err, out)
	}
}

// children lists the processes whose parent is pid, with their states
// (R, S, Z, ...), from /proc.
func children(pid int) map[int]string {
	out := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		var state string
		var ppid, me int
		fmt.Sscan(s[:strings.IndexByte(s, ' ')], &me)
		if n, _ := fmt.Sscan(s[i+1:], &state, &ppid); n == 2 && ppid == pid {
			out[me] = state
		}
	}
	return out
}

func TestPauseImage(t *testing.T) {
	p := builtImage(t, "pause")
	needRoot(t)
	root := extract(t, p)
	if n := checkNeeded(t, root); n != 1 {
		t.Errorf("%d ELF files, want only /pause", n)
	}

	// SIGTERM: exit 0.
	var stderr bytes.Buffer
	cmd := exec.Command("chroot", root, "/pause")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(stderr.String(), "Shutting down, got signal: terminated") {
			t.Errorf("after SIGTERM: %v, stderr %q; want exit 0", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause did not exit on SIGTERM")
	}

	// PID 1 of a PID namespace of its own: an orphan is reparented to it
	// and must be reaped when it exits, not left a zombie.
	ns := exec.Command("unshare", "--pid", "--fork", "--kill-child", "chroot", root, "/pause")
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Process.Kill(); ns.Wait() }()
	var pause int
	for i := 0; i < 50 && pause == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		for c := range children(ns.Process.Pid) {
			pause = c
		}
	}
	if pause == 0 {
		t.Fatal("no pause process under unshare")
	}
	// No pipes: the sleep would hold them open, and Run wait for it.
	if err := exec.Command("nsenter", "-t", fmt.Sprint(pause), "-p", "--", "sh", "-c", "sleep 1 & exit 0").Run(); err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if c := children(pause); len(c) != 1 {
		t.Fatalf("children of pause %v, want the orphaned sleep", c)
	}
	time.Sleep(1500 * time.Millisecond)
	if c := children(pause); len(c) != 0 {
		t.Errorf("children of pause after the sleep exited: %v (Z: not reaped)", c)
	}
	syscall.Kill(pause, syscall.SIGTERM)
	if err := ns.Wait(); err != nil {
		t.Errorf("unshare after SIGTERM to pause: %v", err)
	}
}

func TestGlibcDNSImage(t *testing.T) {
	p := builtImage(t, "glibc-dns-testing")
	needRoot(t)
	root := extract(t, p)
	checkNeeded(t, root)
	for _, tc := range []struct {
		argv []string
		want string
	}{
		// The probe of dns.go: check="$(dig ...)" && test -n "$check" && echo OK > /results/...
		{[]string{"sh", "-c", `check="$(echo x)" && test -n "$check" && for i in $(seq 1 2); do echo OK; sleep 0.01; done`}, `^OK\nOK\n$`},
		{[]string{"dig", "-v"}, `DiG \d`},
		{[]string{"getent", "passwd", "root"}, `^root:x:0:0:`},
		{[]string{"/coredns", "-version"}, `CoreDNS-\d`},
	} {
		out, err := inImage(t, root, "", tc.argv...)
		if !regexp.MustCompile(tc.want).MatchString(out) {
			t.Errorf("%q: %v, output %q; want %s", tc.argv, err, out, tc.want)
		}
	}
}

func TestBusyboxImage(t *testing.T) {
	p := builtImage(t, "busybox")
	needRoot(t)
	root := extract(t, p)
	checkNeeded(t, root)
	out, err := inImage(t, root, "", "sh", "-c", "echo ok; busybox | head -1; ls /bin/nc /bin/sh; wget -T 1 -q -O - http://127.0.0.1:1/; echo $?")
	if err != nil || !regexp.MustCompile(`^ok\nBusyBox v1\.\d+.*\n/bin/nc\n/bin/sh\n4\n$`).MatchString(out) {
		t.Errorf("busybox sh: %v %q", err, out)
	}
}

// TestNginxImage serves the welcome page on port 80 of a network
// namespace of its own (with /dev bound into the root inside its mount
// namespace, and a /proc, as a runtime would mount them), fetched with the host's curl.
func TestNginxImage(t *testing.T) {
	p := builtImage(t, "nginx")
	needRoot(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on the host (make deps)")
	}
	root := extract(t, p)
	checkNeeded(t, root)
	os.MkdirAll(filepath.Join(root, "dev"), 0o755)
	os.MkdirAll(filepath.Join(root, "proc"), 0o555)
	ns := fmt.Sprintf("h-images-ngx-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	var logs bytes.Buffer
	ngx := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" && exec chroot "$1" nginx -g 'daemon off;'`, "sh", root)
	ngx.Stdout, ngx.Stderr = &logs, &logs
	if err := ngx.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ngx.Process.Signal(syscall.SIGTERM)
		ngx.Wait()
		if t.Failed() {
			t.Logf("nginx:\n%s", logs.String())
		}
	}()
	var out []byte
	var err error
	for i := 0; i < 50; i++ {
		out, err = exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "2", "http://127.0.0.1/").CombinedOutput()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), "<h1>Welcome to nginx!</h1>") {
		t.Errorf("curl: %v %q", err, out)
	}
}
