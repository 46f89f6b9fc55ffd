package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/spoolrun/spool"
)

// printJSON writes v to stdout as indented JSON, without HTML escaping.
func (a *app) printJSON(v any) {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "spool: write JSON: %v\n", err)
	}
}

// newTable returns a tabwriter for aligned columns; Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// newFields returns a table for one record shown a field a line, and a
// function that adds "Key: value", skipping empty values. Flush the table.
func newFields(w io.Writer) (*tabwriter.Writer, func(k, v string)) {
	tw := newTable(w)
	return tw, func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
}

// timeText formats t in UTC with layout, or "" for the zero time.
func timeText(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(layout)
}

// bytesText is b for a human: compacted when it is JSON, else base64 (as
// the JSON views give it).
func bytesText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) == nil {
		return buf.String()
	}
	return "(base64) " + base64.StdEncoding.EncodeToString(b)
}

// lastError is the message of the job's newest error, or "".
func lastError(j *spool.Job) string {
	if len(j.Errors) == 0 {
		return ""
	}
	return j.Errors[len(j.Errors)-1].Message
}

// oneLine shortens s to one line of at most n runes, for table cells.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// age formats a duration briefly: 850ms, 12s, 3m5s, 4h12m, 2d3h.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// progress shows how far a long operation got.
type progress interface {
	Set(n int)
	Describe(s string)
	Finish()
}

// newProgress returns a progress bar on stderr when stderr is a terminal,
// and a progress that shows nothing otherwise.
func (a *app) newProgress(total int, desc string) progress {
	if !a.stderrTTY || a.jsonOut {
		return noProgress{}
	}
	return &barProgress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("jobs"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)}
}

type noProgress struct{}

func (noProgress) Set(int)         {}
func (noProgress) Describe(string) {}
func (noProgress) Finish()         {}

type barProgress struct{ bar *progressbar.ProgressBar }

func (p *barProgress) Set(n int)         { _ = p.bar.Set(n) }
func (p *barProgress) Describe(s string) { p.bar.Describe(s) }
func (p *barProgress) Finish()           { _ = p.bar.Finish() }
