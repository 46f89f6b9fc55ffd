package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store/sqlite"
)

// FuzzRequestBodies sends arbitrary bodies to every route that takes one:
// no panic, never a 5xx, and every refusal a typed error of the catalog.
func FuzzRequestBodies(f *testing.F) {
	for _, seed := range []string{
		`{"kind": "k"}`, `{"jobs": [{"kind": "k", "payload": {"a": 1}}]}`, `{"jobs": [{"kind": ""}]}`,
		`{"limit": 5, "lock_seconds": 0.5, "wait_seconds": 0}`, `{"renewals": [{"id": "x", "lock_token": "1"}]}`,
		`{"verdicts": [{"id": "01a25248-1413-7035-b3b5-8590eb7f5e88", "lock_token": "ff", "outcome": "fail", "error": {"message": "m"}}]}`,
		`{"ids": ["01a25248-1413-7035-b3b5-8590eb7f5e88"]}`, `{"all": true}`, `{"dead_before": "2030-01-01T00:00:00Z"}`,
		`null`, `[]`, `{"jobs": null}`, `{"kind": "k", "run_at": "yesterday"}`, "\x00", `{"wait_seconds": -1}`,
		`{"events": [{"kind": "k", "key": "o-1", "headers": {"a": "b"}}]}`, `{"expected_version": 0, "events": [{"kind": "k"}]}`,
		`{"from": "start", "kinds": ["k"], "ordered": true, "on_dead_head": "block"}`, `{"to": 1, "forget_inbox": true}`,
		`{"retention": "1h"}`, `{"from": 0}`,
		`{"action": "cancel", "filter": {"queue": "q", "state": "dead,available"}}`, `{"action": "requeue", "filter": {"created_after": "2026-01-01T00:00"}}`,
		`{"role": "reader", "expires": "90d"}`,
	} {
		f.Add(seed)
	}
	st, err := sqlite.Open(filepath.Join(f.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv, err := server.New(server.Config{Store: withDashCaps(st, time.Now), Insecure: true, MaxBodyBytes: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	var paths []string
	for _, rt := range srv.Routes() {
		if rt.Method == http.MethodPost || rt.Method == http.MethodPut {
			p := strings.ReplaceAll(rt.Path, "{id}", "01a25248-1413-7035-b3b5-8590eb7f5e88")
			p = strings.ReplaceAll(p, "{queue}", "q")
			p = strings.NewReplacer("{topic}", "t", "{key}", "k", "{name}", "s").Replace(p)
			paths = append(paths, rt.Method+" "+p)
		}
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, mp := range paths {
			method, path, _ := strings.Cut(mp, " ")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", mp, body, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var e wire.ErrorBody
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Code == wire.CodeInternal || e.Error.Code == "" {
					t.Fatalf("%s %q: %d %s is not a typed error", mp, body, rec.Code, rec.Body)
				}
			}
		}
	})
}
