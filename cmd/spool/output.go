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
	"github.com/spoolrun/spool/store"
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

// jobJSON is how a job looks in --json output. IDs are strings and times
// RFC 3339 in UTC. A payload or result that is JSON is embedded as is;
// other bytes are given base64-encoded in payload_base64 / result_base64.
type jobJSON struct {
	ID            string          `json:"id"`
	Queue         string          `json:"queue"`
	Kind          string          `json:"kind"`
	State         spool.State     `json:"state"`
	Priority      int             `json:"priority"`
	Tenant        string          `json:"tenant,omitempty"`
	UniqueKey     string          `json:"unique_key,omitempty"`
	OrderingKey   string          `json:"ordering_key,omitempty"`
	Attempts      int             `json:"attempts"`
	MaxAttempts   int             `json:"max_attempts"`
	Deliveries    int             `json:"deliveries"`
	MaxDeliveries int             `json:"max_deliveries"`
	RunAt         time.Time       `json:"run_at"`
	CreatedAt     time.Time       `json:"created_at"`
	LockedUntil   *time.Time      `json:"locked_until,omitempty"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	DeadReason    string          `json:"dead_reason,omitempty"`
	LastError     string          `json:"last_error,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	PayloadBase64 string          `json:"payload_base64,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	ResultBase64  string          `json:"result_base64,omitempty"`
	Errors        []errorJSON     `json:"errors,omitempty"`
}

type errorJSON struct {
	At      time.Time `json:"at"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"`
}

// jobView turns a job into its JSON form; history adds the error history
// (jobs get), which lists leave out.
func jobView(j *spool.Job, history bool) jobJSON {
	v := jobJSON{
		ID:            j.ID.String(),
		Queue:         j.Queue,
		Kind:          j.Kind,
		State:         j.State,
		Priority:      j.Priority,
		Tenant:        j.Tenant,
		UniqueKey:     j.UniqueKey,
		OrderingKey:   j.OrderingKey,
		Attempts:      j.Attempts,
		MaxAttempts:   j.MaxAttempts,
		Deliveries:    j.Deliveries,
		MaxDeliveries: j.MaxDeliveries,
		RunAt:         j.RunAt.UTC(),
		CreatedAt:     j.CreatedAt.UTC(),
		LockedUntil:   timePtr(j.LockedUntil),
		FinishedAt:    timePtr(j.FinishedAt),
		DeadReason:    j.DeadReason,
		LastError:     lastError(j),
	}
	v.Payload, v.PayloadBase64 = bytesView(j.Payload)
	v.Result, v.ResultBase64 = bytesView(j.Result)
	if history {
		v.Errors = make([]errorJSON, len(j.Errors))
		for i, e := range j.Errors {
			v.Errors[i] = errorJSON{At: e.At.UTC(), Attempt: e.Attempt, Message: e.Message, Stack: e.Stack}
		}
	}
	return v
}

func jobViews(jobs []*spool.Job) []jobJSON {
	out := make([]jobJSON, len(jobs))
	for i, j := range jobs {
		out[i] = jobView(j, false)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// bytesView returns b as raw JSON when it is JSON, else base64.
func bytesView(b []byte) (json.RawMessage, string) {
	if len(b) == 0 {
		return nil, ""
	}
	if json.Valid(b) {
		return json.RawMessage(b), ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

// bytesText is b for a human: as is when it is JSON or text, else base64.
func bytesText(b []byte) string {
	if raw, b64 := bytesView(b); b64 != "" {
		return "(base64) " + b64
	} else if raw != nil {
		var buf bytes.Buffer
		if json.Compact(&buf, raw) == nil {
			return buf.String()
		}
	}
	return string(b)
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

// errorJSONOf describes a refused item in JSON output.
func errorJSONOf(err error) map[string]string {
	return map[string]string{"code": errorCode(err), "message": strings.Join(errorLines(err), "; ")}
}

// queueJSON is how a queue's statistics look in --json output.
type queueJSON struct {
	Queue                  string              `json:"queue"`
	Paused                 bool                `json:"paused"`
	Counts                 map[spool.State]int `json:"counts"`
	OldestAvailableSeconds float64             `json:"oldest_available_seconds"`
}

func queueViews(stats []spool.QueueStats) []queueJSON {
	out := make([]queueJSON, len(stats))
	for i, s := range stats {
		counts := make(map[spool.State]int, len(store.States))
		for _, st := range store.States {
			counts[st] = s.Counts[st]
		}
		out[i] = queueJSON{Queue: s.Queue, Paused: s.Paused, Counts: counts, OldestAvailableSeconds: s.OldestAvailable.Seconds()}
	}
	return out
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
