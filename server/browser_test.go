package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/spoolrun/spool/server"
	"github.com/spoolrun/spool/store"
)

// The dashboard in a real browser: headless Chromium (Debian's chromium
// package, installed here when missing and allowed) driven with chromedp.
// One browser serves the whole test binary; each test has its own tab and
// its own server. Waits poll the page's DOM until a condition holds or the
// test's deadline passes; nothing is asserted after a fixed sleep.

// browserWait bounds each wait for a condition in a page.
const browserWait = 30 * time.Second

var chrome struct {
	once    sync.Once
	ctx     context.Context // the browser's, for new tabs
	cancel  func()
	dataDir string
	skip    string // why browser tests skip, when they do
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chrome.cancel != nil {
		chrome.cancel()
		_ = os.RemoveAll(chrome.dataDir)
	}
	os.Exit(code)
}

// chromiumPath finds Chromium on PATH, installing Debian's package when it
// is missing and the test runs as root with apt-get; "" when there is none.
func chromiumPath() (string, string) {
	find := func() string {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		return ""
	}
	if p := find(); p != "" {
		return p, ""
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return "", "no chromium on PATH, and it cannot be installed here (apt-get install chromium as root)"
	}
	cmd := exec.Command("sh", "-c", "apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq chromium)")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("installing chromium failed: %v: %.500s", err, out)
	}
	if p := find(); p != "" {
		return p, ""
	}
	return "", "chromium installed but not found on PATH"
}

// tab opens a new tab of the test binary's browser, skipping the test when
// there is no browser. The tab closes when the test ends.
func tab(t *testing.T) context.Context {
	t.Helper()
	chrome.once.Do(func() {
		path, why := chromiumPath()
		if path == "" {
			chrome.skip = why
			return
		}
		dir, err := os.MkdirTemp("", "spool-chromium-")
		if err != nil {
			chrome.skip = err.Error()
			return
		}
		chrome.dataDir = dir
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir),
			chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.Flag("disable-background-timer-throttling", true), chromedp.Flag("disable-renderer-backgrounding", true),
			chromedp.WindowSize(1280, 900))
		ctx, cancelCtx := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil { // start the browser, without a deadline
			cancelCtx()
			cancelAlloc()
			chrome.skip = "chromium does not start: " + err.Error()
			return
		}
		chrome.ctx = ctx
		chrome.cancel = func() { cancelCtx(); cancelAlloc() }
	})
	if chrome.skip != "" {
		t.Skip("browser tests skipped: " + chrome.skip)
	}
	// Each tab has its own browser context, so its cookies are its own:
	// cookies ignore ports, and the tests' servers share 127.0.0.1.
	ctx, cancel := chromedp.NewContext(chrome.ctx, chromedp.WithNewBrowserContext())
	if err := chromedp.Do(ctx); err != nil { // open the tab, without a deadline
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	// Accept the confirm() of destructive forms, as a person who meant it.
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return ctx
}

// ui is a tab on one harness's dashboard.
type ui struct {
	t   *testing.T
	h   *harness
	ctx context.Context
}

func (h *harness) browse(t *testing.T) *ui {
	return &ui{t: t, h: h, ctx: tab(t)}
}

// do runs actions with the wait's deadline.
func (u *ui) do(actions ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		u.t.Fatal(err)
	}
}

// open loads a page of the dashboard.
func (u *ui) open(path string) {
	u.t.Helper()
	u.do(chromedp.Navigate(u.h.http.URL + path))
}

// click clicks the element and waits for the page it loads.
func (u *ui) click(sel string) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserWait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		u.t.Fatalf("click %s: %v", sel, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](u *ui, expr string, opts ...chromedp.EvaluateOption) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		u.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor polls the page until the JavaScript expression is true, and
// fails the test when it is not within browserWait. what says what is
// awaited.
func (u *ui) waitFor(what, expr string) {
	u.t.Helper()
	deadline := time.Now().Add(browserWait)
	var last string
	for {
		ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(u.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			u.t.Fatalf("waited %v for %s (%s), last error %v%s; the page says:\n%.1500s", browserWait, what, expr, err, last, body)
		}
		time.Sleep(100 * time.Millisecond) // the interval of the poll, not an assertion
	}
}

