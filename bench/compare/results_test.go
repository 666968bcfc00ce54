package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixed is a run's results with every kind of row: a ratio that meets its
// target, one that misses it, a lower-is-better one, one without a kernel
// reference, one without a target, and a failed one.
func fixed() Results {
	return Results{
		Commit:   "0123456789ab",
		Machine:  Machine{CPU: "AMD EPYC <test> & co", Cores: 2, Kernel: "6.18.44", Go: "go1.26.8"},
		Settings: "iperf3 TCP: median of 3 × 5s",
		Rows: []Row{
			newRow("cross-node TCP, vxlan vs kernel vxlan (flannel)", "Gbit/s", "higher", 3, 2.6112, true, 6.14, true, targetCrossTCP),
			newRow("same-node TCP, taprouterd (vxlan) vs kernel veth routes", "Gbit/s", "higher", 3, 9.5, true, 12.25, true, targetSameTCP),
			newRow("ping p99 cross-node, vxlan vs kernel vxlan", "µs", "lower", 1, 212.25, true, 61, true, targetRTT),
			newRow("cross-node TCP, udp (no kernel reference)", "Gbit/s", "higher", 3, 1.5, true, 0, false, 0),
			newRow("UDP 64 B packets/s cross-node, direct vs kernel routes", "packets/s", "higher", 0, 0, false, 412345.6, true, targetUDP),
			newRow("CPU s/GB cross-node, vxlan: taprouterd vs kernel softirq", "CPU s/GB", "lower", 3, 1.2345, true, 0.21, true, 0),
			{Name: "taprouterd RSS, 110 ports + 5000 peers (vxlan)", Taprouter: ptr(41.23, 1), Unit: "MiB", Better: "lower", Limit: ptr(64, 0), Note: "VmRSS"},
		},
	}
}

func TestRender(t *testing.T) {
	jsonDoc, svg, err := Render(fixed())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "results.json", jsonDoc)
	golden(t, "results.svg", svg)

	// The JSON reads back as what was rendered, nulls where nothing was
	// measured.
	var back Results
	if err := json.Unmarshal(jsonDoc, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, fixed()) {
		t.Errorf("JSON round trip:\n got %+v\nwant %+v", back, fixed())
	}
	var raw struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(jsonDoc, &raw); err != nil {
		t.Fatal(err)
	}
	if r := raw.Rows[3]; r["kernel"] != nil || r["ratio"] != nil || r["target"] != nil {
		t.Errorf("row without a kernel reference: %v; want kernel, ratio and target null", r)
	}
	if r := raw.Rows[0]; r["ratio"] != 0.425 || r["taprouter"] != 2.611 {
		t.Errorf("row 0: %v; want taprouter 2.611 and ratio 0.425", r)
	}

	// The SVG is well-formed XML: one svg root, and a text element per row
	// name, the machine's <test> & escaped.
	d := xml.NewDecoder(bytes.NewReader(svg))
	var texts []string
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse as XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root element %v, want svg in the SVG namespace", tok.Name)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			texts = append(texts, string(tok))
		}
	}
	if roots != 1 {
		t.Errorf("%d root elements, want 1", roots)
	}
	for _, want := range []string{fixed().Rows[0].Name, fixed().Rows[6].Name, "AMD EPYC <test> & co, 2 cores, Linux 6.18.44, go1.26.8, commit 0123456789ab",
		"0.42  (2.61 vs 6.14 Gbit/s)", "1.50 Gbit/s (no kernel reference)", "taprouter not measured; kernel 412346 packets/s", "41.2 MiB (no kernel reference); target ≤ 64.0 MiB"} {
		found := false
		for _, s := range texts {
			found = found || s == want
		}
		if !found {
			t.Errorf("SVG has no text %q", want)
		}
	}
}

func TestMeets(t *testing.T) {
	for _, c := range []struct {
		row  Row
		want bool
	}{
		{newRow("", "", "higher", 3, 0.6, true, 1, true, 0.6), true},
		{newRow("", "", "higher", 3, 0.59, true, 1, true, 0.6), false},
		{newRow("", "", "lower", 3, 2, true, 1, true, 2), true},
		{newRow("", "", "lower", 3, 2.01, true, 1, true, 2), false},
		{newRow("", "", "higher", 3, 5, true, 1, true, 0), false},    // no target
		{newRow("", "", "higher", 3, 5, true, 0, false, 0.6), false}, // no ratio
		{Row{Taprouter: ptr(64, 0), Limit: ptr(64, 0), Better: "lower"}, true},
		{Row{Taprouter: ptr(64.1, 1), Limit: ptr(64, 0), Better: "lower"}, false},
		{Row{Limit: ptr(64, 0), Better: "lower"}, false}, // not measured
	} {
		if got := c.row.meets(); got != c.want {
			t.Errorf("%+v meets() = %v, want %v", c.row, got, c.want)
		}
	}
}

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run TestRender -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (go test -run TestRender -update rewrites it after review):\n%s", name, path, got)
	}
}
