package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Results is what a run measured, as written to --json.
type Results struct {
	Commit   string  `json:"commit"`
	Machine  Machine `json:"machine"`
	Settings string  `json:"settings"`
	Rows     []Row   `json:"rows"`
}

// Machine is what the run ran on.
type Machine struct {
	CPU    string `json:"cpu"`    // /proc/cpuinfo's model name
	Cores  int    `json:"cores"`  // online CPUs
	Kernel string `json:"kernel"` // kernel release
	Go     string `json:"go"`     // the Go version compare was built with
}

func (m Machine) String() string {
	return fmt.Sprintf("%s, %d cores, Linux %s, %s", m.CPU, m.Cores, m.Kernel, m.Go)
}

// Row is one line of the table: taprouter's number and, where there is one,
// the kernel's for the same path in the same run.
type Row struct {
	Name      string   `json:"name"`
	Taprouter *float64 `json:"taprouter"` // nil: the measurement failed
	Kernel    *float64 `json:"kernel"`    // nil: no kernel reference (or it failed)
	Unit      string   `json:"unit"`
	Ratio     *float64 `json:"ratio"` // taprouter/kernel; nil without both
	// Better says which way is good: "higher" (throughput) or "lower"
	// (latency, CPU, memory).
	Better string `json:"better"`
	// Target is the ratio the issue asks for (at least it when Better is
	// higher, at most it when lower); nil: none.
	Target *float64 `json:"target"`
	// Limit is, for a row without a kernel reference, the value itself
	// the project asks for, in Unit (at least or at most, as Target).
	Limit *float64 `json:"limit,omitempty"`
	Note  string   `json:"note,omitempty"`
}

// meets reports whether the row's ratio reaches its target, or its value
// its limit.
func (r Row) meets() bool {
	v, goal := r.Ratio, r.Target
	if v == nil || goal == nil {
		v, goal = r.Taprouter, r.Limit
	}
	if v == nil || goal == nil {
		return false
	}
	if r.Better == "lower" {
		return *v <= *goal
	}
	return *v >= *goal
}

// goal is the row's target or limit for the table: "≥ 0.6", "≤ 64 MiB".
func (r Row) goal() string {
	op := "≥ "
	if r.Better == "lower" {
		op = "≤ "
	}
	switch {
	case r.Target != nil:
		return op + trimFloat(*r.Target)
	case r.Limit != nil:
		return op + formatValue(*r.Limit, r.Unit)
	}
	return "-"
}

// ptr returns a pointer to v rounded to digits decimals.
func ptr(v float64, digits int) *float64 {
	p := math.Pow10(digits)
	v = math.Round(v*p) / p
	return &v
}

// newRow builds a row from taprouter's and the kernel's values (ok says
// whether each was measured), computing the ratio.
func newRow(name, unit, better string, digits int, taprouter float64, tOK bool, kernel float64, kOK bool, target float64) Row {
	r := Row{Name: name, Unit: unit, Better: better}
	if tOK {
		r.Taprouter = ptr(taprouter, digits)
	}
	if kOK {
		r.Kernel = ptr(kernel, digits)
	}
	if tOK && kOK && kernel != 0 {
		r.Ratio = ptr(taprouter/kernel, 3)
	}
	if target != 0 {
		r.Target = &target
	}
	return r
}

// Render returns the results as indented JSON and as an SVG bar chart of
// the ratios. It is a pure function of r.
func Render(r Results) (jsonDoc, svg []byte, err error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return nil, nil, err
	}
	return b.Bytes(), renderSVG(r), nil
}

// The chart's geometry, in pixels.
const (
	svgWidth    = 980
	svgLabelW   = 390 // the row names, left of the bars
	svgBarW     = 360 // the width of the largest ratio on the scale
	svgRowH     = 22
	svgTop      = 62  // the title and machine lines
	svgBottom   = 44  // the axis labels and legend
	svgMinScale = 2.0 // the scale reaches at least this ratio ...
	svgMaxScale = 4.0 // ... and at most this; longer bars end in an arrow
)

// halo outlines a text in white, so that it stays readable across the
// grid lines and the kernel's line.
const halo = ` stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"`

