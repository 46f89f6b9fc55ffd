package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
)

// browser is an HTTP client with a cookie jar, logged in to the
// dashboard with one key.
type browser struct {
	h      *harness
	c      *http.Client
	base   string // the dashboard's URL, without a trailing /
	csrf   string // the latest page's CSRF token
	status int
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// login logs in with the key named (a name of h.keys or a raw token).
func (h *harness) login(key string) *browser {
	h.t.Helper()
	b := h.browserAt(h.http.URL)
	if tok, ok := h.keys[key]; ok {
		key = tok
	}
	body := b.post("/login", url.Values{"key": {key}})
	if b.status != http.StatusOK || strings.Contains(body, `action="/login"`) && !strings.Contains(body, "Overview") {
		h.t.Fatalf("login as %s: %d %s", key, b.status, body)
	}
	return b
}

func (h *harness) browserAt(base string) *browser {
	jar, _ := cookiejar.New(nil)
	c := *h.http.Client() // a copy: the test server's client is shared
	c.Jar = jar
	return &browser{h: h, c: &c, base: base}
}

// get fetches a page, following redirects, and remembers its CSRF token.
func (b *browser) get(path string) string {
	b.h.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.h.t.Fatal(err)
	}
	return b.read(resp)
}

// post submits a form, with the latest CSRF token unless the form has one.
func (b *browser) post(path string, form url.Values) string {
	b.h.t.Helper()
	if form.Get("csrf") == "" && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.h.t.Fatal(err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) string {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	b.status = resp.StatusCode
	if m := csrfInput.FindSubmatch(raw); m != nil {
		b.csrf = string(m[1])
	}
	return string(raw)
}

// Every page renders for every role; a page without a session redirects to
// the login form; every action refuses a reader, a request without the
// CSRF token, and a request from another site, and changes nothing.
func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	g := h.seedGlobex()
	anon := h.browserAt(h.http.URL)
	for _, rt := range h.srv.DashboardRoutes() {
		path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{$}", ""), "{id}", g.dead.ID)
		if rt.Permission == "public" {
			continue
		}
		before := h.snapshot("")
		if rt.Method == http.MethodGet {
			body := anon.get(path)
			if !strings.Contains(body, `name="key"`) {
				t.Errorf("GET %s without a session: %d, want the login form", path, anon.status)
			}
			continue
		}
		anon.post(path, url.Values{"csrf": {"x"}})
		if anon.status != http.StatusForbidden && anon.status != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401 or 403", path, anon.status)
		}
		if h.snapshot("") != before {
			t.Errorf("POST %s without a session changed the store", path)
		}
	}
	for _, role := range roles {
		b := h.login("acme/" + role)
		for _, rt := range h.srv.DashboardRoutes() {
			path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{$}", ""), "{id}", g.dead.ID)
			if rt.Permission == "public" {
				continue
			}
			if rt.Method == http.MethodGet {
				if rt.Path == "/bulk" {
					path += "?action=cancel"
				}
				if rt.Path == "/schedule" {
					path += "?id=nightly&tenant=globex"
				}
				body := b.get(path)
				want := http.StatusOK
				if rt.Permission == "admin" && role != store.RoleAdmin {
					want = http.StatusForbidden
				}
				switch rt.Path {
				case "/jobs/{id}":
					want = http.StatusNotFound // globex's job is not acme's to see
				case "/schedule":
					want = http.StatusForbidden // nor is globex's schedule
				}
				if b.status != want {
					t.Errorf("GET %s as %s: %d, want %d: %.300s", path, role, b.status, want, body)
				}
				if strings.Contains(body, "globex") && !strings.Contains(path, "globex") || strings.Contains(body, g.dead.ID) && rt.Path != "/jobs/{id}" {
					t.Errorf("GET %s as %s shows globex: %.500s", path, role, body)
				}
				if role != store.RoleAdmin && strings.Contains(body, `method="post"`) && !strings.Contains(body, `/logout"`) {
					t.Errorf("GET %s as %s shows an action", path, role)
				}
				continue
			}
			if rt.Path == "/logout" || rt.Path == "/login" {
				continue
			}
			b.get("/") // a fresh token
			for _, c := range []struct {
				name string
				form url.Values
				hdr  []string
			}{
				{"no token", url.Values{"csrf": {"0"}}, nil},
				{"another site", url.Values{}, []string{"Sec-Fetch-Site", "cross-site"}},
				{"another origin", url.Values{}, []string{"Origin", "https://evil.example"}},
			} {
				if role != store.RoleAdmin && c.name != "no token" {
					continue
				}
				before := h.snapshot("")
				if c.form.Get("csrf") == "" {
					c.form.Set("csrf", b.csrf)
				}
				req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(c.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for i := 0; i+1 < len(c.hdr); i += 2 {
					req.Header.Set(c.hdr[i], c.hdr[i+1])
				}
				resp, err := b.c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("POST %s as %s with %s: %d, want 403", path, role, c.name, resp.StatusCode)
				}
				if h.snapshot("") != before {
					t.Errorf("POST %s as %s with %s changed the store", path, role, c.name)
				}
			}
			if role != store.RoleAdmin {
				// A reader's forged POST with a good token: refused all the same.
				before := h.snapshot("")
				b.post(path, url.Values{"queue": {"mail"}, "id": {"nightly"}, "action": {"cancel"}})
				if b.status != http.StatusForbidden || h.snapshot("") != before {
					t.Errorf("POST %s as %s with its token: %d, want 403 and no change", path, role, b.status)
				}
			}
		}
	}
}

