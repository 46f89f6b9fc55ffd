package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/schedule"
	"github.com/spoolrun/spool/store"
)

// examples gives, for every code of the catalog, errors a caller may meet:
// the sentinel, the typed errors with their fields, and wrapped forms.
func examples() map[string][]error {
	id := store.NewID()
	return map[string][]error{
		wire.CodeNotFound: {store.ErrNotFound, store.JobNotFound(id),
			store.ScheduleNotFound(store.ScheduleRef{Tenant: "acme", ID: "nightly"})},
		wire.CodeLockLost: {store.ErrLockLost, fmt.Errorf("settle: %w", store.ErrLockLost)},
		wire.CodeTooLarge: {store.ErrTooLarge, &store.LimitError{Field: "payload size", Limit: store.MaxPayloadBytes, Got: store.MaxPayloadBytes + 1}},
		wire.CodeInvalid: {store.ErrInvalid, &store.ValidationError{Field: "kind", Reason: "is required"},
			&schedule.SpecError{Spec: "every day", Reason: "not a cron spec"},
			&schedule.ZoneError{Zone: "Mars/Olympus", Reason: "unknown"},
			&store.ValidationError{Field: "queue", Reason: ""}},
		wire.CodeWrongState: {store.ErrWrongState, &store.StateError{ID: id, State: store.StateCompleted, Op: "cancel"}},
		wire.CodeDuplicate:  {store.ErrDuplicate, fmt.Errorf("%w: job %s holds unique key %q", store.ErrDuplicate, id, "k")},
		wire.CodeConflict: {store.ErrConflict,
			&store.ConflictError{Resource: "schedule", Name: "nightly (tenant acme)", Want: 3, Current: 4}},
		wire.CodeClosed:       {store.ErrClosed},
		wire.CodeSchema:       {fmt.Errorf("%w: the file is at version 9, this build knows up to 2; upgrade spool", store.ErrSchema)},
		wire.CodeStoreFull:    {store.ErrStoreFull},
		wire.CodeUnsupported:  {fmt.Errorf("%w: schedules", store.ErrUnsupported)},
		wire.CodeDurability:   {store.ErrDurability},
		wire.CodeUnauthorized: {store.ErrUnauthorized},
		wire.CodeForbidden:    {fmt.Errorf("%w: a reader changes nothing", store.ErrForbidden)},
		wire.CodeRateLimited:  {store.ErrRateLimited},
		wire.CodeInterrupted:  {context.Canceled},
		wire.CodeTimeout:      {context.DeadlineExceeded},
		wire.CodeInternal:     {errors.New("pq: syntax error at or near \"SELEKT\"")},
	}
}

// roundTrip encodes err as an API would, sends it through JSON and decodes
// it as a remote client would.
func roundTrip(t *testing.T, err error) (*wire.Error, error) {
	t.Helper()
	b, merr := wire.MarshalErrorBody(err)
	if merr != nil {
		t.Fatal(merr)
	}
	if !bytes.HasPrefix(b, []byte(`{"error":{"code":`)) {
		t.Fatalf("error document %s: want {\"error\": {\"code\": ...}}", b)
	}
	e, derr := wire.DecodeError(bytes.NewReader(b))
	if derr != nil {
		t.Fatalf("DecodeError(%s): %v", b, derr)
	}
	return e, e.Err()
}

// Every code of the catalog survives the trip: its sentinels, the typed
// error's fields, the text, the code, the HTTP status and the exit code.
func TestEveryCodeRoundTrips(t *testing.T) {
	t.Parallel()
	ex := examples()
	for _, en := range wire.Catalog() {
		errs := ex[en.Code]
		if len(errs) == 0 {
			t.Errorf("code %q has no example: add one", en.Code)
			continue
		}
		delete(ex, en.Code)
		for _, orig := range errs {
			e, got := roundTrip(t, orig)
			if e.Code != en.Code || wire.Code(orig) != en.Code || wire.Code(got) != en.Code {
				t.Errorf("%v: codes %q (encoded), %q (orig), %q (decoded); want %q", orig, e.Code, wire.Code(orig), wire.Code(got), en.Code)
			}
			if e.Status() != en.Status || wire.Status(orig) != en.Status || wire.ExitCode(got) != en.Exit {
				t.Errorf("%v: status %d, exit %d; want %d, %d", orig, e.Status(), wire.ExitCode(got), en.Status, en.Exit)
			}
			for _, s := range en.Is {
				if !errors.Is(got, s) {
					t.Errorf("%v: decoded %v does not match %v", orig, got, s)
				}
			}
			if en.Code == wire.CodeInternal {
				if strings.Contains(got.Error(), "SELEKT") || got.Error() != "spool: internal error" {
					t.Errorf("internal error leaked: %q", got)
				}
				continue
			}
			if got.Error() != orig.Error() {
				t.Errorf("text %q came back as %q", orig, got)
			}
			assertSameTyped(t, orig, got)
			// The store's own codes are store.Code's.
			if sc := store.Code(orig); sc != "internal" && sc != en.Code {
				t.Errorf("%v: store.Code %q, catalog %q", orig, sc, en.Code)
			}
		}
	}
	for code := range ex {
		t.Errorf("example code %q is not in the catalog", code)
	}
}

