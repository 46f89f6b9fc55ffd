package spooltest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/spoolrun/spool"
	"github.com/spoolrun/spool/spooltest"
	"github.com/spoolrun/spool/store"
)

type Welcome struct {
	To   string   `json:"to"`
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

var sendWelcome = spool.NewKind[Welcome]("email.welcome")

// enqueue adds a welcome job through c.
func enqueue(t *testing.T, c *spool.Client, w Welcome, opts *spool.EnqueueOptions) spool.ID {
	t.Helper()
	res, err := sendWelcome.Enqueue(context.Background(), c, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func TestRequireEnqueued(t *testing.T) {
	t.Parallel()
	st := spooltest.NewStore(t, nil)
	c := spooltest.NewClient(t, st)
	id := enqueue(t, c, Welcome{To: "ada@example.com", Name: "Ada", Tags: []string{"new"}},
		&spool.EnqueueOptions{Queue: "mail", Tenant: "acme", UniqueKey: "welcome:ada"})
	enqueue(t, c, Welcome{To: "bob@example.com"}, &spool.EnqueueOptions{Queue: "mail"})

	t.Run("found", func(t *testing.T) {
		for name, m := range map[string]spooltest.Match{
			"kind and payload": {Kind: sendWelcome.Name(), Payload: Welcome{To: "ada@example.com", Name: "Ada", Tags: []string{"new"}}},
			"every field": {
				Kind: sendWelcome.Name(), Queue: "mail", Tenant: "acme", UniqueKey: "welcome:ada",
				States: []spool.State{spool.StateAvailable}, PayloadSubset: map[string]any{"to": "ada@example.com"},
			},
			"unique key":         {UniqueKey: "welcome:ada"},
			"subset, raw JSON":   {PayloadSubset: json.RawMessage(`{"tags": ["new"], "name": "Ada"}`)},
			"subset, bytes":      {PayloadSubset: []byte(`{"to":"ada@example.com"}`)},
			"typed pointer":      {Payload: &Welcome{To: "ada@example.com", Name: "Ada", Tags: []string{"new"}}},
			"raw payload, exact": {Payload: json.RawMessage(`{"to":"ada@example.com","name":"Ada","tags":["new"]}`)},
		} {
			t.Run(name, func(t *testing.T) {
				// Through the store and through the Client alike.
				for _, src := range []spooltest.Lister{st, c} {
					var got *spool.Job
					mustPass(t, func(ft testing.TB) { got = spooltest.RequireEnqueued(ft, src, m) })
					if got == nil || got.ID != id {
						t.Fatalf("RequireEnqueued returned %v, want job %s", got, id)
					}
				}
			})
		}
	})

	t.Run("payload differs", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{Kind: sendWelcome.Name(), Payload: Welcome{To: "ada@example.com", Name: "Adah"}})
		})
		wants(t, out,
			`no job matches {kind "email.welcome", payload spooltest_test.Welcome {"to":"ada@example.com","name":"Adah"}}`,
			`the store holds 2 jobs that do not match:`,
			`payload.name: got "Ada", want "Adah"`,
			// Zero fields of a typed payload count.
			`payload.tags: got ["new"], want none`,
			`payload.to: got "bob@example.com", want "ada@example.com"`,
			`job of kind "email.welcome" in queue "mail", available, tenant "acme", unique key "welcome:ada", payload {"to":"ada@example.com","name":"Ada","tags":["new"]}:`,
		)
		// The nearest job comes first.
		if strings.Index(out, `want "Adah"`) > strings.Index(out, `"bob@example.com"`) {
			t.Errorf("the job with fewer differences is not listed first:\n%s", out)
		}
	})

	t.Run("fields differ", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{
				Kind: "email.welcom", Queue: "default", Tenant: "globex", UniqueKey: "welcome:bob",
				States: []spool.State{spool.StateCompleted},
			})
		})
		wants(t, out,
			`kind: got "email.welcome", want "email.welcom"`,
			`queue: got "mail", want "default"`,
			`tenant: got "acme", want "globex"`,
			`unique key: got "welcome:ada", want "welcome:bob"`,
			`state: got available, want one of [completed]`,
		)
	})

	t.Run("subset differs", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{PayloadSubset: map[string]any{
				"to": "ada@example.com", "tags": []string{"old"}, "age": 36, "weird key": true,
			}})
		})
		wants(t, out,
			`payload containing {"age":36,"tags":["old"],"to":"ada@example.com","weird key":true}`,
			`payload.tags[0]: got "new", want "old"`,
			`payload.age: missing, want 36`,
			`payload["weird key"]: missing, want true`,
			`payload.tags: missing, want ["old"]`, // bob's job has no tags
		)
	})

	t.Run("payload of another shape", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{Payload: []int{1}})
		})
		wants(t, out, `payload: does not decode into []int`)
	})

	t.Run("more than one", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{Kind: sendWelcome.Name()})
		})
		wants(t, out, `2 jobs match {kind "email.welcome"}, want exactly 1`, `"bob@example.com"`, `"ada@example.com"`)
	})

	t.Run("bad match", func(t *testing.T) {
		out := mustFail(t, func(ft testing.TB) {
			spooltest.RequireEnqueued(ft, st, spooltest.Match{PayloadSubset: json.RawMessage(`{"to":`)})
		})
		wants(t, out, `Match.PayloadSubset is not JSON`)
	})
}

