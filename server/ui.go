package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spoolrun/spool/internal/apikey"
	"github.com/spoolrun/spool/internal/wire"
	"github.com/spoolrun/spool/store"
)

// The dashboard: server-rendered pages at / over the same handlers as /v1
// (each page calls the route functions of the API with the session's
// scope), with a little JavaScript that refreshes counts and asks before
// destructive actions. docs/dashboard.md describes it.
//
// A person logs in with an API key: the server checks it as it checks a
// bearer key, then sets a session cookie (HttpOnly, SameSite=Strict,
// Secure over TLS) holding the key's ID, an expiry and an HMAC over both
// and the key's hash. Every request re-reads the key through the key
// cache, so a revoked key's session ends within KeyCacheFor. Every POST
// carries a CSRF token bound to the session and must come from the same
// origin (Sec-Fetch-Site, Origin).

// DashboardConfig configures the dashboard. Zero fields take the defaults
// given.
type DashboardConfig struct {
	// Disable turns the dashboard off: / and its pages answer 404.
	Disable bool
	// SessionSecret signs session cookies and CSRF tokens. Servers that
	// share it accept each other's sessions (behind one load balancer).
	// At least 32 bytes. Default: random per server, so a restart logs
	// everyone out.
	SessionSecret []byte
	// SessionFor is how long a login lasts. Default 12h.
	SessionFor time.Duration
	// StatsFor is how old the queue counts a page shows may be: one read
	// of the store's statistics serves every viewer for that long, since
	// over millions of jobs it takes a while. Default 2s; negative: read
	// them for every page.
	StatsFor time.Duration
	// BasePath is the path prefix the dashboard is served under when the
	// server is mounted below / (such as "/spool" with
	// http.StripPrefix("/spool", srv)). Default: found from each request,
	// which works with http.StripPrefix.
	BasePath string
}

//go:embed ui
var uiFiles embed.FS

// Names of the dashboard's cookies and form fields.
const (
	sessionCookie = "spool_session"
	flashCookie   = "spool_flash"
	csrfField     = "csrf"
)

// contentSecurityPolicy allows the dashboard's own files and nothing else:
// no inline script, no inline style, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// uiRoute is one page or action of the dashboard. Every one is served
// through Server.uiHandle, which authenticates the session, checks perm,
// and checks the CSRF token of every POST; TestDashboardRoutes walks them.
type uiRoute struct {
	method, path string
	perm         perm
	fn           func(p *page) error
}

// page is one request to the dashboard being answered.
type page struct {
	*call
	base  string // the path prefix the dashboard is served under
	csrf  string
	flash string
	route uiRoute
	nav   string // the section the navigation marks, when not the template's
}

// setupDashboard registers the dashboard's routes, unless it is off.
func (s *Server) setupDashboard() error {
	d := &s.cfg.Dashboard
	if d.Disable {
		return nil
	}
	if d.SessionSecret == nil {
		d.SessionSecret = make([]byte, 32)
		rand.Read(d.SessionSecret) //nolint:errcheck // crypto/rand.Read never fails
	}
	if len(d.SessionSecret) < 32 {
		return &store.ValidationError{Field: "Dashboard.SessionSecret", Reason: "is shorter than 32 bytes"}
	}
	if d.SessionFor == 0 {
		d.SessionFor = 12 * time.Hour
	}
	if d.SessionFor < 0 {
		return &store.ValidationError{Field: "Dashboard.SessionFor", Reason: "may not be negative"}
	}
	if d.StatsFor == 0 {
		d.StatsFor = 2 * time.Second
	}
	if d.BasePath != "" && (!strings.HasPrefix(d.BasePath, "/") || strings.HasPrefix(d.BasePath, "//")) {
		return &store.ValidationError{Field: "Dashboard.BasePath", Reason: "must start with a single /"}
	}
	d.BasePath = strings.TrimSuffix(d.BasePath, "/")
	tmpl, err := parseTemplates()
	if err != nil {
		return err
	}
	s.templates = tmpl
	static, err := fs.Sub(uiFiles, "ui/static")
	if err != nil {
		return err
	}
	files := http.FileServerFS(static)
	s.mux.Handle("GET /static/", s.uiHeaders(http.StripPrefix("/static", cacheFor(time.Hour, files))))
	s.uiRoutes = s.uiTable()
	for _, rt := range s.uiRoutes {
		s.mux.Handle(rt.method+" "+rt.path, s.uiHandle(rt))
	}
	return nil
}

