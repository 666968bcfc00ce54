package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// A single compare run on a shared machine moves by tens of percent from
// one run to the next, the kernel's rows as much as taprouter's, so a change
// is judged by runs of the two binaries interleaved (bench/ab.sh) and by
// each row's median and range over them: what summarize prints.

// labelledRun is one --json file of a run, with the label of the binary
// it measured.
type labelledRun struct {
	label string
	res   Results
}

// readRuns reads arguments of the form LABEL=FILE, in order.
func readRuns(args []string) ([]labelledRun, error) {
	var runs []labelledRun
	for _, a := range args {
		label, file, ok := strings.Cut(a, "=")
		if !ok || label == "" || file == "" {
			return nil, fmt.Errorf("%q: want LABEL=FILE", a)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var r Results
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		runs = append(runs, labelledRun{label, r})
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no runs (want LABEL=FILE arguments)")
	}
	return runs, nil
}

// summarize writes one line per row: for each label, in the order the
// labels first appear, the median of taprouter's value over that label's
// runs and its range, and for every label after the first the change of
// its median against the first label's. Failed measurements are left out;
// a label with none for a row shows "-".
func summarize(w io.Writer, runs []labelledRun) error {
	var labels, rows []string
	units := map[string]string{}
	values := map[string]map[string][]float64{} // row → label → values
	count := map[string]int{}
	for _, r := range runs {
		if count[r.label] == 0 {
			labels = append(labels, r.label)
		}
		count[r.label]++
		for _, row := range r.res.Rows {
			if values[row.Name] == nil {
				values[row.Name] = map[string][]float64{}
				rows = append(rows, row.Name)
				units[row.Name] = row.Unit
			}
			if row.Taprouter != nil {
				values[row.Name][r.label] = append(values[row.Name][r.label], *row.Taprouter)
			}
		}
	}
	head := []string{"ROW", "UNIT"}
	for i, l := range labels {
		head = append(head, fmt.Sprintf("%s (%d runs)", l, count[l]))
		if i > 0 {
			head = append(head, l+" vs "+labels[0])
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, name := range rows {
		unit := units[name]
		cells := []string{name, unit}
		var base float64
		for i, l := range labels {
			v := values[name][l]
			if len(v) == 0 {
				cells = append(cells, "-")
				if i > 0 {
					cells = append(cells, "-")
				}
				continue
			}
			lo, hi := v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
			m := median(append([]float64(nil), v...))
			cells = append(cells, fmt.Sprintf("%s (%s–%s)", formatNumber(m, unit), formatNumber(lo, unit), formatNumber(hi, unit)))
			switch {
			case i == 0:
				base = m
			case base == 0 || len(values[name][labels[0]]) == 0:
				cells = append(cells, "-")
			default:
				cells = append(cells, fmt.Sprintf("%+.0f %%", 100*(m-base)/base))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}