// assertSameTyped checks that every typed error errors.As finds in orig is
// found, with the same fields, in got.
func assertSameTyped(t *testing.T, orig, got error) {
	t.Helper()
	targets := []any{new(*store.ValidationError), new(*store.LimitError), new(*store.StateError),
		new(*store.NotFoundError), new(*store.ConflictError), new(*store.ItemError),
		new(*schedule.SpecError), new(*schedule.ZoneError)}
	for _, target := range targets {
		want := reflect.New(reflect.TypeOf(target).Elem())
		have := reflect.New(reflect.TypeOf(target).Elem())
		if !errors.As(orig, want.Interface()) {
			continue
		}
		if !errors.As(got, have.Interface()) {
			t.Errorf("%v: decoded error has no %v", orig, want.Elem().Type())
			continue
		}
		w, h := want.Elem().Elem().Interface(), have.Elem().Elem().Interface()
		if ie, ok := w.(store.ItemError); ok { // compare the item's index and text, not its inner pointer
			he, _ := h.(store.ItemError)
			if ie.Index != he.Index || ie.Error() != he.Error() {
				t.Errorf("%v: item %+v came back as %+v", orig, ie, he)
			}
			continue
		}
		if !reflect.DeepEqual(w, h) {
			t.Errorf("%v: %+v came back as %+v", orig, w, h)
		}
	}
}

// Items of a batch and joined errors keep their structure: each item's
// index and typed error, each part of a join.
func TestJoinedItemErrorsRoundTrip(t *testing.T) {
	t.Parallel()
	orig := errors.Join(
		&store.ItemError{Index: 0, Err: errors.Join(
			&store.ValidationError{Field: "kind", Reason: "is required"},
			&store.LimitError{Field: "payload size", Limit: 10, Got: 11})},
		&store.ItemError{Index: 3, Err: &store.ValidationError{Field: "queue", Reason: `"a b" has " "`}},
	)
	e, got := roundTrip(t, orig)
	if e.Code != wire.CodeTooLarge || len(e.Errors) != 2 || *e.Errors[1].Index != 3 || len(e.Errors[0].Errors) != 2 {
		t.Fatalf("encoded %+v", e)
	}
	if got.Error() != orig.Error() {
		t.Fatalf("text %q came back as %q", orig, got)
	}
	var items []*store.ItemError
	joined, ok := got.(interface{ Unwrap() []error }) //nolint:errorlint // taking the join apart
	if !ok {
		t.Fatalf("%v is not a join", got)
	}
	for _, part := range joined.Unwrap() {
		var ie *store.ItemError
		if !errors.As(part, &ie) {
			t.Fatalf("part %v is not an ItemError", part)
		}
		items = append(items, ie)
	}
	var le *store.LimitError
	var ve *store.ValidationError
	if items[0].Index != 0 || !errors.As(items[0], &le) || le.Got != 11 ||
		items[1].Index != 3 || !errors.As(items[1], &ve) || ve.Field != "queue" {
		t.Fatalf("items %v", items)
	}

	// A wrapped join keeps its own text, and its parts.
	wrapped := fmt.Errorf("2 of 5 schedule(s) refused:\n%w", errors.Join(store.ScheduleNotFound(store.ScheduleRef{ID: "a"}), store.ErrClosed))
	_, got = roundTrip(t, wrapped)
	var nf *store.NotFoundError
	if got.Error() != wrapped.Error() || !errors.As(got, &nf) || nf.Name != "a" || !errors.Is(got, store.ErrClosed) || wire.Code(got) != wire.CodeNotFound {
		t.Fatalf("wrapped join came back as %v", got)
	}
}

