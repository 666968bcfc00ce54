package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeRun writes a --json file with one row per name → taprouter value
// (nil: the measurement failed).
func writeRun(t *testing.T, dir, name string, rows map[string]*float64) string {
	t.Helper()
	r := Results{Commit: "c", Settings: "s"}
	for _, n := range []string{"tcp", "ping", "udp"} {
		if v, ok := rows[n]; ok {
			unit := map[string]string{"tcp": "Gbit/s", "ping": "µs", "udp": "packets/s"}[n]
			r.Rows = append(r.Rows, Row{Name: n, Taprouter: v, Unit: unit})
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func f(v float64) *float64 { return &v }

// Medians (the lower middle of an even count, as in the table), ranges and
// changes against the first label, per row, with a failed run left out.
func TestSummarize(t *testing.T) {
	dir := t.TempDir()
	args := []string{
		"old=" + writeRun(t, dir, "o1", map[string]*float64{"tcp": f(5), "ping": f(400), "udp": f(80000)}),
		"new=" + writeRun(t, dir, "n1", map[string]*float64{"tcp": f(6), "ping": f(440), "udp": f(100000)}),
		"old=" + writeRun(t, dir, "o2", map[string]*float64{"tcp": f(7), "ping": f(420), "udp": f(90000)}),
		"new=" + writeRun(t, dir, "n2", map[string]*float64{"tcp": nil, "ping": f(480), "udp": f(120000)}),
		"old=" + writeRun(t, dir, "o3", map[string]*float64{"tcp": f(6), "ping": f(410), "udp": f(70000)}),
	}
	runs, err := readRuns(args)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := summarize(&out, runs); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ROW UNIT old (3 runs) new (2 runs) new vs old",
		"tcp Gbit/s 6.00 (5.00–7.00) 6.00 (6.00–6.00) +0 %",
		"ping µs 410 (400–420) 440 (440–480) +7 %",
		"udp packets/s 80000 (70000–90000) 100000 (100000–120000) +25 %",
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("summary:\n%s\nwant %d lines", out.String(), len(want))
	}
	for i, line := range lines {
		if got := strings.Join(strings.Fields(line), " "); got != want[i] {
			t.Errorf("line %d = %q, want %q", i, got, want[i])
		}
	}
}

func TestReadRunsRejects(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{"), 0o644)
	for _, args := range [][]string{
		nil,
		{"no-label"},
		{"=" + bad},
		{"x=" + filepath.Join(dir, "missing.json")},
		{"x=" + bad},
	} {
		if _, err := readRuns(args); err == nil {
			t.Errorf("readRuns(%q) succeeded, want an error", args)
		}
	}
}