// renderSVG draws one bar per row: the ratio taprouter/kernel on a linear
// scale from 0 (to at most svgMaxScale), a line at 1.0 (the kernel), and a
// tick at the row's target. A bar is green when it meets the target, orange when it misses,
// grey without one. A row without a ratio shows its value as text.
func renderSVG(r Results) []byte {
	scale := svgMinScale
	for _, row := range r.Rows {
		if row.Ratio != nil {
			scale = max(scale, *row.Ratio)
		}
		if row.Target != nil {
			scale = max(scale, *row.Target)
		}
	}
	scale = min(math.Ceil(scale*2)/2, svgMaxScale) // to the next half step
	x := func(ratio float64) float64 { return svgLabelW + min(ratio, scale)/scale*svgBarW }
	height := svgTop + len(r.Rows)*svgRowH + svgBottom

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="-apple-system,BlinkMacSystemFont,Segoe UI,Helvetica,Arial,sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold" fill="#1f2328">%s</text>`+"\n",
		esc("taprouter ÷ kernel, same machine, same run (1.0 = the kernel)"))
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#57606a">%s</text>`+"\n", esc(r.Machine.String()+", commit "+r.Commit))
	fmt.Fprintf(&b, `<text x="10" y="54" fill="#57606a">%s</text>`+"\n", esc(r.Settings))

	axisTop, axisBottom := svgTop-4, svgTop+len(r.Rows)*svgRowH
	for step := 0.0; step <= scale+1e-9; step += 0.5 {
		stroke, width, label := "#eaeef2", 1, trimFloat(step)
		if step == 1 {
			stroke, width = "#1f2328", 2
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%d"/>`+"\n",
			x(step), axisTop, x(step), axisBottom, stroke, width)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#57606a">%s</text>`+"\n",
			x(step), axisBottom+14, label)
	}
	for i, row := range r.Rows {
		y := svgTop + i*svgRowH
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#1f2328">%s</text>`+"\n", svgLabelW-8, y+15, esc(row.Name))
		if row.Ratio == nil {
			text, fill := valueText(row), "#57606a"
			if row.Limit != nil && row.Taprouter != nil {
				text += "; target " + row.goal()
				fill = "#9a6700"
				if row.meets() {
					fill = "#1a7f37"
				}
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="%s"%s>%s</text>`+"\n", x(1)+5, y+15, fill, halo, esc(text))
			continue
		}
		fill := "#8c959f"
		switch {
		case row.Target == nil:
		case row.meets():
			fill = "#2da44e"
		default:
			fill = "#d4a72c"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
			svgLabelW, y+4, x(*row.Ratio)-svgLabelW, svgRowH-8, fill)
		end := x(*row.Ratio)
		if *row.Ratio > scale { // off the scale: an arrowhead past its end
			fmt.Fprintf(&b, `<path d="M%.1f %dL%.1f %dL%.1f %dZ" fill="%s"/>`+"\n", end, y+2, end+8, y+svgRowH/2, end, y+svgRowH-2, fill)
			end += 8
		}
		end = max(end, x(1)) // the text starts right of the kernel's line ...
		if row.Target != nil {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#cf222e" stroke-width="2"/>`+"\n",
				x(*row.Target), y+1, x(*row.Target), y+svgRowH-1)
			end = max(end, x(*row.Target)) // ... and of the target's
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#1f2328"%s>%s</text>`+"\n", end+5, y+15, halo,
			esc(fmt.Sprintf("%.2f  (%s)", *row.Ratio, valueText(row))))
	}
	legendY := axisBottom + 34
	fmt.Fprintf(&b, `<rect x="10" y="%d" width="12" height="10" fill="#2da44e"/><text x="26" y="%d" fill="#57606a">meets the target</text>`+"\n", legendY-9, legendY)
	fmt.Fprintf(&b, `<rect x="140" y="%d" width="12" height="10" fill="#d4a72c"/><text x="156" y="%d" fill="#57606a">misses it</text>`+"\n", legendY-9, legendY)
	fmt.Fprintf(&b, `<line x1="235" y1="%d" x2="235" y2="%d" stroke="#cf222e" stroke-width="2"/><text x="241" y="%d" fill="#57606a">target</text>`+"\n", legendY-10, legendY+2, legendY)
	fmt.Fprintf(&b, `<rect x="300" y="%d" width="12" height="10" fill="#8c959f"/><text x="316" y="%d" fill="#57606a">no target</text>`+"\n", legendY-9, legendY)
	fmt.Fprintf(&b, `<line x1="390" y1="%d" x2="390" y2="%d" stroke="#1f2328" stroke-width="2"/><text x="396" y="%d" fill="#57606a">the kernel (1.0)</text>`+"\n", legendY-10, legendY+2, legendY)
	fmt.Fprintf(&b, `<text x="510" y="%d" fill="#57606a">%s</text>`+"\n", legendY,
		esc("throughput and packets/s: higher is better; RTT and CPU: lower is better"))
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// valueText is a row's numbers: "2.61 vs 6.14 Gbit/s", or the taprouter
// value alone.
func valueText(r Row) string {
	switch {
	case r.Taprouter == nil && r.Kernel != nil:
		return "taprouter not measured; kernel " + formatValue(*r.Kernel, r.Unit)
	case r.Taprouter == nil:
		return "not measured"
	case r.Kernel == nil:
		return formatValue(*r.Taprouter, r.Unit) + " (no kernel reference)"
	}
	return formatNumber(*r.Taprouter, r.Unit) + " vs " + formatValue(*r.Kernel, r.Unit)
}

// formatNumber prints v with the precision its unit deserves.
func formatNumber(v float64, unit string) string {
	switch {
	case unit == "packets/s":
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func formatValue(v float64, unit string) string { return formatNumber(v, unit) + " " + unit }

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }

// esc escapes s for XML text.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// printTable writes the rows as one aligned table, after the machine line.
func printTable(w io.Writer, r Results) error {
	fmt.Fprintf(w, "machine: %s; commit %s\n%s\n\n", r.Machine, r.Commit, r.Settings)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tTAPROUTER\tKERNEL\tRATIO\tTARGET\tNOTE")
	for _, row := range r.Rows {
		tap, kernel, ratio := "error", "-", "-"
		if row.Taprouter != nil {
			tap = formatValue(*row.Taprouter, row.Unit)
		}
		if row.Kernel != nil {
			kernel = formatValue(*row.Kernel, row.Unit)
		}
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *row.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", row.Name, tap, kernel, ratio, row.goal(), row.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nRATIO is taprouter/kernel: above 1 is more throughput, or more time, CPU or memory, than the kernel.")
	return err
}