// text is the trimmed text of the first element sel selects, "" if none.
func (u *ui) text(sel string) string {
	u.t.Helper()
	q, _ := json.Marshal(sel)
	return eval[string](u, fmt.Sprintf("(document.querySelector(%s) || {}).textContent?.trim() || ''", q))
}

// login logs in through the form with the key named.
func (u *ui) login(key string) {
	u.t.Helper()
	u.open("/")
	u.waitFor("the login form", `document.querySelector('input[name=key]')`)
	tok, _ := json.Marshal(u.h.keys[key])
	u.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf("void (document.querySelector('input[name=key]').value = %s)", tok)))
	u.click(`form[action$="/login"] button`)
	u.waitFor("the overview after logging in", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'`)
}

// enqueue adds n jobs through the API as acme's producer.
func (h *harness) enqueue(n int, queue, kind string, extra string) {
	h.t.Helper()
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"kind": %q, "queue": %q, "payload": {"n": %d}%s}`, kind, queue, i, extra)
	}
	h.must(201, "acme/producer", "POST", "/v1/jobs", `{"jobs": [`+b.String()+`]}`, nil)
}

// work claims up to n jobs of acme's queue and settles them with outcome,
// through the API as acme's worker; it returns how many it settled.
func (h *harness) work(queue string, n int, outcome string) int {
	h.t.Helper()
	var claimed struct{ Jobs []jobView }
	h.must(200, "acme/worker", "POST", "/v1/queues/"+queue+"/claim", fmt.Sprintf(`{"limit": %d}`, n), &claimed)
	if len(claimed.Jobs) == 0 {
		return 0
	}
	var vs []string
	for _, j := range claimed.Jobs {
		vs = append(vs, fmt.Sprintf(`{"id": %q, "lock_token": %q, "outcome": %q, "error": {"message": "boom: the partner API answered 502"}}`, j.ID, j.LockToken, outcome))
	}
	if outcome == "complete" {
		for i, j := range claimed.Jobs {
			vs[i] = fmt.Sprintf(`{"id": %q, "lock_token": %q, "outcome": "complete", "result": {"ok": true}}`, j.ID, j.LockToken)
		}
	}
	h.must(200, "acme/worker", "POST", "/v1/settle", `{"verdicts": [`+strings.Join(vs, ",")+`]}`, nil)
	return len(claimed.Jobs)
}

func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	u := h.browse(t)
	u.open("/jobs")
	u.waitFor("the login form", `document.querySelector('input[name=key]')`)
	// A wrong key is refused on the form.
	u.do(chromedp.Evaluate[chromedp.Void](`void (document.querySelector('input[name=key]').value = 'spool_k0000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')`))
	u.click(`form[action$="/login"] button`)
	u.waitFor("the refusal", `document.body.innerText.includes('Unknown key')`)
	u.login("acme/admin")
	if who := u.text(".who span"); !strings.Contains(who, "tenant acme") || !strings.Contains(who, "admin") {
		t.Errorf("logged in as %q", who)
	}
	// Log out: the pages ask for a key again.
	u.click(`form[action$="/logout"] button`)
	u.open("/")
	u.waitFor("the login form after logging out", `document.querySelector('input[name=key]')`)
}

// The overview's counts follow a queue as it fills and drains, without a
// reload.
func TestBrowserOverviewLive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(1, "fill", "report", "")
	u := h.browse(t)
	u.login("acme/admin")
	cell := func(state string) string {
		return fmt.Sprintf(`document.querySelector('[data-q="fill"][data-s="%s"]')`, state)
	}
	u.waitFor("1 available", cell("available")+`.textContent === '1'`)
	u.do(chromedp.Evaluate[chromedp.Void](`void (document.body.dataset.marker = 'not reloaded')`))
	h.enqueue(24, "fill", "report", "")
	u.waitFor("25 available", cell("available")+`.textContent === '25'`)
	for h.work("fill", 10, "complete") > 0 {
	}
	u.waitFor("drained: 0 available, 25 completed", cell("available")+`.textContent === '0' && `+cell("completed")+`.textContent === '25'`)
	if eval[string](u, `document.body.dataset.marker || ''`) != "not reloaded" {
		t.Error("the overview reloaded to show the counts")
	}
}

// A dead letter is opened, retried, and seen to complete.
func TestBrowserRetryDeadLetter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(1, "billing", "charge", `, "max_attempts": 1`)
	if h.work("billing", 1, "fail") != 1 {
		t.Fatal("no job to fail")
	}
	u := h.browse(t)
	u.login("acme/admin")
	u.open("/dead")
	u.waitFor("the dead letter", `document.querySelector('tr[data-job] td.err') && document.querySelector('tr[data-job] td.err').textContent.includes('boom')`)
	u.click(`tr[data-job] a.mono`)
	u.waitFor("the job page", `document.querySelector('#job-state') && document.querySelector('#job-state').textContent === 'dead'`)
	u.waitFor("its error", `document.querySelector('.attempts pre').textContent.includes('partner API answered 502')`)
	u.click(`#retry`)
	u.waitFor("requeued", `document.querySelector('#job-state').textContent === 'available' && document.body.innerText.includes('Requeued')`)
	if h.work("billing", 1, "complete") != 1 {
		t.Fatal("the retried job was not claimable")
	}
	deadline := time.Now().Add(browserWait)
	for u.text("#job-state") != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("the job page shows %q, want completed", u.text("#job-state"))
		}
		u.do(chromedp.Reload())
	}
	if !strings.Contains(u.text("main"), `"ok": true`) {
		t.Errorf("the job page shows no result: %s", u.text("main"))
	}
}