// ErrorOf never shows the text of an error outside the catalog, also inside
// a join or an item; DetailedErrorOf does, for the command line.
func TestErrorOfHidesInternals(t *testing.T) {
	t.Parallel()
	secret := errors.New(`pgx: ERROR: relation "spool.jobz" does not exist (SQLSTATE 42P01) password=hunter2`)
	for _, err := range []error{
		secret,
		fmt.Errorf("claim: %w", secret),
		errors.Join(&store.ValidationError{Field: "kind", Reason: "is required"}, secret),
		&store.ItemError{Index: 2, Err: secret},
		fmt.Errorf("spool: claim: %w: %v", context.Canceled, secret), //nolint:errorlint // a driver's error flattened into text, as some are
	} {
		b, merr := wire.MarshalErrorBody(err)
		if merr != nil || bytes.Contains(b, []byte("hunter2")) || bytes.Contains(b, []byte("jobz")) {
			t.Errorf("ErrorOf(%v) = %s (%v): leaks", err, b, merr)
		}
		if d := wire.DetailedErrorOf(err); !strings.Contains(d.Message, "hunter2") {
			t.Errorf("DetailedErrorOf(%v).Message = %q; want the whole text", err, d.Message)
		}
	}
	e := wire.ErrorOf(&store.ItemError{Index: 2, Err: secret})
	if e.Code != wire.CodeInternal || e.Message != "item 2: spool: internal error" || *e.Index != 2 {
		t.Errorf("internal item error = %+v", e)
	}
	if wire.ErrorOf(nil) != nil || wire.DetailedErrorOf(nil) != nil || (*wire.Error)(nil).Err() != nil {
		t.Error("nil errors should encode and decode as nil")
	}
}

// A decoded sentinel is the sentinel, so even == works; a code this build
// does not know keeps its code and text.
func TestDecodeSentinelsAndUnknownCodes(t *testing.T) {
	t.Parallel()
	if _, got := roundTrip(t, store.ErrLockLost); got != store.ErrLockLost { //nolint:errorlint // identity is the point
		t.Errorf("ErrLockLost came back as %#v", got)
	}
	e, err := wire.DecodeError(strings.NewReader(`{"error": {"code": "quota_exceeded", "message": "tenant over quota", "retry_after": 3}}`))
	if err != nil {
		t.Fatal(err)
	}
	got := e.Err()
	if wire.Code(got) != "quota_exceeded" || got.Error() != "tenant over quota" || e.Status() != http.StatusInternalServerError || e.ExitCode() != wire.ExitFailed {
		t.Errorf("unknown code: %v (%q), status %d", got, wire.Code(got), e.Status())
	}
	if again := wire.ErrorOf(got); again.Code != "quota_exceeded" || again.Message != "tenant over quota" {
		t.Errorf("relaying an unknown code: %+v", again)
	}
	// A code that contradicts the parts is kept: the server's word wins.
	e, err = wire.DecodeError(strings.NewReader(`{"error": {"code": "conflict", "message": "x", "errors": [{"code": "closed", "message": "spool: store is closed"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Err(); wire.Code(got) != wire.CodeConflict || !errors.Is(got, store.ErrClosed) || got.Error() != "x" {
		t.Errorf("contradicting code: %v (%q)", got, wire.Code(got))
	}
}

func TestDecodeErrorRefusesNonErrors(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		``, `null`, `[]`, `{}`, `{"error": null}`, `{"error": {"message": "no code"}}`,
		`{"error": {"code": "Not Found", "message": ""}}`, `{"error": {"code": "x", "index": -1}}`,
		`{"error": {"code": "x"}} {"more": 1}`, `{"error": {"code": 404}}`,
		`{"error": {"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x", "errors": [{"code": "x"}]}]}]}]}]}]}]}]}]}]}}`,
	} {
		if e, err := wire.DecodeError(strings.NewReader(doc)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("DecodeError(%s) = %+v, %v; want ErrInvalid", doc, e, err)
		}
	}
}

// The HTTP statuses and exit codes of the catalog, as documented in
// docs/ARCHITECTURE.md.
func TestCatalogTable(t *testing.T) {
	t.Parallel()
	want := map[string][2]int{
		"not_found": {404, 1}, "lock_lost": {409, 1}, "too_large": {413, 2}, "invalid": {400, 2},
		"wrong_state": {409, 1}, "duplicate": {409, 1}, "conflict": {409, 3}, "closed": {503, 1},
		"schema": {500, 1}, "store_full": {507, 1}, "unsupported": {501, 1}, "durability": {503, 1},
		"unauthorized": {401, 1}, "forbidden": {403, 1}, "rate_limited": {429, 1},
		"interrupted": {499, 130}, "timeout": {504, 1}, "internal": {500, 1},
	}
	cat := wire.Catalog()
	if len(cat) != len(want) || cat[len(cat)-1].Code != wire.CodeInternal {
		t.Fatalf("catalog has %d entries, want %d with internal last", len(cat), len(want))
	}
	for _, en := range cat {
		if w := want[en.Code]; en.Status != w[0] || en.Exit != w[1] {
			t.Errorf("%s: status %d, exit %d; want %d, %d", en.Code, en.Status, en.Exit, w[0], w[1])
		}
	}
	cat[0].Is[0] = nil // a copy: the package's table is unchanged
	if wire.Code(store.ErrNotFound) != wire.CodeNotFound {
		t.Error("Catalog returned the package's own table")
	}
	if wire.Code(nil) != "" || wire.Status(nil) != http.StatusOK || wire.ExitCode(nil) != wire.ExitOK {
		t.Error("nil is not an error")
	}
}