// The security headers are on every page, and the pages carry no inline
// script or style.
func TestDashboardHeaders(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	b := h.login("acme/admin")
	for _, path := range []string{"/", "/login", "/jobs", "/static/spool.css"} {
		resp, err := b.c.Get(b.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|style="|onclick=`).Match(body) {
			t.Errorf("%s has inline script or style", path)
		}
	}
	// The session cookie is HttpOnly and SameSite=Strict.
	c := h.http.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(h.http.URL+"/login", url.Values{"key": {h.keys["acme/reader"]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") {
		t.Errorf("session cookie %q", set)
	}
}

// A session ends when its key is revoked (within KeyCacheFor), and a
// tampered cookie is no session.
func TestDashboardSessionRevoked(t *testing.T) {
	t.Parallel()
	fake := clockwork.NewFakeClockAt(time.Now())
	h := newHarness(t, server.Config{KeyCacheFor: time.Second, Clock: fake})
	b := h.login("acme/reader")
	if body := b.get("/"); !strings.Contains(body, "Overview") {
		t.Fatalf("overview: %d", b.status)
	}
	u, _ := url.Parse(h.http.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "spool_session" {
			forged := h.browserAt(h.http.URL)
			parts := strings.Split(c.Value, ".")
			parts[1] = fmt.Sprint(time.Now().Add(1000 * time.Hour).Unix())
			forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "spool_session", Value: strings.Join(parts, "."), Path: "/"}})
			if body := forged.get("/"); !strings.Contains(body, `name="key"`) {
				t.Errorf("a session with a changed expiry is accepted: %d", forged.status)
			}
			id := parts[0]
			if err := h.st.Capabilities().Keys.RevokeKey(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
	}
	fake.Advance(2 * time.Second) // past KeyCacheFor
	if body := b.get("/"); !strings.Contains(body, `name="key"`) {
		t.Errorf("a revoked key's session still works: %d", b.status)
	}
}

// The dashboard works mounted under a prefix: its links, forms, assets and
// cookies are under it.
func TestDashboardUnderPrefix(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	mux := http.NewServeMux()
	mux.Handle("/spool/", http.StripPrefix("/spool", h.srv))
	h.http.Config.Handler = mux
	b := h.browserAt(h.http.URL + "/spool")
	body := b.get("/")
	if !strings.Contains(body, `action="/spool/login"`) {
		t.Fatalf("login form under the prefix: %d %.400s", b.status, body)
	}
	body = b.post("/login", url.Values{"key": {h.keys["acme/admin"]}})
	if !strings.Contains(body, `href="/spool/static/spool.css"`) || !strings.Contains(body, `href="/spool/jobs"`) || strings.Contains(body, `href="/jobs"`) {
		t.Fatalf("overview under the prefix: %d %.600s", b.status, body)
	}
	h.must(201, "acme/producer", "POST", "/spool/v1/jobs", `{"kind": "k", "queue": "mail"}`, nil)
	if body := b.get("/jobs?queue=mail"); !strings.Contains(body, `href="/spool/jobs/`) {
		t.Errorf("job links under the prefix: %.600s", body)
	}
	if body := b.get("/static/spool.js"); b.status != 200 || !strings.Contains(body, "data-confirm") {
		t.Errorf("script under the prefix: %d", b.status)
	}
}

var versionInput = regexp.MustCompile(`name="version" value="(\d+)"`)

// A schedule's edit form writes only while the schedule is at the version
// the form was loaded at.
func TestDashboardScheduleEdit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.must(201, "acme/admin", "POST", "/v1/schedules", `{"id": "nightly", "spec": "@daily", "kind": "report"}`, nil)
	b := h.login("acme/admin")
	body := b.get("/schedule?id=nightly")
	m := versionInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no version in the form: %.500s", body)
	}
	form := url.Values{"id": {"nightly"}, "version": {m[1]}, "spec": {"@hourly"}, "kind": {"report"}, "queue": {"default"},
		"overlap": {"skip"}, "misfire": {"run_once"}, "mode": {"fixed_rate"}, "max_attempts": {"3"}, "payload": {`{"full": true}`}}
	if body := b.post("/schedule/edit", form); b.status != 200 || !strings.Contains(body, "Saved the schedule") || !strings.Contains(body, "@hourly") {
		t.Fatalf("edit: %d %.800s", b.status, body)
	}
	form.Set("spec", "@weekly") // the same, stale, version
	if body := b.post("/schedule/edit", form); b.status != 409 || !strings.Contains(body, "conflict") {
		t.Errorf("a stale edit: %d %.800s", b.status, body)
	}
	form.Set("spec", "every now and then")
	b.get("/schedule?id=nightly")
	form.Set("version", versionInput.FindStringSubmatch(b.get("/schedule?id=nightly"))[1])
	if b.post("/schedule/edit", form); b.status != 400 {
		t.Errorf("a bad spec: %d", b.status)
	}
	var s struct{ Spec string }
	h.must(200, "acme/reader", "GET", "/v1/schedules/nightly", "", &s)
	if s.Spec != "@hourly" {
		t.Errorf("the schedule's spec is %q, want @hourly", s.Spec)
	}
}

