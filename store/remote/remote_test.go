package remote_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolrun/spool/store"
	"github.com/spoolrun/spool/store/remote"
	"github.com/spoolrun/spool/store/sqlite"
)

func TestOpenRefusesBadURLs(t *testing.T) {
	for _, u := range []string{
		"ftp://host",
		"http://",
		"http://host?api_key=spool_a_b",
		"http://host#frag",
		"http://spool_a_b@host", // a key as the user name would show in logs
		"http:host",
	} {
		if _, err := remote.Open(u, remote.Options{}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", u, err)
		} else if strings.Contains(err.Error(), "spool_a_b") {
			t.Errorf("Open(%q): the error shows the key: %v", u, err)
		}
	}
}

// authServer answers every request 200 {} and remembers the last
// Authorization header and path.
func authServer(t *testing.T) (*httptest.Server, func() (auth, path string)) {
	t.Helper()
	var mu sync.Mutex
	var auth, path string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, path = r.Header.Get("Authorization"), r.URL.EscapedPath()
		mu.Unlock()
		_, _ = io.WriteString(w, `{"queues": []}`)
	}))
	t.Cleanup(hs.Close)
	return hs, func() (string, string) {
		mu.Lock()
		defer mu.Unlock()
		return auth, path
	}
}

func TestAPIKeySources(t *testing.T) {
	hs, last := authServer(t)
	withKey := func(key string) string { return strings.Replace(hs.URL, "http://", "http://"+key+"@", 1) }
	t.Setenv(remote.EnvAPIKey, "spool_env_secret")
	for _, c := range []struct {
		url, option, want string
	}{
		{hs.URL, "", "Bearer spool_env_secret"},
		{withKey(":spool_url_secret"), "", "Bearer spool_url_secret"},
		{withKey("key:spool_url_secret"), "", "Bearer spool_url_secret"},
		{withKey(":spool_url_secret"), "spool_opt_secret", "Bearer spool_opt_secret"},
		{hs.URL + "/prefix/", "", "Bearer spool_env_secret"},
	} {
		s, err := remote.Open(c.url, remote.Options{APIKey: c.option})
		if err != nil {
			t.Fatalf("Open(%q): %v", c.url, err)
		}
		if strings.Contains(s.URL(), "secret") {
			t.Errorf("URL() = %q shows the key", s.URL())
		}
		if _, err := s.Stats(t.Context()); err != nil {
			t.Fatalf("Stats via %q: %v", c.url, err)
		}
		auth, path := last()
		if auth != c.want {
			t.Errorf("Open(%q, APIKey %q) sent %q, want %q", c.url, c.option, auth, c.want)
		}
		if strings.Contains(c.url, "/prefix") && path != "/prefix/v1/stats" {
			t.Errorf("a URL with a path prefix called %q, want /prefix/v1/stats", path)
		}
		s.Close()
	}
}

func TestOpenByURL(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:1", "HTTPS://example.com/spool"} {
		s, err := store.Open(t.Context(), u, store.OpenOptions{})
		if err != nil {
			t.Fatalf("store.Open(%q): %v", u, err)
		}
		if _, ok := s.(*remote.Store); !ok {
			t.Errorf("store.Open(%q) = %T, want *remote.Store", u, s)
		}
		s.Close()
	}
}

func TestAnswersThatAreNotErrorDocuments(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/stats":
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		default:
			http.Error(w, "who are you", http.StatusUnauthorized)
		}
	}))
	defer hs.Close()
	s, err := remote.Open(hs.URL, remote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Stats(t.Context()); err == nil || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Errorf("a proxy's 502 page: %v", err)
	}
	if _, err := s.Get(t.Context(), store.NewID()); !errors.Is(err, store.ErrUnauthorized) {
		t.Errorf("a bare 401: %v, want ErrUnauthorized", err)
	}
}

