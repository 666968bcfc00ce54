package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taprouter/taprouter/api"
)

// readyBackend answers GET /v1/ready with problems; nothing else is asked.
type readyBackend struct {
	api.Backend
	problems []string
}

func (b readyBackend) Ready() api.Readiness {
	return api.Readiness{Ready: len(b.problems) == 0, Problems: b.problems}
}

func serveReady(t *testing.T, problems ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.sock")
	ln, err := api.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.NewHandler(readyBackend{problems: problems})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

// taprouterd ready: exit 0 only when ready; not ready prints the problems
// on one line and exits 1, except with --live; no daemon is 1 either way.
func TestReadyCommand(t *testing.T) {
	ready := serveReady(t)
	notReady := serveReady(t, "host port taprouter0 is not up (ip link set taprouter0 up)", "the node's pod CIDR is not known yet")
	none := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args []string
		code int
		out  string // the whole output, or its start when it ends in "…"
	}{
		{[]string{"--socket", ready}, 0, "ready\n"},
		{[]string{"--socket", ready, "--live"}, 0, "ready\n"},
		{[]string{"--socket", notReady}, 1, "not ready: host port taprouter0 is not up (ip link set taprouter0 up); the node's pod CIDR is not known yet\n"},
		{[]string{"--socket", notReady, "--live"}, 0, "alive, not ready: host port taprouter0 is not up (ip link set taprouter0 up); the node's pod CIDR is not known yet\n"},
		{[]string{"--socket", none}, 1, "not answering: taprouterd is not reachable at " + none + ": …"},
		{[]string{"--socket", none, "--live"}, 1, "not answering: taprouterd is not reachable at " + none + ": …"},
		{[]string{"--socket", ready, "extra"}, 2, ""},
		{[]string{"--bogus"}, 2, ""},
	} {
		var stdout, stderr bytes.Buffer
		code := runReady(tc.args, &stdout, &stderr)
		out := stdout.String()
		match := out == tc.out
		if prefix, ok := strings.CutSuffix(tc.out, "…"); ok {
			match = strings.HasPrefix(out, prefix) && strings.HasSuffix(out, "\n") && strings.Count(out, "\n") == 1
		}
		if code != tc.code || !match {
			t.Errorf("taprouterd ready %q: exit %d, stdout %q (stderr %q); want exit %d, stdout %q", tc.args, code, out, stderr.String(), tc.code, tc.out)
		}
	}
}

// installDirs makes an image side (plugins and conflist) and a node side.
func installDirs(t *testing.T) (from, conflist, binDir, netDir string) {
	t.Helper()
	root := t.TempDir()
	from, binDir, netDir = filepath.Join(root, "image"), filepath.Join(root, "opt-cni-bin"), filepath.Join(root, "net.d")
	for _, d := range []string{from, binDir, netDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"taprouter", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(from, name), []byte("#!binary "+name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conflist = filepath.Join(root, "10-taprouter.conflist")
	if err := os.WriteFile(conflist, []byte(`{"cniVersion": "1.1.0", "name": "taprouter", "plugins": [{"type": "taprouter"}, {"type": "portmap"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return from, conflist, binDir, netDir
}

// dirList is "name mode content" for each file of dir, sorted by name.
func dirList(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+" "+fi.Mode().String()+" "+string(b))
	}
	return out
}

func wantDir(t *testing.T, what, dir string, want ...string) {
	t.Helper()
	got := dirList(t, dir)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// install-cni puts exactly the plugins (0755, whatever their mode in the
// image) and the config in place, leaves no temporary file, and replaces
// what an older version installed.
func TestInstallCNI(t *testing.T) {
	from, conflist, binDir, netDir := installDirs(t)
	if err := os.WriteFile(filepath.Join(binDir, "portmap"), []byte("old portmap"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(binDir, "bridge"), []byte("someone else's"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--from", from, "--conflist", conflist, "--bin-dir", binDir, "--net-dir", netDir}
	var stdout, stderr bytes.Buffer
	if code := runInstallCNI(args, &stdout, &stderr); code != 0 {
		t.Fatalf("install-cni: exit %d: %s", code, stderr.String())
	}
	wantDir(t, "bin dir", binDir,
		"bridge -rwxr-xr-x someone else's",
		"host-local -rwxr-xr-x #!binary host-local",
		"portmap -rwxr-xr-x #!binary portmap",
		"taprouter -rwxr-xr-x #!binary taprouter")
	conf, _ := os.ReadFile(conflist)
	wantDir(t, "net dir", netDir, "10-taprouter.conflist -rw-r--r-- "+string(conf))
	wantOut := "installed " + filepath.Join(binDir, "taprouter") + " (18 bytes)\n" +
		"installed " + filepath.Join(binDir, "host-local") + " (19 bytes)\n" +
		"installed " + filepath.Join(binDir, "portmap") + " (16 bytes)\n" +
		"installed " + filepath.Join(netDir, "10-taprouter.conflist") + "\n"
	if stdout.String() != wantOut {
		t.Errorf("output %q, want %q", stdout.String(), wantOut)
	}
}

// The config is written last: when a plugin is missing from the image,
// install-cni fails naming it and writes no config (the plugins before it
// are in place, under their own names); a config that no runtime would
// load is refused before anything is written.
func TestInstallCNIConfigLast(t *testing.T) {
	from, conflist, binDir, netDir := installDirs(t)
	if err := os.Remove(filepath.Join(from, "portmap")); err != nil {
		t.Fatal(err)
	}
	args := []string{"--from", from, "--conflist", conflist, "--bin-dir", binDir, "--net-dir", netDir}
	var stdout, stderr bytes.Buffer
	if code := runInstallCNI(args, &stdout, &stderr); code != 1 {
		t.Fatalf("install-cni without portmap: exit %d, want 1", code)
	}
	if want := "taprouterd install-cni: plugin portmap: open " + filepath.Join(from, "portmap") + ": no such file or directory\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	wantDir(t, "bin dir", binDir, "host-local -rwxr-xr-x #!binary host-local", "taprouter -rwxr-xr-x #!binary taprouter")
	wantDir(t, "net dir", netDir)

	for _, tc := range []struct{ conf, err string }{
		{`{"cniVersion": "1.1.0", "name": "taprouter", "plugins": [{"type": "taprouter"}`, "not a JSON network config list: unexpected end of JSON input"},
		{`{"cniVersion": "1.1.0", "plugins": [{"type": "taprouter"}]}`, `no "name"`},
		{`{"name": "taprouter", "plugins": [{"type": "taprouter"}]}`, `no "cniVersion"`},
		{`{"cniVersion": "1.1.0", "name": "taprouter", "type": "taprouter"}`, `no "plugins"`},
		{`{"cniVersion": "1.1.0", "name": "taprouter", "plugins": [{"type": "taprouter"}, {}]}`, `plugins[1]: no "type"`},
	} {
		_, conflist, binDir, netDir := installDirs(t)
		if err := os.WriteFile(conflist, []byte(tc.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		stderr.Reset()
		if code := runInstallCNI([]string{"--from", from, "--conflist", conflist, "--bin-dir", binDir, "--net-dir", netDir}, &stdout, &stderr); code != 1 {
			t.Errorf("config %s: exit %d, want 1", tc.conf, code)
		}
		if want := "taprouterd install-cni: --conflist: " + conflist + ": " + tc.err + "\n"; stderr.String() != want {
			t.Errorf("config %s: stderr %q, want %q", tc.conf, stderr.String(), want)
		}
		wantDir(t, "bin dir after a bad config", binDir)
		wantDir(t, "net dir after a bad config", netDir)
	}
}
