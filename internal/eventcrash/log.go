package eventcrash

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// recordLen is the length of every record in a log, its newline included.
const recordLen = 160

// The tags of records.
const (
	TagIntent   = 'I' // a publisher is about to publish the event
	TagAck      = 'A' // the publish returned nil (committed)
	TagRollback = 'R' // the publisher is about to roll the event's transaction back on purpose
	TagStart    = 'S' // a handler started
	TagEnd      = 'E' // a handler is about to return nil
	TagFail     = 'F' // a handler is about to return an error
)

// The publish paths an intent names.
const (
	PathPublish  = "pub" // Client.Publish
	PathTx       = "tx"  // Client.PublishTx in a transaction that commits
	PathRollback = "rb"  // Client.PublishTx in a transaction rolled back on purpose
)

// Record is one line of a log. Empty strings are written as "-".
type Record struct {
	Tag  byte
	Proc string // the process that wrote it
	Sub  string // subscriber records: the subscription
	ID   string // the event
	// Subscriber records: the event's place, and the delivery that carried it.
	Pos        int64
	Key        string
	Version    int64
	Job        string
	Deliveries int
	Attempts   int
	// Note is the path of an intent, and for a handler's outcome what it
	// did: "planned" (a planned failure), "new" or "seen" (the mailer's
	// inbox), or the error's text, cut to one word.
	Note string
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func undash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func (r Record) line() ([]byte, error) {
	s := fmt.Sprintf("%c %s %s %s %d %s %d %s %d %d %s", r.Tag, dash(r.Proc), dash(r.Sub), dash(r.ID), r.Pos, dash(r.Key),
		r.Version, dash(r.Job), r.Deliveries, r.Attempts, dash(r.Note))
	if len(s) > recordLen-1 {
		return nil, fmt.Errorf("eventcrash: record %q is longer than %d bytes", s, recordLen-1)
	}
	b := make([]byte, recordLen)
	copy(b, s)
	for i := len(s); i < recordLen-1; i++ {
		b[i] = ' '
	}
	b[recordLen-1] = '\n'
	return b, nil
}

// Log is a file of records that processes append to.
type Log struct{ f *os.File }

// OpenLog opens the log at path for appending, creating it.
func OpenLog(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &Log{f: f}, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

// Write appends r in one write(2): O_APPEND places it atomically after
// every record written before, by any process.
func (l *Log) Write(r Record) error {
	b, err := r.line()
	if err != nil {
		return err
	}
	_, err = l.f.Write(b)
	return err
}

// ReadLog reads the log at path in file order; a missing file is empty. A
// write cut short by SIGKILL leaves a fragment that the next record, by any
// process, continues on the same line: the record is the line's last
// recordLen-1 bytes, and the fragment is counted as torn and ignored (its
// writer was killed before the write returned, so nothing came of it). A
// fragment at the very end is torn too.
func ReadLog(path string) (records []Record, torn int, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	lines := strings.Split(string(b), "\n")
	if lines[len(lines)-1] != "" {
		torn++
	}
	lines = lines[:len(lines)-1]
	records = make([]Record, 0, len(lines))
	for i, line := range lines {
		if len(line) < recordLen-1 {
			return nil, 0, fmt.Errorf("%s: line %d (%q) is shorter than a record", path, i+1, line)
		}
		if len(line) > recordLen-1 {
			torn++
			line = line[len(line)-(recordLen-1):]
		}
		r, err := parseRecord(line)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: line %d: %w", path, i+1, err)
		}
		records = append(records, r)
	}
	return records, torn, nil
}

func parseRecord(line string) (Record, error) {
	f := strings.Fields(line)
	if len(f) != 11 || len(f[0]) != 1 {
		return Record{}, fmt.Errorf("bad record %q", line)
	}
	r := Record{Tag: f[0][0], Proc: undash(f[1]), Sub: undash(f[2]), ID: undash(f[3]), Key: undash(f[5]),
		Job: undash(f[7]), Note: undash(f[10])}
	var errs []error
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		errs = append(errs, err)
		return n
	}
	r.Pos, r.Version = num(f[4]), num(f[6])
	r.Deliveries, r.Attempts = int(num(f[8])), int(num(f[9]))
	if err := errors.Join(errs...); err != nil {
		return Record{}, fmt.Errorf("bad record %q: %w", line, err)
	}
	return r, nil
}
