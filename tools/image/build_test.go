package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// readTarball returns the RepoTags of the tarball's manifest.json.
func repoTags(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s: no manifest.json", file)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 {
			t.Fatalf("%s: %d images, want 1", file, len(m))
		}
		return m[0].RepoTags
	}
}

// layerHeaders reads the image's file system: each path's tar header.
func layerHeaders(t *testing.T, file string) map[string]*tar.Header {
	t.Helper()
	img, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out["/"+strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(src, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("no dash on this machine: apt-get install dash")
	}
	out := filepath.Join(dir, "x.tar")
	args := []string{"--tag", "example.test/a/b:v1", "--out", out,
		"--file", src + ":/etc/hello:0640", "--file", src + ":/data/",
		"--bin", dash + ":/bin/dash", "--symlink", "/bin/sh:dash", "--dir", "/tmp:1777",
		"--entrypoint", "/bin/sh", "--entrypoint", "-c", "--cmd", "echo hi", "--env", "A=1", "--workdir", "/data"}
	var stderr bytes.Buffer
	if err := run(args, &stderr); err != nil {
		t.Fatalf("run: %v: %s", err, stderr.String())
	}
	if got := repoTags(t, out); !reflect.DeepEqual(got, []string{"example.test/a/b:v1"}) {
		t.Errorf("RepoTags %q", got)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-c"}) || !reflect.DeepEqual(c.Cmd, []string{"echo hi"}) ||
		!reflect.DeepEqual(c.Env, []string{"A=1"}) || c.WorkingDir != "/data" {
		t.Errorf("config %+v", c)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || cf.Created.Unix() != 0 {
		t.Errorf("os %q arch %q created %v", cf.OS, cf.Architecture, cf.Created)
	}
	hs := layerHeaders(t, out)
	want := map[string]struct {
		typ  byte
		mode int64
	}{
		"/etc": {tar.TypeDir, 0o755}, "/etc/hello": {tar.TypeReg, 0o640},
		"/data/hello.txt": {tar.TypeReg, 0o600}, "/bin/dash": {tar.TypeReg, 0o755},
		"/bin/sh": {tar.TypeSymlink, 0o777}, "/tmp": {tar.TypeDir, 0o1777},
		"/bin": {tar.TypeDir, 0o755}, "/data": {tar.TypeDir, 0o755},
	}
	for p, w := range want {
		h, ok := hs[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: type %c mode %o uid %d gid %d mtime %v, want type %c mode %o root epoch",
				p, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime, w.typ, w.mode)
		}
	}
	if hs["/bin/sh"] != nil && hs["/bin/sh"].Linkname != "dash" {
		t.Errorf("/bin/sh -> %q", hs["/bin/sh"].Linkname)
	}
	// dash is dynamic: its libc and the loader, at ldd's paths.
	libs, err := sharedLibs(dash)
	if err != nil {
		t.Fatal(err)
	}
	var sawLibc, sawLoader bool
	for _, l := range libs {
		if _, ok := hs[l]; !ok {
			t.Errorf("shared library %s of dash: missing", l)
		}
		sawLibc = sawLibc || strings.Contains(l, "/libc.so")
		sawLoader = sawLoader || strings.Contains(l, "/ld-linux")
	}
	if !sawLibc || !sawLoader {
		t.Errorf("ldd found %q: want libc and the loader", libs)
	}
	if len(hs) != len(want)+len(libs)+libDirs(libs) {
		t.Errorf("%d entries: %v", len(hs), keys(hs))
	}

	// Deterministic: the same arguments give the same bytes.
	a, _ := os.ReadFile(out)
	if err := run(args, &stderr); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Error("two builds differ")
	}
}

// libDirs counts the directories the libraries are in, up to /.
func libDirs(libs []string) int {
	dirs := map[string]bool{}
	for _, l := range libs {
		for d := filepath.Dir(l); d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	return len(dirs)
}

func keys(m map[string]*tar.Header) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	return k
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	os.WriteFile(a, []byte("a"), 0o644)
	os.WriteFile(b, []byte("b"), 0o644)
	out := filepath.Join(dir, "x.tar")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tag", []string{"--tag", "example.test/x", "--out", out}, "no tag"},
		{"twice", []string{"--tag", "x/y:1", "--out", out, "--file", a + ":/f", "--file", b + ":/f"}, "given twice"},
		{"parent is a file", []string{"--tag", "x/y:1", "--out", out, "--file", a + ":/f", "--file", b + ":/f/g"}, "its parent /f"},
		{"not ELF", []string{"--tag", "x/y:1", "--out", out, "--bin", a + ":/a"}, "not an ELF"},
		{"glob to file", []string{"--tag", "x/y:1", "--out", out, "--file", dir + "/*:/d"}, "ending in /"},
		{"bad mode", []string{"--tag", "x/y:1", "--out", out, "--file", a + ":/f:9"}, "bad mode"},
		{"no out", []string{"--tag", "x/y:1"}, "required"},
	} {
		var stderr bytes.Buffer
		err := run(tc.args, &stderr)
		msg := stderr.String()
		if err != nil {
			msg += err.Error()
		}
		if err == nil || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: err %v, stderr %q; want %q", tc.name, err, stderr.String(), tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: wrote %s", tc.name, out)
		}
	}
}
