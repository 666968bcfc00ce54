package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// epoch is the time of every file and of the image: fixed, so that the same
// inputs give the same tarball, byte for byte.
var epoch = time.Unix(0, 0).UTC()

// entry is one path of the image's root file system.
type entry struct {
	typ    byte   // tar.TypeReg, tar.TypeDir or tar.TypeSymlink
	src    string // host file the contents come from (TypeReg)
	mode   int64
	target string // TypeSymlink
}

// spec is what one image is made of.
type spec struct {
	tag        string
	entries    map[string]*entry // by absolute path in the image, cleaned
	entrypoint []string
	cmd        []string
	env        []string
	workdir    string
	user       string
}

func newSpec() *spec { return &spec{entries: map[string]*entry{}} }

// cleanDst makes an image path absolute and clean; "/" itself is refused.
func cleanDst(dst string) (string, error) {
	if dst == "" {
		return "", fmt.Errorf("empty destination path")
	}
	p := path.Clean("/" + dst)
	if p == "/" {
		return "", fmt.Errorf("destination %q is the root", dst)
	}
	return p, nil
}

// put records e at dst; a second, different entry for the same path is an
// error (the same file twice, as two binaries' shared libc, is not).
func (s *spec) put(dst string, e *entry) error {
	p, err := cleanDst(dst)
	if err != nil {
		return err
	}
	if old, ok := s.entries[p]; ok {
		if *old == *e {
			return nil
		}
		if old.typ == tar.TypeDir && e.typ == tar.TypeDir {
			old.mode = e.mode // an explicit --dir wins over an implied parent
			return nil
		}
		return fmt.Errorf("%s: given twice (%s and %s)", p, old.describe(), e.describe())
	}
	s.entries[p] = e
	return nil
}

func (e *entry) describe() string {
	switch e.typ {
	case tar.TypeDir:
		return "directory"
	case tar.TypeSymlink:
		return "symlink to " + e.target
	}
	return "file from " + e.src
}

// expand turns SRC:DST into (src, dst) pairs: with a glob in SRC, DST must
// end in "/" and each match goes into it under its own base name; with DST
// ending in "/", the file goes into it under SRC's base name. A SRC that
// exists as it is named (as /usr/bin/[) is no glob.
func expand(src, dst string) ([][2]string, error) {
	if _, err := os.Lstat(src); err != nil && strings.ContainsAny(src, "*?[") {
		if !strings.HasSuffix(dst, "/") {
			return nil, fmt.Errorf("%s: a glob needs a destination directory ending in /, not %q", src, dst)
		}
		m, err := filepath.Glob(src)
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: matches no file", src)
		}
		var out [][2]string
		for _, f := range m {
			out = append(out, [2]string{f, dst + filepath.Base(f)})
		}
		return out, nil
	}
	if strings.HasSuffix(dst, "/") {
		dst += filepath.Base(src)
	}
	return [][2]string{{src, dst}}, nil
}

// addFile adds the regular file src (symlinks followed) at dst with mode,
// or with src's permission bits when mode < 0.
func (s *spec) addFile(src, dst string, mode int64) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if mode < 0 {
		mode = int64(fi.Mode().Perm())
	}
	return s.put(dst, &entry{typ: tar.TypeReg, src: src, mode: mode})
}

// addBin adds the ELF file src at dst (mode 0755 for executables, src's
// for shared objects) and every shared library it needs, with the dynamic
// loader, at the paths ldd resolves them to on this machine. A static
// binary brings nothing else.
func (s *spec) addBin(src, dst string) error {
	f, err := elf.Open(src)
	if err != nil {
		return fmt.Errorf("%s: not an ELF file: %w", src, err)
	}
	dynamic := false
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			dynamic = true
		}
	}
	isExec := f.Type == elf.ET_EXEC || hasInterp(f)
	f.Close()
	mode := int64(-1)
	if isExec {
		mode = 0o755
	}
	if err := s.addFile(src, dst, mode); err != nil {
		return err
	}
	if !dynamic {
		return nil
	}
	libs, err := sharedLibs(src)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := s.addFile(l, l, -1); err != nil {
			return err
		}
	}
	return nil
}

func hasInterp(f *elf.File) bool {
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

// lddLine matches "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
// and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$`)

// sharedLibs asks ldd for the absolute paths of the libraries src needs.
func sharedLibs(src string) ([]string, error) {
	out, err := exec.Command("ldd", src).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %v: %s", src, err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", src, strings.TrimSpace(line))
		}
		if m := lddLine.FindStringSubmatch(line); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs, nil
}

// parseMode reads an octal mode such as 0644 or 755.
func parseMode(s string) (int64, error) {
	m, err := strconv.ParseInt(s, 8, 64)
	if err != nil || m < 0 || m > 0o7777 {
		return 0, fmt.Errorf("bad mode %q: want octal, as 0755", s)
	}
	return m, nil
}

// layer writes the root file system as one uncompressed tar: every parent
// directory (0755) before its children, in sorted order, owned by root,
// with the fixed epoch as every time.
func (s *spec) layer() ([]byte, error) {
	for p := range s.entries {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := s.entries[d]; ok {
				if e.typ != tar.TypeDir {
					return nil, fmt.Errorf("%s: its parent %s is a %s", p, d, e.describe())
				}
				continue
			}
			s.entries[d] = &entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	paths := make([]string, 0, len(s.entries))
	for p := range s.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := s.entries[p]
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     strings.TrimPrefix(p, "/"),
			Mode:     e.mode,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname = e.target
			h.Mode = 0o777
		case tar.TypeReg:
			data, err := os.ReadFile(e.src)
			if err != nil {
				return nil, err
			}
			h.Size = int64(len(data))
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// image assembles the single-layer image of s.
func (s *spec) image() (v1.Image, error) {
	data, err := s.layer()
	if err != nil {
		return nil, err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: s.entrypoint,
		Cmd:        s.cmd,
		Env:        s.env,
		WorkingDir: s.workdir,
		User:       s.user,
	}
	cf.History = []v1.History{{Created: v1.Time{Time: epoch}, CreatedBy: "taprouter tools/image " + s.tag}}
	return mutate.ConfigFile(img, cf)
}

// write writes s as a docker-archive tarball naming s.tag (RepoTags), the
// format `docker load` and `ctr images import` read.
func (s *spec) write(out string) error {
	// An explicit tag: a missing one would silently become :latest.
	if !strings.Contains(s.tag[strings.LastIndex(s.tag, "/")+1:], ":") {
		return fmt.Errorf("--tag %q: no tag (want NAME:TAG, as registry.k8s.io/pause:3.10.2)", s.tag)
	}
	tag, err := name.NewTag(s.tag, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", s.tag, err)
	}
	img, err := s.image()
	if err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}