// Keys made on the page show their token once; a revoked key's login and
// session end.
func TestDashboardKeys(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{KeyCacheFor: time.Nanosecond})
	admin := h.login("acme/admin")
	admin.get("/keys")
	body := admin.post("/keys", url.Values{"role": {"reader"}, "name": {"on-call"}})
	tok := regexp.MustCompile(`spool_(k[0-9a-f]+)_[A-Za-z0-9_-]{43}`).FindStringSubmatch(body)
	if admin.status != 201 || tok == nil {
		t.Fatalf("create: %d %.600s", admin.status, body)
	}
	if strings.Contains(admin.get("/keys"), tok[0]) {
		t.Error("the token is shown again")
	}
	reader := h.login(tok[0])
	if body := reader.get("/"); !strings.Contains(body, "Overview") {
		t.Fatalf("the new key's login: %d", reader.status)
	}
	admin.get("/keys")
	if body := admin.post("/keys/"+tok[1]+"/revoke", url.Values{}); admin.status != 200 {
		t.Fatalf("revoke: %d %.800s", admin.status, body)
	}
	if body := reader.get("/"); !strings.Contains(body, `name="key"`) {
		t.Errorf("the revoked key's session goes on: %d", reader.status)
	}
	if body := admin.get("/audit"); !strings.Contains(body, "key.revoke") || !strings.Contains(body, "key.create") || !strings.Contains(body, "dashboard.login") {
		t.Errorf("the audit log lacks the key's life: %.1500s", body)
	}
}

// An insecure server's dashboard needs no login and says so.
func TestDashboardInsecure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{Insecure: true})
	b := h.browserAt(h.http.URL)
	if body := b.get("/"); b.status != 200 || !strings.Contains(body, "without authentication") {
		t.Errorf("insecure overview: %d %.300s", b.status, body)
	}
	h2 := newHarness(t, server.Config{Dashboard: server.DashboardConfig{Disable: true}})
	b2 := h2.browserAt(h2.http.URL)
	if b2.get("/"); b2.status != 404 {
		t.Error("a disabled dashboard answers")
	}
}

