package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `NAME
    image - build a container image tarball from local files, without a registry

SYNOPSIS
    go run -C tools/image . --tag NAME:TAG --out FILE.tar [ITEM...] [CONFIG...]

DESCRIPTION
    Writes a single-layer image as a docker-archive tarball (manifest.json with
    RepoTags, the config and the layer), the format that
        ctr -n k8s.io images import FILE.tar
    and docker load read; the image is named exactly --tag. Nothing is fetched:
    every file comes from this machine. Every entry is owned by root and dated
    1970-01-01T00:00:00Z, entries are sorted, and the image's creation time is
    the same epoch, so equal inputs give a byte-identical tarball. Parent
    directories are added with mode 0755. The image's platform is linux and the
    architecture this tool runs on.

    Items (each may be repeated; a path given twice with different contents is
    an error):

    --file SRC:DST[:MODE]
        Copy the regular file SRC (symlinks followed) to DST in the image, with
        the octal MODE or, without one, SRC's permission bits. A DST ending in
        / is a directory: the file keeps its base name. A SRC with a glob
        (* ? [) copies every match into the directory DST, which must end in /
        (a SRC that exists as it is spelled, as /usr/bin/[, is not a glob).

    --bin SRC:DST
        Like --file for an ELF executable or shared object, and also every
        shared library it needs and the dynamic loader, at the absolute paths
        ldd(1) resolves them to on this machine (for example
        /lib/x86_64-linux-gnu/libc.so.6 and /lib64/ld-linux-x86-64.so.2). A
        static binary brings nothing else. Executables get mode 0755. Globs
        work as for --file; use them for modules a program loads with dlopen,
        which ldd cannot see (iptables' /usr/lib/x86_64-linux-gnu/xtables/).

    --symlink DST:TARGET
        A symbolic link DST pointing to TARGET (relative or absolute, as given).

    --dir DST[:MODE]
        An empty directory (default mode 0755; 1777 for a /tmp).

    Configuration:

    --entrypoint ARG    one element of the entrypoint (repeat for more)
    --cmd ARG           one element of the default command (repeat for more)
    --env K=V           an environment variable (repeat for more)
    --workdir DIR       the working directory
    --user USER         the user the image runs as (default: root)

    --tag NAME:TAG      the image's name, with an explicit tag
                        (registry.k8s.io/pause:3.10.2; a name without a
                        registry, as taprouter/taprouter:dev, is what ctr
                        imports as docker.io/taprouter/taprouter:dev)
    --out FILE          the tarball to write (written as FILE.tmp, then renamed)

EXAMPLES
    go run -C tools/image . --tag registry.k8s.io/pause:3.10.2 \
        --out bin/images/pause.tar --bin bin/pause:/pause --entrypoint /pause

    go run -C tools/image . --tag example/tools:1 --out tools.tar \
        --bin /usr/bin/dash:/bin/dash --symlink /bin/sh:dash \
        --bin /usr/bin/curl:/usr/bin/curl --env PATH=/usr/bin:/bin

EXIT STATUS
    0 on success, 2 for bad usage, 1 for any other error.
`

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		if err == errUsage {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = fmt.Errorf("bad usage (see --help)")

// run parses args, adding the items to a spec in the order given, and
// writes the tarball.
func run(args []string, stderr io.Writer) error {
	s := newSpec()
	var out string
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the error alone; --help prints the manual
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprint(os.Stdout, usage)
			return nil
		}
		if a == "--" {
			break
		}
	}
	fs.StringVar(&s.tag, "tag", "", "")
	fs.StringVar(&out, "out", "", "")
	fs.StringVar(&s.workdir, "workdir", "", "")
	fs.StringVar(&s.user, "user", "", "")
	fs.Func("file", "", func(v string) error {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("want SRC:DST[:MODE], got %q", v)
		}
		mode := int64(-1)
		if len(parts) == 3 {
			m, err := parseMode(parts[2])
			if err != nil {
				return err
			}
			mode = m
		}
		pairs, err := expand(parts[0], parts[1])
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := s.addFile(p[0], p[1], mode); err != nil {
				return err
			}
		}
		return nil
	})
	fs.Func("bin", "", func(v string) error {
		src, dst, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("want SRC:DST, got %q", v)
		}
		pairs, err := expand(src, dst)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := s.addBin(p[0], p[1]); err != nil {
				return err
			}
		}
		return nil
	})
	fs.Func("symlink", "", func(v string) error {
		dst, target, ok := strings.Cut(v, ":")
		if !ok || target == "" {
			return fmt.Errorf("want DST:TARGET, got %q", v)
		}
		return s.put(dst, &entry{typ: tar.TypeSymlink, target: target})
	})
	fs.Func("dir", "", func(v string) error {
		dst, m, hasMode := strings.Cut(v, ":")
		mode := int64(0o755)
		if hasMode {
			var err error
			if mode, err = parseMode(m); err != nil {
				return err
			}
		}
		return s.put(dst, &entry{typ: tar.TypeDir, mode: mode})
	})
	fs.Func("entrypoint", "", func(v string) error { s.entrypoint = append(s.entrypoint, v); return nil })
	fs.Func("cmd", "", func(v string) error { s.cmd = append(s.cmd, v); return nil })
	fs.Func("env", "", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want K=V, got %q", v)
		}
		s.env = append(s.env, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "image: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if s.tag == "" || out == "" {
		fmt.Fprintln(stderr, "image: --tag and --out are required")
		return errUsage
	}
	return s.write(out)
}