// TestQueueNames: queue names with slashes and dots travel in URL paths.
func TestQueueNames(t *testing.T) {
	under, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sv := serve(t, under)
	s := dial(t, sv)
	defer s.Close()
	ctx := t.Context()
	for _, q := range []string{"sub/orders/billing", ".", "..", "a/../b", "x:y-z_w.v", "..."} {
		if err := s.PauseQueue(ctx, q); err != nil {
			t.Fatalf("PauseQueue(%q): %v", q, err)
		}
		if err := s.ResumeQueue(ctx, q); err != nil {
			t.Fatalf("ResumeQueue(%q): %v", q, err)
		}
		avail := s.Capabilities().Notifier.Available(q)
		res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: q}})
		if err != nil {
			t.Fatalf("Enqueue into %q: %v", q, err)
		}
		select {
		case <-avail:
		case <-time.After(10 * time.Second):
			t.Fatalf("Available(%q) not woken by an enqueue", q)
		}
		jobs, err := s.Claim(ctx, store.ClaimParams{Queue: q, LockFor: time.Minute})
		if err != nil || len(jobs) != 1 || jobs[0].ID != res[0].ID || jobs[0].Queue != q {
			t.Fatalf("Claim(%q) = %v, %v; want the job enqueued there", q, jobs, err)
		}
	}
	if err := s.PauseQueue(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PauseQueue(\"\") = %v, want ErrInvalid as from a local store", err)
	}
}

// TestCloseWakesAndRefuses: Close ends the long polls, wakes their
// waiters, and refuses later calls, notifications included.
func TestCloseWakesAndRefuses(t *testing.T) {
	under, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := dial(t, serve(t, under))
	res, err := s.Enqueue(t.Context(), []store.EnqueueParams{{Kind: "k", Queue: "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	n := s.Capabilities().Notifier
	avail := n.Available("q")
	fin, release := n.Finished(res[0].ID)
	defer release()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for what, ch := range map[string]<-chan struct{}{"Available": avail, "Finished": fin} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Errorf("%s's channel stayed open after Close", what)
		}
	}
	select {
	case <-n.Available("q"):
	default:
		t.Error("Available after Close returned an open channel")
	}
	if _, err := s.Stats(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
}

// TestClaimWait: a waiting claim answers with none when its wait passes,
// and with a job enqueued while it waits, saying how long it waited before
// the claim that took it, never longer than the call took.
func TestClaimWait(t *testing.T) {
	t.Parallel()
	under, err := sqlite.Open(filepath.Join(t.TempDir(), "spool.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := dial(t, serve(t, under))
	defer s.Close()
	ctx := t.Context()
	cw := s.Capabilities().ClaimWaiter
	if cw == nil {
		t.Fatal("the remote store does not declare ClaimWaiter")
	}
	p := store.ClaimParams{Queue: "q", Limit: 5, LockFor: time.Minute}
	jobs, waited, err := cw.ClaimWait(ctx, p, 50*time.Millisecond)
	if err != nil || len(jobs) != 0 || waited != 0 {
		t.Fatalf("ClaimWait on an empty queue = %v, %v, %v; want none", jobs, waited, err)
	}

	type answer struct {
		jobs   []*store.Job
		waited time.Duration
		took   time.Duration
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		began := time.Now()
		jobs, waited, err := cw.ClaimWait(ctx, p, 20*time.Second)
		got <- answer{jobs, waited, time.Since(began), err}
	}()
	time.Sleep(100 * time.Millisecond) // let the claim wait first; not a synchronisation
	res, err := s.Enqueue(ctx, []store.EnqueueParams{{Kind: "k", Queue: "q"}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.err != nil || len(a.jobs) != 1 || a.jobs[0].ID != res[0].ID || a.jobs[0].State != store.StateRunning {
			t.Fatalf("ClaimWait = %v, %v; want the job enqueued while it waited, running", a.jobs, a.err)
		}
		if a.waited < 0 || a.waited > a.took {
			t.Fatalf("ClaimWait waited %v in a call of %v", a.waited, a.took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a waiting claim was not answered when a job came")
	}
}