// cacheFor lets browsers keep static files for d.
func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// uiHeaders sets the dashboard's security headers.
func (s *Server) uiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		h.ServeHTTP(w, r)
	})
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// DashboardRoute describes one page or action of the dashboard, for tests
// and documentation.
type DashboardRoute struct {
	Method, Path string
	// Permission is "public", "read" or "admin".
	Permission string
}

// DashboardRoutes lists the dashboard's pages and actions; none when it
// is off.
func (s *Server) DashboardRoutes() []DashboardRoute {
	out := make([]DashboardRoute, len(s.uiRoutes))
	for i, rt := range s.uiRoutes {
		out[i] = DashboardRoute{Method: rt.method, Path: rt.path, Permission: rt.perm.String()}
	}
	return out
}

// uiHandle serves one dashboard route: authenticate the session (a page
// without one redirects to the login form), check the permission and, on
// a POST, the origin and CSRF token; then run it with the session's scope.
func (s *Server) uiHandle(rt uiRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		p := &page{call: &call{s: s, w: w, r: r, ctx: ctx, status: http.StatusOK}, base: s.basePath(r), route: rt}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		}
		if r.Method == http.MethodPost && !sameOrigin(r) {
			p.fail(forbidden("the request came from another site"))
			return
		}
		session := ""
		if rt.perm != permPublic {
			sc, cookie, err := s.sessionScope(r)
			if err == nil {
				err = s.allow(sc)
			}
			if err != nil {
				if r.Method == http.MethodGet && store.Code(err) == "unauthorized" {
					p.redirect("/login?next=" + url.QueryEscape(r.URL.RequestURI()))
					return
				}
				p.fail(err)
				return
			}
			if !roleCan(sc.role, rt.perm) {
				p.fail(forbidden("a %s key may not %s", sc.role, rt.perm))
				return
			}
			p.sc, session = sc, cookie
		}
		p.csrf = s.csrfToken(session)
		if r.Method == http.MethodPost && rt.perm != permPublic {
			if err := r.ParseForm(); err != nil {
				p.fail(&store.ValidationError{Field: "form", Reason: "could not be read"})
				return
			}
			if !hmac.Equal([]byte(r.PostFormValue(csrfField)), []byte(p.csrf)) {
				p.fail(forbidden("the form's CSRF token is missing or stale: reload the page and try again"))
				return
			}
		}
		if c, err := r.Cookie(flashCookie); err == nil && r.Method == http.MethodGet {
			if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil {
				p.flash = string(b)
			}
			http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: p.cookiePath(), MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		}
		if err := rt.fn(p); err != nil {
			p.fail(err)
		}
	})
}

// basePath is the prefix the dashboard is served under: the configured
// one, or what http.StripPrefix took off the request's path.
func (s *Server) basePath(r *http.Request) string {
	if s.cfg.Dashboard.BasePath != "" {
		return s.cfg.Dashboard.BasePath
	}
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return ""
	}
	base, ok := strings.CutSuffix(u.EscapedPath(), r.URL.EscapedPath())
	if !ok || !strings.HasPrefix(base, "/") || strings.HasPrefix(base, "//") {
		return ""
	}
	return base
}

