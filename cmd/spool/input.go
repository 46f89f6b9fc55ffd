package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/store"
)

// Commands that write (enqueue, schedules add) check all of their input
// first, payload included, and only then open the store, so that invalid
// input changes nothing at all: not even by creating an empty store.

// payload returns the JSON payload the command line gives: inline (the
// --payload value), "-" to read it from stdin, or the file --payload-file
// names (file; "" for commands without that flag). It is nil when none is
// given, and refused unless it is valid JSON of at most
// store.MaxPayloadBytes.
func (a *app) payload(inline, file string) ([]byte, error) {
	var b []byte
	source := "" // where a bad payload came from, for the message
	switch {
	case inline != "" && file != "":
		return nil, usagef("give --payload or --payload-file, not both")
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return nil, usagef("--payload-file: %v", err)
		}
		defer fh.Close()
		if b, err = io.ReadAll(io.LimitReader(fh, store.MaxPayloadBytes+1)); err != nil {
			return nil, fmt.Errorf("read payload from %s: %w", file, err)
		}
		source = "in " + file + " "
	case inline == "":
		return nil, nil
	case inline == "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(a.stdin, store.MaxPayloadBytes+1)); err != nil {
			return nil, fmt.Errorf("read payload from stdin: %w", err)
		}
	default:
		b = []byte(inline)
	}
	if len(b) > store.MaxPayloadBytes {
		return nil, &store.LimitError{Field: "payload size", Limit: store.MaxPayloadBytes, Got: len(b)}
	}
	if !json.Valid(b) {
		reason := source + "is not valid JSON"
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			reason += ": " + err.Error()
		}
		return nil, &store.ValidationError{Field: "payload", Reason: reason}
	}
	return b, nil
}

// openClient opens the command's store and returns a Client over it, with
// the function that closes the store. With create, a store that does not
// exist yet is created (commands that add jobs or schedules); without it,
// it is refused (see openExisting). Check the command's input before
// calling it.
func (a *app) openClient(cmd *cobra.Command, create bool) (*spool.Client, func(), error) {
	open := a.openExisting
	if create {
		open = a.openOrCreate
	}
	st, err := open(cmd)
	if err != nil {
		return nil, nil, err
	}
	c, err := spool.NewClient(spool.Config{Store: st})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return c, func() { st.Close() }, nil
}
