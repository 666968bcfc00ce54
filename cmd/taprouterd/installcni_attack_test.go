package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A temporary name planted in the node's directories as a symlink (by a
// hostPath pod of another add-on, or a half-removed older install) must
// not make the root init container write through it: the file it points
// to stays as it was, and the plugin and config still install.
// (found by attack review)
func TestInstallCNIPlantedSymlink(t *testing.T) {
	from, conflist, binDir, netDir := installDirs(t)
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{filepath.Join(binDir, ".taprouter.tmp"), filepath.Join(netDir, ".10-taprouter.conflist.tmp")} {
		if err := os.Symlink(victim, l); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--from", from, "--conflist", conflist, "--bin-dir", binDir, "--net-dir", netDir}
	var stdout, stderr bytes.Buffer
	if code := runInstallCNI(args, &stdout, &stderr); code != 0 {
		t.Fatalf("install-cni: exit %d: %s", code, stderr.String())
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "root:secret" {
		t.Fatalf("the symlink's target now holds %q (%v)", b, err)
	}
	if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the symlink's target's mode is now %v (%v)", fi.Mode(), err)
	}
	wantDir(t, "bin dir", binDir,
		"host-local -rwxr-xr-x #!binary host-local",
		"portmap -rwxr-xr-x #!binary portmap",
		"taprouter -rwxr-xr-x #!binary taprouter")
	conf, _ := os.ReadFile(conflist)
	wantDir(t, "net dir", netDir, "10-taprouter.conflist -rw-r--r-- "+string(conf))
}