// sameOrigin reports whether a POST comes from the dashboard's own pages:
// browsers say so in Sec-Fetch-Site and Origin. A request with neither
// (not from a browser) passes; the CSRF token still applies.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// sessionMAC signs a session: its key's ID, its end (Unix seconds) and the
// key's hash, so a cookie whose parts are changed, or that outlives its
// key's secret, is no session.
func (s *Server) sessionMAC(keyID string, exp int64, keyHash []byte) string {
	m := hmac.New(sha256.New, s.cfg.Dashboard.SessionSecret)
	fmt.Fprintf(m, "session\x00%s\x00%d\x00%x", keyID, exp, keyHash)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// newSession returns the cookie value of a session for key k.
func (s *Server) newSession(k *store.APIKey) (string, time.Time) {
	exp := s.cfg.Clock.Now().Add(s.cfg.Dashboard.SessionFor)
	if !k.ExpiresAt.IsZero() && k.ExpiresAt.Before(exp) {
		exp = k.ExpiresAt
	}
	return k.ID + "." + strconv.FormatInt(exp.Unix(), 10) + "." + s.sessionMAC(k.ID, exp.Unix(), k.Hash), exp
}

// errNoSession is a page asked for without a usable session.
var errNoSession = fmt.Errorf("%w: log in with an API key", store.ErrUnauthorized)

// sessionScope returns the scope of the request's session and its cookie
// value: every tenant, as an admin, on an insecure server; else the
// session's key's, read again through the key cache.
func (s *Server) sessionScope(r *http.Request) (*scope, string, error) {
	if s.cfg.Insecure {
		return &scope{tenant: store.AllTenants, role: store.RoleAdmin}, "", nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, "", errNoSession
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 {
		return nil, "", errNoSession
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || s.cfg.Clock.Now().Unix() >= exp {
		return nil, "", errNoSession
	}
	if !validKeyID(parts[0]) {
		return nil, "", errNoSession
	}
	k, err := s.lookupKey(r, parts[0])
	if err != nil {
		return nil, "", err
	}
	if k == nil || !hmac.Equal([]byte(parts[2]), []byte(s.sessionMAC(k.ID, exp, k.Hash))) {
		return nil, "", errNoSession
	}
	if !k.Usable(s.cfg.Clock.Now()) {
		return nil, "", fmt.Errorf("%w: the key %s is revoked or expired: log in again", store.ErrUnauthorized, k.ID)
	}
	return &scope{keyID: k.ID, tenant: k.Tenant, role: k.Role, queues: k.Queues}, c.Value, nil
}

// csrfToken is the CSRF token of a session (of an insecure server's
// dashboard, with no session, a per-server one): an HMAC of the session,
// so a token is good for its session only.
func (s *Server) csrfToken(session string) string {
	m := hmac.New(sha256.New, s.cfg.Dashboard.SessionSecret)
	fmt.Fprintf(m, "csrf\x00%s", session)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// cookiePath is the path of the dashboard's cookies: its prefix.
func (p *page) cookiePath() string { return p.base + "/" }

// secure reports whether the request came over TLS (directly or, as a
// proxy says, in front of the server).
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// redirect answers 303 See Other to path under the dashboard's prefix.
func (p *page) redirect(path string) {
	http.Redirect(p.w, p.r, p.base+path, http.StatusSeeOther)
}

// done redirects to path with a message shown there once.
func (p *page) done(path, msg string) error {
	http.SetCookie(p.w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(msg)), Path: p.cookiePath(),
		MaxAge: 60, HttpOnly: true, Secure: secure(p.r), SameSite: http.SameSiteStrictMode})
	p.redirect(path)
	return nil
}

// fail answers an error as a page with its catalog status and message,
// which never carries a stack or SQL.
func (p *page) fail(err error) {
	if p.r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = &store.LimitError{Field: "form size", Limit: int(mbe.Limit), Got: int(mbe.Limit) + 1}
	}
	status := wire.Status(err)
	if status >= 500 && status != http.StatusNotImplemented {
		p.s.cfg.Logger.Error("spool serve: dashboard request failed", "method", p.r.Method, "path", p.r.URL.Path, "err", err)
	}
	e := wire.ErrorOf(err)
	p.status = status
	if rerr := p.render("error.html", "Error", map[string]any{"Code": e.Code, "Message": e.Message, "Status": status}); rerr != nil {
		http.Error(p.w, e.Message, status)
	}
}

// canAct reports whether the session's key may take admin actions.
func (p *page) canAct() bool { return p.sc != nil && roleCan(p.sc.role, permAdmin) }

// layout is what every page's layout shows besides the page's data.
type layout struct {
	Base, Title, Nav, CSRF, Flash string
	Insecure, CanAct, LoggedIn    bool
	HasKeys                       bool // the store keeps API keys
	KeyID, Tenant, Role           string
	Data                          any
}

// render answers the page's template with data.
func (p *page) render(name, title string, data any) error {
	t, ok := p.s.templates[name]
	if !ok {
		return fmt.Errorf("spool: no template %s", name)
	}
	l := layout{Base: p.base, Title: title, Nav: cmp.Or(p.nav, name), CSRF: p.csrf, Flash: p.flash, Insecure: p.s.cfg.Insecure, CanAct: p.canAct(), HasKeys: p.s.keys != nil, Data: data}
	if p.sc != nil {
		l.LoggedIn, l.KeyID, l.Tenant, l.Role = true, p.sc.keyID, p.sc.tenant, p.sc.role
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", l); err != nil {
		return err
	}
	p.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	p.w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	p.w.WriteHeader(p.status)
	_, _ = p.w.Write(buf.Bytes())
	return nil
}

// parseTemplates parses every page with the layout.
func parseTemplates() (map[string]*template.Template, error) {
	pages, err := fs.Glob(uiFiles, "ui/templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, path := range pages {
		name := path[strings.LastIndexByte(path, '/')+1:]
		if name == "layout.html" {
			continue
		}
		t, err := template.New(name).Funcs(uiFuncs).ParseFS(uiFiles, "ui/templates/layout.html", path)
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// loginForm is GET /login.
func (p *page) loginForm() error {
	if p.s.cfg.Insecure {
		p.redirect("/")
		return nil
	}
	return p.render("login.html", "Log in", map[string]any{"Next": safeNext(p.query("next"))})
}

// safeNext is where to go after logging in: a path of the dashboard, never
// another site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// login is POST /login: check the key and start a session.
func (p *page) login() error {
	if p.s.cfg.Insecure {
		p.redirect("/")
		return nil
	}
	if err := p.r.ParseForm(); err != nil {
		return &store.ValidationError{Field: "form", Reason: "could not be read"}
	}
	token := strings.TrimSpace(p.r.PostFormValue("key"))
	next := safeNext(p.r.PostFormValue("next"))
	refuse := func(msg string) error {
		p.status = http.StatusUnauthorized
		return p.render("login.html", "Log in", map[string]any{"Next": next, "Error": msg})
	}
	id, secret, err := apikey.Parse(token)
	if err != nil {
		return refuse("That is not an API key: a key looks like spool_<id>_<secret>.")
	}
	k, err := p.s.lookupKey(p.r, id)
	if err != nil {
		return err
	}
	if !apikey.Verify(k, secret) {
		p.s.cfg.Logger.Warn("spool serve: dashboard refused an unknown key", "key", id, "remote", p.r.RemoteAddr)
		return refuse("Unknown key.")
	}
	if !k.Usable(p.s.cfg.Clock.Now()) {
		return refuse("This key is revoked or expired.")
	}
	value, exp := p.s.newSession(k)
	http.SetCookie(p.w, &http.Cookie{Name: sessionCookie, Value: value, Path: p.cookiePath(), Expires: exp,
		HttpOnly: true, Secure: secure(p.r), SameSite: http.SameSiteStrictMode})
	p.sc = &scope{keyID: k.ID, tenant: k.Tenant, role: k.Role, queues: k.Queues}
	p.record("dashboard.login", k.ID, 1, nil)
	p.redirect(next)
	return nil
}

// logout is POST /logout: end the session (the cookie; the key stays).
func (p *page) logout() error {
	http.SetCookie(p.w, &http.Cookie{Name: sessionCookie, Value: "", Path: p.cookiePath(), MaxAge: -1,
		HttpOnly: true, Secure: secure(p.r), SameSite: http.SameSiteStrictMode})
	p.redirect("/login")
	return nil
}

// validKeyID reports whether id may be a key's ID: letters and digits.
func validKeyID(id string) bool {
	if id == "" || len(id) > store.MaxNameLen {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