// Bulk cancel over a filter: the confirm step shows the count, and only
// the filtered jobs are cancelled.
func TestBrowserBulkCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(7, "mail", "newsletter", "")
	h.enqueue(3, "mail", "receipt", "")
	u := h.browse(t)
	u.login("acme/admin")
	u.open("/jobs?queue=mail")
	u.do(chromedp.Evaluate[chromedp.Void](`void (document.querySelector('.filters input[name=kind]').value = 'newsletter')`))
	u.click(`.filters button[type=submit]`)
	u.waitFor("the filter in the URL", `location.search.includes('kind=newsletter') && document.querySelectorAll('tr[data-job]').length === 7`)
	u.click(`.bulk button[value=cancel]`)
	u.waitFor("the count", `document.querySelector('#bulk-count').textContent.includes('cancel 7 jobs')`)
	u.click(`#confirm`)
	u.waitFor("done", `document.body.innerText.includes('Cancelled 7 jobs')`)
	counts := map[string]int{}
	page, err := h.st.List(context.Background(), store.ListParams{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range page.Jobs {
		counts[j.Kind+"/"+string(j.State)]++
	}
	if counts["newsletter/cancelled"] != 7 || counts["receipt/available"] != 3 || len(counts) != 2 {
		t.Errorf("after the bulk cancel: %v", counts)
	}
}

// A schedule is triggered from its page, and its run shows.
func TestBrowserTriggerSchedule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.must(201, "acme/admin", "POST", "/v1/schedules", `{"id": "nightly-report", "spec": "0 3 * * *", "zone": "Europe/Paris", "kind": "report", "queue": "reports"}`, nil)
	u := h.browse(t)
	u.login("acme/admin")
	u.open("/schedules")
	u.click(`a[href*="nightly-report"]`)
	u.waitFor("no run yet", `document.body.innerText.includes('None yet')`)
	u.click(`#trigger`)
	u.waitFor("the run", `document.body.innerText.includes('Triggered a run') && document.querySelectorAll('#last-runs tbody tr').length === 1`)
	var stats struct {
		Queues []struct {
			Queue  string
			Counts map[string]int
		}
	}
	h.must(200, "acme/reader", "GET", "/v1/stats", "", &stats)
	if len(stats.Queues) != 1 || stats.Queues[0].Queue != "reports" || stats.Queues[0].Counts["available"] != 1 {
		t.Errorf("after the trigger: %+v", stats)
	}
}

