package wire_test

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

func TestListQueryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []store.ListParams{
		{},
		{Queue: "acme/mail", Kind: "send", Tenant: "acme", States: []store.State{store.StateDead, store.StateCancelled},
			UniqueKey: "invoice 42/é", OrderingKey: "user:7&x=1",
			CreatedAfter:  time.Date(2026, 12, 8, 1, 2, 3, 456789000, time.UTC),
			CreatedBefore: time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC),
			Newest:        true, After: store.NewID(), Limit: 50},
	} {
		raw := wire.ListQuery(p).Encode()
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := wire.ParseListQuery(q)
		if err != nil {
			t.Fatalf("ParseListQuery(%s): %v", raw, err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("%s came back as %+v, want %+v", raw, got, p)
		}
	}
	if q := wire.ListQuery(store.ListParams{}); len(q) != 0 {
		t.Errorf("the query of an empty filter is %v, want nothing", q)
	}
}

func TestParseListQueryRefuses(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"state=dead,bogus",
		"created_after=yesterday",
		"created_before=2026-12-08",
		"order=oldest-first",
		"after=not-an-id",
		"limit=ten",
	} {
		q, _ := url.ParseQuery(raw)
		if _, err := wire.ParseListQuery(q); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ParseListQuery(%s) = %v, want ErrInvalid", raw, err)
		}
	}
	// Every mistake at once.
	q, _ := url.ParseQuery("order=sideways&created_after=soon")
	if _, err := wire.ParseListQuery(q); err == nil || !strings.Contains(err.Error(), "order") || !strings.Contains(err.Error(), "created_after") {
		t.Errorf("ParseListQuery of two mistakes = %v, want both", err)
	}
	q, _ = url.ParseQuery("order=oldest&order=newest")
	if p, err := wire.ParseListQuery(q); err != nil || p.Newest {
		t.Errorf("order given twice: %+v, %v; want the first (oldest)", p, err)
	}
}
