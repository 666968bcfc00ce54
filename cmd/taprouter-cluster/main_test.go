package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
		noManual bool
	}{
		{args: nil, code: 2, err: "no command (up, down, help)", noManual: true},
		{args: []string{"--help"}, code: 0, out: "SYNOPSIS"},
		{args: []string{"help"}, code: 0, out: "taprouter-cluster down [--dir DIR]"},
		{args: []string{"up", "--help"}, code: 0, out: "--keep-on-failure"},
		{args: []string{"up", "--nodes", "x"}, code: 2, err: `invalid value "x" for flag -nodes`, noManual: true},
		{args: []string{"down", "--nodes", "3"}, code: 2, err: "flag provided but not defined: -nodes", noManual: true},
		{args: []string{"sideways"}, code: 2, err: `unknown command "sideways"`, noManual: true},
		{args: []string{"down", "extra"}, code: 2, err: `unexpected argument "extra"`, noManual: true},
		{args: []string{"up", "--image", "/nonexistent/pause.tar", "--name", "BAD"}, code: 1, err: `name "BAD"`, noManual: true},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("%q: exit %d, stdout %.60q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.out, tc.err)
		}
		if tc.noManual && strings.Contains(stdout.String()+stderr.String(), "SYNOPSIS") {
			t.Errorf("%q: printed the whole manual for an error", tc.args)
		}
	}
}

// TestDownOfNothing: down of a directory without a cluster succeeds.
func TestDownOfNothing(t *testing.T) {
	var stdout, stderr bytes.Buffer
	dir := filepath.Join(t.TempDir(), "none")
	if code := run([]string{"down", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("down of nothing: exit %d: %s", code, stderr.String())
	}
	if got := stdout.String(); got != "cluster in "+dir+" removed\n" {
		t.Errorf("stdout %q", got)
	}
}