// A reader sees no action, and a POST forged with its own session and
// token is refused and changes nothing.
func TestBrowserReaderSeesNoActions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(2, "mail", "welcome", "")
	h.must(201, "acme/admin", "POST", "/v1/schedules", `{"id": "hourly", "spec": "@hourly", "kind": "k"}`, nil)
	var jobs struct{ Jobs []jobView }
	h.must(200, "acme/reader", "GET", "/v1/jobs", "", &jobs)
	id := jobs.Jobs[0].ID
	u := h.browse(t)
	u.login("acme/reader")
	for _, path := range []string{"/", "/jobs?queue=mail", "/jobs/" + id, "/dead", "/schedules", "/schedule?id=hourly", "/topics", "/workers", "/audit"} {
		u.open(path)
		u.waitFor(path+" loaded", `document.querySelector('main h1')`)
		n := eval[int](u, `document.querySelectorAll('main form[method=post], main form.bulk, main form[data-confirm]').length`)
		if n != 0 {
			t.Errorf("%s shows a reader %d forms or buttons", path, n)
		}
	}
	u.open("/jobs/" + id)
	status := eval[int](u, `(async () => {
		const csrf = document.querySelector('input[name=csrf]').value;
		const r = await fetch(document.body.dataset.base + '/jobs/`+id+`/cancel', {method: 'POST', body: new URLSearchParams({csrf})});
		return r.status;
	})()`, chromedp.EvalAwaitPromise)
	if status != 403 {
		t.Errorf("a reader's forged cancel answered %d, want 403", status)
	}
	var j jobView
	h.must(200, "acme/reader", "GET", "/v1/jobs/"+id, "", &j)
	if j.State != "available" {
		t.Errorf("after a reader's forged cancel the job is %s", j.State)
	}
}

// A tenant's key never sees another tenant's job, however it asks; an
// operator's key does (so the test can fail).
func TestBrowserTenantIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	g := h.seedGlobex()
	h.enqueue(1, "mail", "acme-job", "")
	u := h.browse(t)
	u.login("acme/admin")
	for _, path := range []string{"/", "/jobs", "/jobs?queue=mail", "/dead", "/jobs?tenant=globex", "/jobs/" + g.waiting.ID, "/jobs/" + g.dead.ID, "/topics", "/workers", "/schedules"} {
		u.open(path)
		u.waitFor(path+" loaded", `document.querySelector('main h1')`)
		html := eval[string](u, `document.documentElement.outerHTML`)
		for _, secret := range []string{g.waiting.ID, g.dead.ID, g.running.ID, "secret-worker", `"globex"`, "globex/"} {
			if strings.Contains(html, secret) && !strings.Contains(path, strings.Trim(secret, `"/`)) {
				t.Errorf("%s shows acme's admin %q", path, secret)
			}
		}
	}
	op := h.browse(t)
	op.login("*/admin")
	op.open("/jobs/" + g.waiting.ID)
	op.waitFor("the operator sees globex's job", `document.querySelector('#job-state')`)
}

// At phone width no page scrolls sideways (wide tables scroll within
// themselves), and the dashboard is used with the keyboard alone: the key
// typed into the focused field and Enter log in, and Tab reaches the
// navigation.
func TestBrowserPhoneAndKeyboard(t *testing.T) {
	t.Parallel()
	h := newHarness(t, server.Config{})
	h.enqueue(3, "a-queue-with-a-rather-long-name-for-a-phone", "a_kind_with_a_long_name_too", "")
	h.work("a-queue-with-a-rather-long-name-for-a-phone", 1, "fail")
	h.must(201, "acme/admin", "POST", "/v1/schedules", `{"id": "hourly", "spec": "@hourly", "kind": "k"}`, nil)
	var jobs struct{ Jobs []jobView }
	h.must(200, "acme/reader", "GET", "/v1/jobs", "", &jobs)
	u := h.browse(t)
	u.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	u.open("/login")
	u.waitFor("the key field has the focus", `document.activeElement && document.activeElement.name === 'key'`)
	ctx, cancel := context.WithTimeout(u.ctx, browserWait)
	_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.KeyEvent(h.keys["acme/admin"]+"\r")))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	u.waitFor("the overview after Enter", `document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'`)
	u.do(chromedp.KeyEvent("\t"))
	u.waitFor("Tab on the skip link", `document.activeElement && document.activeElement.classList.contains('skip')`)
	for _, path := range []string{"/", "/jobs", "/jobs/" + jobs.Jobs[0].ID, "/dead", "/schedules", "/schedule?id=hourly", "/topics", "/workers", "/keys", "/audit"} {
		u.open(path)
		u.waitFor(path+" loaded", `document.querySelector('main h1')`)
		// A mobile browser zooms out to fit a page wider than the screen, so
		// the page's width is compared with the phone's, not the window's.
		if w := eval[int](u, `document.documentElement.scrollWidth - 390`); w > 0 {
			t.Errorf("%s is %d px wider than a phone", path, w)
		}
	}
}