// A subscription's delivery shows the events it carries, with their
// headers; a key limited to queues lists its own queue's jobs.
func TestDashboardDeliveryAndLimitedKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.must(201, "acme/admin", "PUT", "/v1/topics/orders/subscriptions/billing", `{}`, nil)
	h.must(201, "acme/producer", "POST", "/v1/topics/orders/events", `{"kind": "order_placed", "key": "o-7", "headers": {"x-source": "checkout"}, "payload": {"total": 42}}`, nil)
	var claimed struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/sub%2Forders%2Fbilling/claim", `{"limit": 1}`, &claimed)
	if len(claimed.Jobs) != 1 {
		t.Fatalf("no delivery: %+v", claimed)
	}
	b := h.login("acme/reader")
	body := b.get("/jobs/" + claimed.Jobs[0].ID)
	for _, want := range []string{"Events delivered", "order_placed", "x-source", "checkout", "&#34;total&#34;: 42", "orders #1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the delivery's page lacks %q: %.2000s", want, body)
		}
	}
	h.enqueue(1, "mail", "welcome", "")
	limited := h.login("acme/worker:mail")
	if body := limited.get("/jobs"); limited.status != 200 || !strings.Contains(body, "welcome") {
		t.Errorf("a key limited to mail: %d %.500s", limited.status, body)
	}
}

// The job list's filters: a time range as a browser's datetime-local
// input sends it (UTC), kind and state, all kept in the page's links.
func TestDashboardFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(3, "mail", "welcome", "")
	h.enqueue(2, "mail", "receipt", "")
	b := h.login("acme/reader")
	now := time.Now().UTC()
	q := url.Values{"queue": {"mail"}, "kind": {"welcome"}, "state": {"available"},
		"created_after": {now.Add(-time.Hour).Format("2006-01-02T15:04")}, "created_before": {now.Add(time.Hour).Format("2006-01-02T15:04:05")}}
	body := b.get("/jobs?" + q.Encode())
	if b.status != 200 || strings.Count(body, "<tr data-job") != 3 || strings.Contains(body, "receipt") {
		t.Errorf("filtered list: %d, %d rows: %.1500s", b.status, strings.Count(body, "<tr data-job"), body)
	}
	q.Set("created_after", now.Add(time.Hour).Format("2006-01-02T15:04"))
	if body := b.get("/jobs?" + q.Encode()); strings.Contains(body, "<tr data-job") {
		t.Error("a range after every job lists jobs")
	}
	q.Set("created_after", "last tuesday")
	if b.get("/jobs?" + q.Encode()); b.status != 400 {
		t.Errorf("a bad time: %d, want 400", b.status)
	}
}

var (
	jobRow    = regexp.MustCompile(`<tr data-job="([^"]+)"`)
	olderLink = regexp.MustCompile(`rel="next" href="([^"]+)"`)
	newerLink = regexp.MustCompile(`rel="prev" href="([^"]+)"`)
)

// The job list pages newest first by keyset: Older, then Newer, returns
// to the same jobs, and every job is listed once.
func TestDashboardPaging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(120, "mail", "welcome", "")
	b := h.login("acme/reader")
	rows := func(body string) []string {
		var ids []string
		for _, m := range jobRow.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		return ids
	}
	link := func(re *regexp.Regexp, body string) string {
		m := re.FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return strings.ReplaceAll(m[1], "&amp;", "&")
	}
	first := b.get("/jobs?queue=mail")
	seen := map[string]bool{}
	var pages [][]string
	body := first
	for {
		ids := rows(body)
		for i, id := range ids {
			if seen[id] {
				t.Fatalf("job %s listed twice", id)
			}
			seen[id] = true
			if i > 0 && id > ids[i-1] {
				t.Fatalf("not newest first: %s after %s", id, ids[i-1])
			}
		}
		pages = append(pages, ids)
		next := link(olderLink, body)
		if next == "" {
			break
		}
		body = b.get("/jobs" + next)
	}
	if len(seen) != 120 || len(pages) != 3 || len(pages[0]) != 50 {
		t.Fatalf("paged through %d jobs in %d pages", len(seen), len(pages))
	}
	// Back from the last page to the first.
	for i := len(pages) - 2; i >= 0; i-- {
		prev := link(newerLink, body)
		if prev == "" {
			t.Fatalf("no Newer link back to page %d", i+1)
		}
		body = b.get("/jobs" + prev)
		if got := rows(body); strings.Join(got, ",") != strings.Join(pages[i], ",") {
			t.Fatalf("Newer to page %d shows %d jobs, not the same as before", i+1, len(got))
		}
	}
	if link(newerLink, body) != "" {
		t.Error("the first page has a Newer link")
	}
}
