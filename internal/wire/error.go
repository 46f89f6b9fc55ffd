package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// Error is the wire form of an error: the "error" of a failed call's
// {"error": {...}} and of a refused item. Code and Message are always set;
// the other fields carry a typed error's fields, so that Err rebuilds it.
type Error struct {
	// Code is the stable machine code (see Catalog).
	Code string `json:"code"`
	// Message says what went wrong, for people.
	Message string `json:"message"`

	// Index is the item of a batch the error is about (*store.ItemError).
	Index *int `json:"index,omitempty"`
	// Field names the input that was refused and Reason says why
	// (*store.ValidationError, *store.LimitError; "spec" and "zone" for
	// *schedule.SpecError and *schedule.ZoneError).
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Value is the refused spec or zone, as given (*schedule.SpecError,
	// *schedule.ZoneError).
	Value *string `json:"value,omitempty"`
	// Limit is the limit an input went over, and Got its size
	// (*store.LimitError).
	Limit int `json:"limit,omitempty"`
	Got   int `json:"got,omitempty"`
	// ID, State and Op say which job was in the wrong state for what
	// (*store.StateError).
	ID    string      `json:"id,omitempty"`
	State store.State `json:"state,omitempty"`
	Op    string      `json:"op,omitempty"`
	// Resource and Name say what was not found or changed under the caller
	// (*store.NotFoundError, *store.ConflictError): "job", "schedule",
	// "store" and its ID or reference.
	Resource string `json:"resource,omitempty"`
	Name     string `json:"name,omitempty"`
	// Want is the version an update carried and Current the stored one
	// (*store.ConflictError).
	Want    int64 `json:"want,omitempty"`
	Current int64 `json:"current,omitempty"`

	// Errors are the parts of a joined error, such as one *store.ItemError
	// per refused item of an enqueue.
	Errors []Error `json:"errors,omitempty"`
}

// ErrorBody is the JSON document of a failed call: {"error": {...}}.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// internalMessage is the message of an error outside the catalog, which
// ErrorOf does not show.
const internalMessage = "spool: internal error"

// maxDepth bounds how deeply errors nest on the wire: joins of items of
// joins are three levels; deeper ones are cut off.
const maxDepth = 8

// ErrorOf encodes err for a client that must not see the process's
// internals, such as an API's caller: an error outside the catalog (see
// Code) becomes "internal" with a generic message, never its own text,
// which may hold SQL, stack traces or connection details, and a cancelled
// or timed-out call says only that. Any other catalogued error keeps its
// text: the store writes those for users. It returns nil for nil.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	e := encode(err, false, 0)
	return &e
}

// DetailedErrorOf is ErrorOf for a user who may see everything, such as the
// command line's own: every error keeps its text.
func DetailedErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	e := encode(err, true, 0)
	return &e
}

func encode(err error, detailed bool, depth int) Error {
	e := Error{Code: Code(err), Message: err.Error()}
	if parts := joinedParts(err); parts != nil && depth < maxDepth {
		e.Errors = encodeAll(parts, detailed, depth)
	} else {
		x := err
		var ie *store.ItemError
		if errors.As(err, &ie) && ie.Err != nil {
			e.Index = new(int)
			*e.Index = ie.Index
			x = ie.Err
		}
		if parts := joinedParts(x); parts != nil && depth < maxDepth {
			e.Errors = encodeAll(parts, detailed, depth)
		} else {
			e.fields(x)
		}
	}
	if !detailed {
		e.sanitize()
	}
	return e
}

func encodeAll(parts []error, detailed bool, depth int) []Error {
	out := make([]Error, len(parts))
	for i, p := range parts {
		out[i] = encode(p, detailed, depth+1)
	}
	return out
}

// fields copies the fields of the typed error in err's chain that gives e
// its code, if any: fields that do not go with the code would not come back.
func (e *Error) fields(err error) {
	var (
		ve *store.ValidationError
		le *store.LimitError
		se *store.StateError
		nf *store.NotFoundError
		ce *store.ConflictError
		pe *schedule.SpecError
		ze *schedule.ZoneError
	)
	switch e.Code {
	case CodeTooLarge:
		if errors.As(err, &le) {
			e.Field, e.Limit, e.Got = le.Field, le.Limit, le.Got
		}
	case CodeInvalid:
		switch {
		case errors.As(err, &pe):
			e.Field, e.Value, e.Reason = "spec", &pe.Spec, pe.Reason
		case errors.As(err, &ze):
			e.Field, e.Value, e.Reason = "zone", &ze.Zone, ze.Reason
		case errors.As(err, &ve):
			e.Field, e.Reason = ve.Field, ve.Reason
		}
	case CodeWrongState:
		if errors.As(err, &se) {
			e.State, e.Op = se.State, se.Op
			if !se.ID.IsZero() {
				e.ID = se.ID.String()
			}
		}
	case CodeNotFound:
		if errors.As(err, &nf) {
			e.Resource, e.Name = nf.Resource, nf.Name
		}
	case CodeConflict:
		if errors.As(err, &ce) {
			e.Resource, e.Name, e.Want, e.Current = ce.Resource, ce.Name, ce.Want, ce.Current
		}
	}
}

