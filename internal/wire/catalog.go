package wire

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/spoolrun/spool/store"
)

// The stable error codes. The store's codes are store.Code's; the wire adds
// "interrupted" and "timeout" for cancelled and timed-out calls.
const (
	CodeNotFound     = "not_found"
	CodeLockLost     = "lock_lost"
	CodeTooLarge     = "too_large"
	CodeInvalid      = "invalid"
	CodeWrongState   = "wrong_state"
	CodeDuplicate    = "duplicate"
	CodeConflict     = "conflict"
	CodeClosed       = "closed"
	CodeSchema       = "schema"
	CodeStoreFull    = "store_full"
	CodeUnsupported  = "unsupported"
	CodeDurability   = "durability"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeRateLimited  = "rate_limited"
	CodeInterrupted  = "interrupted"
	CodeTimeout      = "timeout"
	CodeInternal     = "internal"
)

// Exit codes of the spool command, which scripts rely on.
const (
	ExitOK          = 0   // the command did what it was asked
	ExitFailed      = 1   // the operation failed: not found, some items refused, a store error
	ExitUsage       = 2   // bad flags or arguments, or invalid input
	ExitConflict    = 3   // a version conflict: read the record again and retry
	ExitInterrupted = 130 // stopped by SIGINT or SIGTERM (128 + SIGINT)
)

// StatusClientClosedRequest is the HTTP status of a call whose client went
// away before it was answered (nginx's 499); no one reads the answer.
const StatusClientClosedRequest = 499

// Entry is one row of the error catalog: the errors a code stands for, and
// how it travels over HTTP and out of the command line.
type Entry struct {
	// Code is the stable machine code.
	Code string
	// Is lists the errors the code stands for: an error matching the first
	// (errors.Is) has this code, and a decoded error matches all of them.
	// Empty for CodeInternal, the code of every error outside the catalog.
	Is []error
	// Types names the typed errors whose fields the code carries, for
	// documentation.
	Types string
	// Status is the HTTP status an API answers the error with.
	Status int
	// Exit is the spool command's exit code for the error.
	Exit int
}

// catalog is the error catalog. Order matters: an error takes the code of
// the first entry whose first error it matches (a *store.LimitError matches
// ErrTooLarge and ErrInvalid, and is "too_large"), as in store.Code.
var catalog = []Entry{
	{Code: CodeNotFound, Is: []error{store.ErrNotFound}, Types: "*store.NotFoundError", Status: http.StatusNotFound, Exit: ExitFailed},
	{Code: CodeLockLost, Is: []error{store.ErrLockLost}, Status: http.StatusConflict, Exit: ExitFailed},
	{Code: CodeTooLarge, Is: []error{store.ErrTooLarge, store.ErrInvalid}, Types: "*store.LimitError", Status: http.StatusRequestEntityTooLarge, Exit: ExitUsage},
	{Code: CodeInvalid, Is: []error{store.ErrInvalid}, Types: "*store.ValidationError, *schedule.SpecError, *schedule.ZoneError", Status: http.StatusBadRequest, Exit: ExitUsage},
	{Code: CodeWrongState, Is: []error{store.ErrWrongState}, Types: "*store.StateError", Status: http.StatusConflict, Exit: ExitFailed},
	{Code: CodeDuplicate, Is: []error{store.ErrDuplicate}, Status: http.StatusConflict, Exit: ExitFailed},
	{Code: CodeConflict, Is: []error{store.ErrConflict}, Types: "*store.ConflictError", Status: http.StatusConflict, Exit: ExitConflict},
	{Code: CodeClosed, Is: []error{store.ErrClosed}, Status: http.StatusServiceUnavailable, Exit: ExitFailed},
	{Code: CodeSchema, Is: []error{store.ErrSchema}, Status: http.StatusInternalServerError, Exit: ExitFailed},
	{Code: CodeStoreFull, Is: []error{store.ErrStoreFull}, Status: http.StatusInsufficientStorage, Exit: ExitFailed},
	{Code: CodeUnsupported, Is: []error{store.ErrUnsupported}, Status: http.StatusNotImplemented, Exit: ExitFailed},
	{Code: CodeDurability, Is: []error{store.ErrDurability}, Status: http.StatusServiceUnavailable, Exit: ExitFailed},
	{Code: CodeUnauthorized, Is: []error{store.ErrUnauthorized}, Status: http.StatusUnauthorized, Exit: ExitFailed},
	{Code: CodeForbidden, Is: []error{store.ErrForbidden}, Status: http.StatusForbidden, Exit: ExitFailed},
	{Code: CodeRateLimited, Is: []error{store.ErrRateLimited}, Status: http.StatusTooManyRequests, Exit: ExitFailed},
	{Code: CodeInterrupted, Is: []error{context.Canceled}, Status: StatusClientClosedRequest, Exit: ExitInterrupted},
	{Code: CodeTimeout, Is: []error{context.DeadlineExceeded}, Status: http.StatusGatewayTimeout, Exit: ExitFailed},
	{Code: CodeInternal, Status: http.StatusInternalServerError, Exit: ExitFailed},
}

// Catalog returns the error catalog, one entry per code, CodeInternal last.
func Catalog() []Entry {
	out := slices.Clone(catalog)
	for i := range out {
		out[i].Is = slices.Clone(out[i].Is)
	}
	return out
}

// entry returns the catalog's entry for code, and false for a code it does
// not know.
func entry(code string) (Entry, bool) {
	for _, e := range catalog {
		if e.Code == code {
			return e, true
		}
	}
	return Entry{}, false
}

// Code returns the stable code of err: store.Code's for the store's errors,
// "interrupted" and "timeout" for context errors, the code an Error carried
// for an error decoded from one, and "internal" for anything else. It is ""
// for nil.
func Code(err error) string {
	if err == nil {
		return ""
	}
	if re, ok := err.(*remoteError); ok { //nolint:errorlint // only a decoded error itself keeps its code; wrapping it recomputes
		return re.code
	}
	for _, e := range catalog {
		if len(e.Is) > 0 && errors.Is(err, e.Is[0]) {
			return e.Code
		}
	}
	var re *remoteError
	if errors.As(err, &re) { // a code this build does not know, from a newer peer
		return re.code
	}
	return CodeInternal
}

// Status returns the HTTP status for err: 200 for nil, the catalog's status
// for its code, and 500 for a code the catalog does not know.
func Status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if e, ok := entry(Code(err)); ok {
		return e.Status
	}
	return http.StatusInternalServerError
}

// ExitCode returns the spool command's exit code for err: 0 for nil, the
// catalog's exit code for its code, and 1 for a code the catalog does not
// know.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if e, ok := entry(Code(err)); ok {
		return e.Exit
	}
	return ExitFailed
}
