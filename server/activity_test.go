package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/sqlite"
)

// The server counts the claims and verdicts it serves for the store's
// activity: a verdict for a job another server handed out is counted
// after one read of the job, a refused one is not counted, and the counts
// reach the store when FlushActivity is called.
func TestActivityOfRemoteWorkers(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var srvs [2]*server.Server
	var urls [2]string
	for i := range srvs {
		if srvs[i], err = server.New(server.Config{Store: st, Insecure: true}); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srvs[i])
		t.Cleanup(hs.Close)
		urls[i] = hs.URL
	}
	post := func(url, path, body string, out any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		post(urls[0], "/v1/jobs", `{"queue": "mail", "kind": "k"}`, nil)
	}
	var claimed struct{ Jobs []jobView }
	post(urls[0], "/v1/queues/mail/claim", `{"limit": 3}`, &claimed)
	if len(claimed.Jobs) != 3 {
		t.Fatalf("claimed %+v", claimed.Jobs)
	}
	settle := func(url string, j jobView, outcome, token string) {
		post(url, "/v1/settle", fmt.Sprintf(`{"verdicts": [{"id": %q, "lock_token": %q, "outcome": %q}]}`, j.ID, token, outcome), nil)
	}
	settle(urls[0], claimed.Jobs[0], "complete", claimed.Jobs[0].LockToken) // the server that handed it out
	settle(urls[1], claimed.Jobs[1], "complete", claimed.Jobs[1].LockToken) // another server: read back
	settle(urls[1], claimed.Jobs[2], "complete", "1")                       // a stale token: refused, not counted
	for _, s := range srvs {
		if err := s.FlushActivity(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := st.Activity(t.Context(), store.AllTenants, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got store.QueueActivity
	for _, r := range rows {
		if r.Queue != "mail" {
			t.Fatalf("activity of queue %q", r.Queue)
		}
		got.Add(&r.QueueActivity)
	}
	claims := int64(0)
	for _, n := range got.Pickup {
		claims += n
	}
	if got.Completed != 2 || got.Failed != 0 || got.Dead != 0 || claims != 3 {
		t.Fatalf("activity %+v: want 2 completed and 3 claims", got)
	}
}
