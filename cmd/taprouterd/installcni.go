package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const installCNIUsage = `NAME
    taprouterd install-cni - put the CNI plugins and config on the node

SYNOPSIS
    taprouterd install-cni [--from DIR] [--plugins LIST] [--bin-dir DIR]
                           [--conflist FILE] [--net-dir DIR]

DESCRIPTION
    The DaemonSet's init container. Copies each plugin of LIST from DIR to
    the node's CNI bin directory, then the network configuration list FILE
    to the node's CNI config directory, under the same base name. Every file
    is written under a temporary name that the runtime ignores (a leading
    "." and a ".tmp" suffix), synced, and renamed over the old one, so that
    the runtime never runs a half-copied plugin or reads a half-written
    config; a plugin in use keeps running from the file it started from.
    The config comes last, after every plugin is in place: the runtime
    reports the node's network ready only when a config is there. The
    config must be a JSON object with a cniVersion, a name and at least one
    plugin, each with a type; it is checked before anything is written. A
    failure leaves the config directory as it was.

OPTIONS
    --from DIR       the plugins in the image (default %s).
    --plugins LIST   comma-separated plugin names
                     (default %s).
    --bin-dir DIR    the node's CNI bin directory (default %s).
    --conflist FILE  the network config list
                     (default %s).
    --net-dir DIR    the node's CNI config directory (default %s).

EXIT STATUS
    0 installed; 1 an error, named; 2 usage.
`

// The image's layout, which the DaemonSet's init container relies on.
const (
	defaultCNIFrom     = "/usr/lib/taprouter/cni"
	defaultCNIPlugins  = "taprouter,host-local,portmap"
	defaultCNIBinDir   = "/opt/cni/bin"
	defaultCNIConflist = "/etc/taprouter/10-taprouter.conflist"
	defaultCNINetDir   = "/etc/cni/net.d"
)

// runInstallCNI is `taprouterd install-cni`.
func runInstallCNI(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("taprouterd install-cni", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, installCNIUsage, defaultCNIFrom, defaultCNIPlugins, defaultCNIBinDir, defaultCNIConflist, defaultCNINetDir)
	}
	from := fs.String("from", defaultCNIFrom, "")
	plugins := fs.String("plugins", defaultCNIPlugins, "")
	binDir := fs.String("bin-dir", defaultCNIBinDir, "")
	conflist := fs.String("conflist", defaultCNIConflist, "")
	netDir := fs.String("net-dir", defaultCNINetDir, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "taprouterd install-cni: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	var names []string
	for _, n := range strings.Split(*plugins, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		fmt.Fprintln(stderr, "taprouterd install-cni: --plugins: empty")
		return 2
	}
	if err := installCNI(*from, names, *binDir, *conflist, *netDir, stdout); err != nil {
		fmt.Fprintf(stderr, "taprouterd install-cni: %v\n", err)
		return 1
	}
	return 0
}

// installCNI copies the plugins, then the config; see installCNIUsage.
func installCNI(from string, plugins []string, binDir, conflist, netDir string, log io.Writer) error {
	conf, err := os.ReadFile(conflist)
	if err != nil {
		return fmt.Errorf("--conflist: %w", err)
	}
	if err := checkConflist(conf); err != nil {
		return fmt.Errorf("--conflist: %s: %w", conflist, err)
	}
	for _, name := range plugins {
		if strings.ContainsRune(name, '/') || name == "." || name == ".." {
			return fmt.Errorf("--plugins: %q is not a file name", name)
		}
		src := filepath.Join(from, name)
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		dst := filepath.Join(binDir, name)
		if err := writeAtomic(dst, data, 0o755); err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		fmt.Fprintf(log, "installed %s (%d bytes)\n", dst, len(data))
	}
	dst := filepath.Join(netDir, filepath.Base(conflist))
	if err := writeAtomic(dst, conf, 0o644); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fmt.Fprintf(log, "installed %s\n", dst)
	return nil
}

// checkConflist refuses what no runtime would load as a network config
// list: it must be a JSON object with a name and a non-empty plugins list
// whose entries have a type.
func checkConflist(b []byte) error {
	var list struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type string `json:"type"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("not a JSON network config list: %w", err)
	}
	if list.Name == "" {
		return errors.New(`no "name"`)
	}
	if list.CNIVersion == "" {
		return errors.New(`no "cniVersion"`)
	}
	if len(list.Plugins) == 0 {
		return errors.New(`no "plugins"`)
	}
	for i, p := range list.Plugins {
		if p.Type == "" {
			return fmt.Errorf("plugins[%d]: no \"type\"", i)
		}
	}
	return nil
}

// writeAtomic writes data to path through a temporary file in the same
// directory (".<name>.tmp", which neither the runtime's config loader nor
// its plugin lookup would take) and a rename, syncing the file before and
// the directory after.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp")
	// A file (or a symlink, planted) left under the temporary name goes
	// first, and the new one is created, never opened through a link:
	// root must not write or chmod what a link points to (found by attack
	// review).
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(mode) // the umask does not apply to a plugin's mode
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