// sanitize replaces the text of errors outside the catalog with a generic
// message, and the text of context errors with theirs; a join or item whose
// parts were replaced is given their texts.
func (e *Error) sanitize() {
	if !e.hidesSomething() {
		return
	}
	var msg string
	switch {
	case len(e.Errors) > 0:
		msgs := make([]string, len(e.Errors))
		for i, p := range e.Errors {
			msgs[i] = p.Message
		}
		msg = strings.Join(msgs, "\n")
	case e.Code == CodeInterrupted || e.Code == CodeTimeout:
		en, _ := entry(e.Code)
		msg = en.Is[0].Error()
	default:
		msg = internalMessage
	}
	if e.Index != nil {
		msg = "item " + strconv.Itoa(*e.Index) + ": " + msg
	}
	e.Message = msg
}

// hidesSomething reports whether e's text may show what ErrorOf hides: it
// is, or has a part that is, outside the catalog or a context error.
func (e *Error) hidesSomething() bool {
	if len(e.Errors) == 0 {
		return e.Code == CodeInternal || e.Code == CodeInterrupted || e.Code == CodeTimeout
	}
	for i := range e.Errors {
		if e.Errors[i].hidesSomething() {
			return true
		}
	}
	return false
}

// joinedParts returns the parts of err when err is, or wraps, a join of two
// or more errors (errors.Join, or fmt.Errorf with several %w). A sentinel of
// the catalog that only gives the join its code, as ErrInvalid does beside
// an error that says what was invalid, is not a part. It returns nil when
// err joins nothing.
func joinedParts(err error) []error {
	for err != nil {
		if isTyped(err) {
			return nil
		}
		switch u := err.(type) { //nolint:errorlint // walking the chain by hand, one link at a time
		case interface{ Unwrap() []error }:
			code := Code(err)
			var parts []error
			for _, p := range u.Unwrap() {
				if p != nil && (!isSentinel(p) || Code(p) != code) {
					parts = append(parts, p)
				}
			}
			switch len(parts) {
			case 0:
				return nil
			case 1:
				err = parts[0]
			default:
				return parts
			}
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// isTyped reports whether err is itself one of the typed errors Error
// carries the fields of.
func isTyped(err error) bool {
	switch err.(type) { //nolint:errorlint // the error itself, not its chain
	case *store.ItemError, *store.ValidationError, *store.LimitError, *store.StateError,
		*store.NotFoundError, *store.ConflictError, *schedule.SpecError, *schedule.ZoneError:
		return true
	}
	return false
}

// isSentinel reports whether err is one of the catalog's errors itself.
func isSentinel(err error) bool {
	for _, e := range catalog {
		for _, s := range e.Is {
			if err == s { //nolint:errorlint // identity, not matching
				return true
			}
		}
	}
	return false
}

// Err decodes e back into an error: the typed error its fields describe
// (*store.ValidationError, *store.LimitError, *store.StateError,
// *store.NotFoundError, *store.ConflictError, *schedule.SpecError,
// *schedule.ZoneError, each inside a *store.ItemError when e has an Index),
// a join of its Errors, or an error matching its code's sentinels (the
// sentinel itself when the message is the sentinel's). errors.Is and
// errors.As work on the result as on the error e was made from; its text is
// e.Message and Code gives e.Code back, also for a code this build does not
// know. It returns nil for a nil e.
func (e *Error) Err() error {
	if e == nil {
		return nil
	}
	var err error
	if len(e.Errors) > 0 {
		parts := make([]error, len(e.Errors))
		for i := range e.Errors {
			parts[i] = e.Errors[i].Err()
		}
		err = errors.Join(parts...)
	} else {
		err = e.typed()
	}
	if e.Index != nil {
		err = &store.ItemError{Index: *e.Index, Err: err}
	}
	if err.Error() != e.Message || Code(err) != e.Code {
		err = &remoteError{code: e.Code, msg: e.Message, errs: []error{err}}
	}
	return err
}

// typed rebuilds the error of a node without parts.
func (e *Error) typed() error {
	switch {
	case e.Code == CodeNotFound && e.Resource != "":
		return &store.NotFoundError{Resource: e.Resource, Name: e.Name}
	case e.Code == CodeTooLarge && e.Field != "":
		return &store.LimitError{Field: e.Field, Limit: e.Limit, Got: e.Got}
	case e.Code == CodeInvalid && e.Value != nil && e.Field == "spec":
		return &schedule.SpecError{Spec: *e.Value, Reason: e.Reason}
	case e.Code == CodeInvalid && e.Value != nil && e.Field == "zone":
		return &schedule.ZoneError{Zone: *e.Value, Reason: e.Reason}
	case e.Code == CodeInvalid && e.Field != "":
		return &store.ValidationError{Field: e.Field, Reason: e.Reason}
	case e.Code == CodeWrongState && e.State != "":
		se := &store.StateError{State: e.State, Op: e.Op}
		if e.ID != "" {
			se.ID, _ = store.ParseID(e.ID) // a bad ID stays zero; the message keeps the text
		}
		return se
	case e.Code == CodeConflict && e.Resource != "":
		return &store.ConflictError{Resource: e.Resource, Name: e.Name, Want: e.Want, Current: e.Current}
	}
	en, known := entry(e.Code)
	if known && len(en.Is) == 1 && e.messageWithoutItem() == en.Is[0].Error() {
		return en.Is[0]
	}
	return &remoteError{code: e.Code, msg: e.messageWithoutItem(), errs: en.Is}
}

// messageWithoutItem is e's message without the "item N: " an ItemError
// puts before its error's text, for the error inside it.
func (e *Error) messageWithoutItem() string {
	if e.Index != nil {
		if rest, ok := strings.CutPrefix(e.Message, "item "+strconv.Itoa(*e.Index)+": "); ok {
			return rest
		}
	}
	return e.Message
}

// Status returns the HTTP status for e's code (see Catalog); 500 for a code
// the catalog does not know.
func (e *Error) Status() int {
	if en, ok := entry(e.Code); ok {
		return en.Status
	}
	return http.StatusInternalServerError
}

// ExitCode returns the spool command's exit code for e's code; 1 for a code
// the catalog does not know.
func (e *Error) ExitCode() int {
	if en, ok := entry(e.Code); ok {
		return en.Exit
	}
	return ExitFailed
}

// remoteError is an error decoded from the wire that no typed error
// describes: it keeps the code and text it came with and matches the errors
// it wraps (its code's sentinels, or the error rebuilt from its fields).
type remoteError struct {
	code string
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// DecodeError reads an error document, {"error": {...}}, as a client of the
// API does, and returns its Error; call Err for the Go error. It accepts
// fields it does not know, so that newer servers can add some, and refuses
// what is not an error document with a *store.ValidationError.
func DecodeError(r io.Reader) (*Error, error) {
	var body ErrorBody
	if err := decodeLenient(r, &body, "error document"); err != nil {
		return nil, err
	}
	if body.Error == nil {
		return nil, &store.ValidationError{Field: "error document", Reason: `has no "error"`}
	}
	if err := body.Error.check(0); err != nil {
		return nil, err
	}
	return body.Error, nil
}

// check refuses an Error that no encoder makes: no code, a code that is not
// a code, a negative index, nesting deeper than maxDepth.
func (e *Error) check(depth int) error {
	switch {
	case depth > maxDepth:
		return &store.ValidationError{Field: "error", Reason: fmt.Sprintf("nests more than %d deep", maxDepth)}
	case !validCode(e.Code):
		return &store.ValidationError{Field: "error code", Reason: fmt.Sprintf("%q is not a code", e.Code)}
	case e.Index != nil && *e.Index < 0:
		return &store.ValidationError{Field: "error index", Reason: fmt.Sprintf("%d is negative", *e.Index)}
	}
	for i := range e.Errors {
		if err := e.Errors[i].check(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// validCode reports whether s looks like a code: 1 to 64 bytes of lower-case
// letters, digits and _, starting with a letter.
func validCode(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// MarshalErrorBody returns the error document of err as ErrorOf encodes it:
// {"error": {...}}.
func MarshalErrorBody(err error) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ErrorBody{Error: ErrorOf(err)}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
