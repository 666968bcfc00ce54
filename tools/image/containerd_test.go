package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// containerdDir is where make k8s-tools caches containerd and ctr.
func containerdDir(t *testing.T) string {
	t.Helper()
	// make test names it (CONTAINERD_CACHE): then missing is a failure.
	d := os.Getenv("TAPROUTER_CONTAINERD")
	required := d != ""
	if d == "" {
		home, _ := os.UserHomeDir()
		d = filepath.Join(home, ".cache", "taprouter", "containerd", "v2.4.2")
	}
	for _, f := range []string{"containerd", "ctr"} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			if required {
				t.Fatalf("TAPROUTER_CONTAINERD=%s has no %s: %v", d, f, err)
			}
			t.Skipf("no %s (make k8s-tools, or set TAPROUTER_CONTAINERD): %v", f, err)
		}
	}
	return d
}

// TestContainerdImport imports every built tarball into a private
// containerd (its own root, state, socket and config under a temporary
// directory, in a network namespace and a mount namespace of its own) the
// way a node does, unpacking into the overlayfs snapshotter, and checks
// that the image list is exactly the tags.
func TestContainerdImport(t *testing.T) {
	needRoot(t)
	bin := containerdDir(t)
	want := map[string]string{}
	for _, tc := range []struct{ file, tagVar string }{
		{"pause", "PAUSE_IMAGE"}, {"agnhost", "AGNHOST_IMAGE"},
		{"coredns", "COREDNS_IMAGE"}, {"taprouter", "TAPROUTER_IMAGE"},
		{"glibc-dns-testing", "GLIBC_DNS_IMAGE"}, {"nginx", "NGINX_IMAGE"}, {"busybox", "BUSYBOX_IMAGE"},
	} {
		p := filepath.Join(imagesDir(), tc.file+".tar")
		if _, err := os.Stat(p); err == nil {
			tag := makefileVar(t, tc.tagVar)
			if !strings.Contains(strings.SplitN(tag, "/", 2)[0], ".") {
				tag = "docker.io/" + tag // what ctr and the CRI make of a name without a registry
			}
			want[p] = tag
		}
	}
	if len(want) == 0 {
		t.Skip("no image built (make images)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	sock := filepath.Join(dir, "c.sock")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "opt"))), 0o644)

	ns := fmt.Sprintf("h-images-ctr-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	var logs bytes.Buffer
	// nsenter, not ip netns exec: that mounts a sysfs of the namespace over
	// /sys, hiding /sys/fs/cgroup, which runc needs.
	cd := exec.Command("unshare", "-m", "--propagation", "private", "nsenter", "--net=/run/netns/"+ns,
		filepath.Join(bin, "containerd"), "--config", cfg)
	cd.Stdout, cd.Stderr = &logs, &logs
	cd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")) // the shim, and runc
	if err := cd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("containerd:\n%s", logs.String())
		}
	})
	// ctr's stdout; its stderr (warnings, as cgroup v1's) goes into err.
	ctr := func(args ...string) (string, error) {
		var stderr bytes.Buffer
		c := exec.Command(filepath.Join(bin, "ctr"), append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, stderr.String())
		}
		return string(out), err
	}
	var err error
	for i := 0; i < 100; i++ {
		if _, err = ctr("version"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("containerd did not come up: %v", err)
	}
	var tags []string
	for p, tag := range want {
		if out, err := ctr("images", "import", p); err != nil {
			t.Errorf("ctr images import %s: %v\n%s", p, err, out)
		}
		tags = append(tags, tag)
	}
	out, err := ctr("images", "ls", "-q")
	if err != nil {
		t.Fatalf("ctr images ls: %v %s", err, out)
	}
	got := strings.Fields(out)
	if strings.Join(sorted(got), " ") != strings.Join(sorted(tags), " ") {
		t.Errorf("ctr images ls -q: %q, want %q", got, tags)
	}
	runInContainerd(t, ctr, want)
	// Unpacked for the default snapshotter, as the kubelet needs them.
	out, _ = ctr("images", "check")
	for _, tag := range tags {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tag) + `\s.*complete.*`).MatchString(out) {
			t.Errorf("ctr images check: %s not complete:\n%s", tag, out)
		}
	}
}

// TestContainerdImport's last step: run the images' programs in real
// containers, through containerd's shim and runc (the node's path).
func runInContainerd(t *testing.T, ctr func(...string) (string, error), want map[string]string) {
	t.Helper()
	cgroupParent := fmt.Sprintf("/image-test-%d", os.Getpid())
	t.Cleanup(func() { removeCgroup(t, cgroupParent) })
	if _, err := exec.LookPath("runc"); err != nil {
		t.Logf("no runc (make deps): not running containers")
		return
	}
	tag := func(file string) string {
		for p, tg := range want {
			if filepath.Base(p) == file+".tar" {
				return tg
			}
		}
		return ""
	}
	for i, tc := range []struct {
		file  string
		flags []string
		argv  []string
		want  string
	}{
		{"agnhost", nil, []string{"/bin/sh", "-c", "echo ok; nc -h 2>&1 | grep -c 'UDP mode'; curl --version | head -c 5; /agnhost --help | grep -c netexec"}, "^ok\n1\ncurl 1\n$"},
		{"taprouter", []string{"--cap-add", "CAP_NET_ADMIN"}, []string{"iptables", "-t", "nat", "-S", "POSTROUTING"}, "^-P POSTROUTING ACCEPT\n$"},
		{"busybox", nil, []string{"sh", "-c", "echo ok"}, "^ok\n$"},
	} {
		img := tag(tc.file)
		if img == "" {
			continue
		}
		// Its own network namespace (ctr's default), so iptables sees an
		// empty nat table; its cgroup under one of the test's own (ctr's
		// default, /k8s.io/<id>, would stay behind in every hierarchy).
		id := fmt.Sprintf("h-images-%d-%d", os.Getpid(), i)
		args := append(append([]string{"run", "--rm", "--cgroup", cgroupParent + "/" + id}, tc.flags...), img, id)
		out, err := ctr(append(args, tc.argv...)...)
		if err != nil || !regexp.MustCompile(tc.want).MatchString(out) {
			t.Errorf("ctr run %s %q: %v, output %q; want %s", img, tc.argv, err, out, tc.want)
		}
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}

// removeCgroup removes the cgroup path from every hierarchy under
// /sys/fs/cgroup, deepest directories first.
func removeCgroup(t *testing.T, path string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
	if d := "/sys/fs/cgroup" + path; !slices.Contains(roots, d) {
		roots = append(roots, d) // cgroup v2 alone
	}
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				t.Errorf("cgroup %s left: %v", dirs[i], err)
			}
		}
	}
}