func TestRequireEnqueuedEmptyStore(t *testing.T) {
	t.Parallel()
	st := spooltest.NewStore(t, nil)
	out := mustFail(t, func(ft testing.TB) { spooltest.RequireEnqueued(ft, st, spooltest.Match{}) })
	wants(t, out, "no job matches {any job}", "the store holds no jobs")
}

func TestRequireEnqueuedN(t *testing.T) {
	t.Parallel()
	st := spooltest.NewStore(t, nil)
	c := spooltest.NewClient(t, st)
	for _, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		enqueue(t, c, Welcome{To: to}, nil)
	}
	if _, err := c.EnqueueMany(context.Background(), spool.RawItem("report", []byte(`{"to":"a@example.com"}`), nil)); err != nil {
		t.Fatal(err)
	}
	var got []*spool.Job
	mustPass(t, func(ft testing.TB) {
		got = spooltest.RequireEnqueuedN(ft, c, spooltest.Match{Kind: sendWelcome.Name()}, 3)
	})
	if len(got) != 3 {
		t.Fatalf("got %d jobs, want 3", len(got))
	}
	for i, to := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if w, _ := sendWelcome.Decode(got[i]); w.To != to {
			t.Errorf("job %d is to %q, want %q (enqueue order)", i, w.To, to)
		}
	}
	out := mustFail(t, func(ft testing.TB) {
		spooltest.RequireEnqueuedN(ft, c, spooltest.Match{PayloadSubset: map[string]string{"to": "a@example.com"}}, 3)
	})
	wants(t, out, `2 jobs match {payload containing {"to":"a@example.com"}}, want 3:`,
		`job of kind "report"`, `the store holds 2 jobs that do not match:`, `payload.to: got "b@example.com", want "a@example.com"`)
	out = mustFail(t, func(ft testing.TB) {
		spooltest.RequireEnqueuedN(ft, c, spooltest.Match{Kind: sendWelcome.Name()}, 2)
	})
	wants(t, out, `3 jobs match {kind "email.welcome"}, want 2:`)
}

func TestRequireNotEnqueued(t *testing.T) {
	t.Parallel()
	st := spooltest.NewStore(t, nil)
	c := spooltest.NewClient(t, st)
	enqueue(t, c, Welcome{To: "ada@example.com"}, &spool.EnqueueOptions{Queue: "mail"})
	mustPass(t, func(ft testing.TB) {
		spooltest.RequireNotEnqueued(ft, st, spooltest.Match{Kind: "report"})
		spooltest.RequireNotEnqueued(ft, st, spooltest.Match{Kind: sendWelcome.Name(), Queue: "default"})
		spooltest.RequireNotEnqueued(ft, st, spooltest.Match{Kind: sendWelcome.Name(), States: []spool.State{spool.StateDead}})
		spooltest.RequireNotEnqueued(ft, st, spooltest.Match{PayloadSubset: map[string]any{"to": "bob@example.com"}})
	})
	out := mustFail(t, func(ft testing.TB) {
		spooltest.RequireNotEnqueued(ft, st, spooltest.Match{Kind: sendWelcome.Name()})
	})
	wants(t, out, `1 job matches {kind "email.welcome"}, want none:`, `job of kind "email.welcome" in queue "mail", available, payload {"to":"ada@example.com"}`)
}

// Numbers compare by value, whatever their spelling; values of other types
// do not match.
func TestPayloadSubsetNumbers(t *testing.T) {
	t.Parallel()
	st := spooltest.NewStore(t, nil)
	c := spooltest.NewClient(t, st)
	if _, err := c.EnqueueMany(context.Background(), spool.RawItem("n", []byte(`{"n": 1.50, "big": 12345678901234567890, "s": "1"}`), nil)); err != nil {
		t.Fatal(err)
	}
	mustPass(t, func(ft testing.TB) {
		spooltest.RequireEnqueued(ft, st, spooltest.Match{PayloadSubset: json.RawMessage(`{"n": 15e-1, "big": 12345678901234567890}`)})
	})
	out := mustFail(t, func(ft testing.TB) {
		spooltest.RequireEnqueued(ft, st, spooltest.Match{PayloadSubset: json.RawMessage(`{"big": 12345678901234567891, "s": 1}`)})
	})
	wants(t, out, `payload.big: got 12345678901234567890, want 12345678901234567891`, `payload.s: got "1", want 1`)
}

// NewStore's store is closed when the test ends.
func TestNewStoreClosedAtCleanup(t *testing.T) {
	t.Parallel()
	var st store.Store
	mustPass(t, func(ft testing.TB) {
		st = spooltest.NewStore(ft, nil)
		if _, err := st.Enqueue(ft.Context(), []store.EnqueueParams{{Kind: "k"}}); err != nil {
			ft.Fatal(err)
		}
	})
	if _, err := st.Get(context.Background(), spool.ID{}); !errors.Is(err, spool.ErrClosed) {
		t.Fatalf("after the test, Get = %v; want ErrClosed", err)
	}
}
