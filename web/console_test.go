package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

const (
	consoleEmail    = "ops@acme.test"
	consolePassword = "correct horse battery"
	wantCSP         = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

// consoleEnv is the real server (web.New) on a temporary SQLite store with
// a real reconciler in preview mode, and one organization with one user.
type consoleEnv struct {
	srv *web.Server
	db  *store.DB
	ts  *httptest.Server
	org store.Organization
}

func newConsoleEnv(tb testing.TB, secure bool) *consoleEnv {
	tb.Helper()
	return newConsoleEnvWith(tb, func(c *web.Config) { c.SecureCookies = secure })
}

// newConsoleEnvWith is newConsoleEnv with the server's configuration
// changed by mod.
func newConsoleEnvWith(tb testing.TB, mod func(*web.Config)) *consoleEnv {
	tb.Helper()
	return newConsoleEnvRun(tb, true, mod)
}

// newConsoleEnvRun is newConsoleEnvWith, with the reconciler left idle
// when run is false (its reads of the store would mix with the requests'
// when a test counts them).
func newConsoleEnvRun(tb testing.TB, run bool, mod func(*web.Config)) *consoleEnv {
	tb.Helper()
	env := startConsole(tb, testdb.DSN(tb), run, mod)
	ctx := context.Background()
	org, err := env.db.EnsureOrganization(ctx, "Acme Hosting")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := env.db.CreateUser(ctx, org.ID, consoleEmail, consolePassword); err != nil {
		tb.Fatal(err)
	}
	env.org = org
	return env
}

// startConsole starts a console (store, reconciler, server) on the
// database dsn, as one `rampart serve` process does.
func startConsole(tb testing.TB, dsn string, run bool, mod func(*web.Config)) *consoleEnv {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn, []string{"fr-par-1", "nl-ams-1"})
	if err != nil {
		tb.Fatal(err)
	}
	backend, err := enforcer.Open(enforcer.ModePreview)
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	rec := enforcer.NewReconciler(db, backend, logger)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	if run {
		go func() { rec.Run(rctx); close(done) }()
	} else {
		close(done)
	}
	cfg := web.Config{Store: db, Enforcer: rec, Logger: logger}
	mod(&cfg)
	srv, err := web.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config = srv.HTTPServer()
	ts.Start()
	tb.Cleanup(func() { ts.Close(); cancel(); <-done; db.Close() })
	return &consoleEnv{db: db, ts: ts, srv: srv}
}

// browser is a cookie-keeping client that does not follow redirects, so
// that tests see each 303.
type browser struct {
	tb    testing.TB
	env   *consoleEnv
	c     *http.Client
	token string // the CSRF token of the last page, "" when unknown
}

func (env *consoleEnv) browser(tb testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{tb: tb, env: env, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one answer, parsed.
type page struct {
	status int
	header http.Header
	body   string
	doc    *goquery.Document
}

func (b *browser) do(req *http.Request) page {
	b.tb.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(string(raw)))
	if err != nil {
		b.tb.Fatal(err)
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		b.token = "" // a new session: a new token
	}
	if t, ok := doc.Find(`meta[name=csrf-token]`).Attr("content"); ok {
		b.token = t
	} else if t, ok := doc.Find(`input[name=_csrf]`).First().Attr("value"); ok {
		b.token = t
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw), doc: doc}
}

func (b *browser) get(path string, hx bool) page {
	b.tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.env.ts.URL+path, nil)
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	return b.do(req)
}

// csrf returns the token the console hands out in its pages, bound to
// the session; it fetches a page when it does not know it.
func (b *browser) csrf() string {
	if b.token == "" {
		if p := b.get("/login", false); p.status == http.StatusSeeOther {
			b.get("/security-groups", false) // signed in
		}
	}
	return b.token
}

// post sends a form with the CSRF token (unless noCSRF), as htmx if hx.
func (b *browser) post(path string, form url.Values, hx, noCSRF bool) page {
	b.tb.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !noCSRF {
		form.Set("_csrf", b.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, b.env.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	return b.do(req)
}

func (env *consoleEnv) signedIn(tb testing.TB) *browser {
	tb.Helper()
	b := env.browser(tb)
	b.get("/login", false)
	p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {consolePassword}}, false, false)
	if p.status != http.StatusSeeOther {
		tb.Fatalf("sign in: status = %d, want 303: %s", p.status, p.body)
	}
	return b
}

func (env *consoleEnv) mustGroup(tb testing.TB, org, zone string, in store.GroupInput) store.Group {
	tb.Helper()
	g, err := env.db.CreateGroup(context.Background(), org, zone, in)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

func (env *consoleEnv) mustServer(tb testing.TB, zone string, in store.ServerInput) store.Server {
	tb.Helper()
	s, err := env.db.CreateServer(context.Background(), env.org.ID, zone, in)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (env *consoleEnv) mustRule(tb testing.TB, g store.Group, dir store.Direction, port int) store.Rule {
	tb.Helper()
	r, err := env.db.CreateRule(context.Background(), env.org.ID, g.Zone, g.ID, store.RuleInput{
		Direction: dir, Protocol: store.TCP, Action: store.Accept, IPRange: "0.0.0.0/0", DestPortFrom: &port})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// fieldError returns the error shown beside the control with id, i.e.
// inside the same .field/.check/fieldset container.
func fieldError(p page, id string) string {
	ctrl := p.doc.Find("#" + id)
	if ctrl.Length() == 0 {
		return ""
	}
	box := ctrl.Closest(".field, .check, fieldset, td")
	return strings.TrimSpace(box.Find("p.error").Text())
}

func groupPath(g store.Group, suffix string) string {
	return "/security-groups/" + g.ID + suffix + "?zone=" + g.Zone
}

func wantStatus(tb testing.TB, p page, want int) {
	tb.Helper()
	if p.status != want {
		body := p.body
		if len(body) > 600 {
			body = body[:600]
		}
		tb.Fatalf("status = %d, want %d\n%s", p.status, want, body)
	}
}

// TestConsoleSignInRequired: every console page and form sends a
// signed-out person to the sign-in page; htmx gets HX-Redirect.
func TestConsoleSignInRequired(t *testing.T) {
	env := newConsoleEnv(t, false)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	b := env.browser(t)
	for _, path := range []string{"/security-groups", "/security-groups/new", groupPath(g, ""), groupPath(g, "/state"),
		"/servers", "/tokens", groupPath(g, "/rules")} {
		t.Run("GET "+path, func(t *testing.T) {
			p := b.get(path, false)
			wantStatus(t, p, http.StatusSeeOther)
			if got := p.header.Get("Location"); !strings.HasPrefix(got, "/login?next=") {
				t.Fatalf("Location = %q, want /login?next=…", got)
			}
			hx := b.get(path, true)
			if got := hx.header.Get("HX-Redirect"); got != "/login" {
				t.Fatalf("HX-Redirect = %q, want /login", got)
			}
		})
	}
	for _, path := range []string{"/security-groups/new", groupPath(g, "/rules"), groupPath(g, "/delete"), "/tokens"} {
		t.Run("POST "+path, func(t *testing.T) {
			p := b.post(path, url.Values{"name": {"x"}}, false, false)
			wantStatus(t, p, http.StatusSeeOther)
			if got := p.header.Get("Location"); got != "/login" {
				t.Fatalf("Location = %q, want /login", got)
			}
		})
	}
	if _, err := env.db.Group(context.Background(), env.org.ID, "fr-par-1", g.ID); err != nil {
		t.Fatalf("group changed by signed-out requests: %v", err)
	}
	if p := b.get("/", false); p.header.Get("Location") != "/security-groups" {
		t.Fatalf("GET / Location = %q", p.header.Get("Location"))
	}
}

// TestConsoleSignIn covers the sign-in form, session rotation, the cookie
// flags and sign-out.
func TestConsoleSignIn(t *testing.T) {
	env := newConsoleEnv(t, false)
	cases := []struct {
		name       string
		email, pw  string
		status     int
		errorField string // id of the control that shows an error
		message    bool   // a form-level message
	}{
		{"missing email", "", consolePassword, http.StatusUnprocessableEntity, "email", false},
		{"missing password", consoleEmail, "", http.StatusUnprocessableEntity, "password", false},
		{"wrong password", consoleEmail, "wrong password", http.StatusUnauthorized, "", true},
		{"unknown user", "nobody@acme.test", consolePassword, http.StatusUnauthorized, "", true},
		{"success", consoleEmail, consolePassword, http.StatusSeeOther, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := env.browser(t)
			login := b.get("/login?next=/tokens", false)
			wantStatus(t, login, http.StatusOK)
			if login.doc.Find(`label[for=email]`).Length() != 1 || login.doc.Find(`label[for=password]`).Length() != 1 {
				t.Fatal("sign-in controls without labels")
			}
			p := b.post("/login", url.Values{"email": {tc.email}, "password": {tc.pw}, "next": {"/tokens"}}, false, false)
			wantStatus(t, p, tc.status)
			if tc.errorField != "" && fieldError(p, tc.errorField) == "" {
				t.Fatalf("no error beside %s", tc.errorField)
			}
			if tc.message && p.doc.Find(`[data-testid=form-message]`).Length() != 1 {
				t.Fatal("no form message")
			}
			if tc.status != http.StatusSeeOther {
				if got, _ := p.doc.Find("#email").Attr("value"); got != tc.email {
					t.Fatalf("email kept = %q, want %q", got, tc.email)
				}
				return
			}
			if got := p.header.Get("Location"); got != "/tokens" {
				t.Fatalf("Location = %q, want /tokens (next)", got)
			}
			var session *http.Cookie
			for _, c := range (&http.Response{Header: p.header}).Cookies() {
				if c.Name == "rampart_session" {
					session = c
				}
			}
			if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure {
				t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Lax, not Secure", session)
			}
			// Signing in again rotates the token; the old one is dead.
			again := b.post("/login", url.Values{"email": {tc.email}, "password": {tc.pw}}, false, false)
			wantStatus(t, again, http.StatusSeeOther)
			var renewed string
			for _, c := range (&http.Response{Header: again.header}).Cookies() {
				if c.Name == "rampart_session" {
					renewed = c.Value
				}
			}
			if renewed == "" || renewed == session.Value {
				t.Fatalf("session token not renewed on sign-in (%q then %q)", session.Value, renewed)
			}
			old := env.browser(t)
			u, _ := url.Parse(env.ts.URL)
			old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "rampart_session", Value: session.Value}})
			wantStatus(t, old.get("/security-groups", false), http.StatusSeeOther)
			wantStatus(t, b.get("/security-groups", false), http.StatusOK)
			// Sign out.
			out := b.post("/logout", nil, false, false)
			wantStatus(t, out, http.StatusSeeOther)
			wantStatus(t, b.get("/security-groups", false), http.StatusSeeOther)
		})
	}
	t.Run("secure cookies", func(t *testing.T) {
		env := newConsoleEnv(t, true)
		b := env.browser(t)
		b.get("/login", false)
		p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {consolePassword}}, false, false)
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == "rampart_session" && !c.Secure {
				t.Fatal("session cookie not Secure with SecureCookies")
			}
		}
	})
}

// TestConsoleCSRF: every state-changing console request without the token
// is refused with 403 and changes nothing.
func TestConsoleCSRF(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	r := env.mustRule(t, g, store.Inbound, 22)
	before, _ := env.db.Generation(context.Background())
	for _, path := range []string{
		"/security-groups/new", groupPath(g, ""), groupPath(g, "/default"), groupPath(g, "/delete"),
		groupPath(g, "/servers"), groupPath(g, "/rules"), groupPath(g, "/rules/"+r.ID),
		groupPath(g, "/rules/"+r.ID+"/move"), groupPath(g, "/rules/"+r.ID+"/delete"), groupPath(g, "/evaluate"),
		"/servers", "/tokens", "/logout", "/login",
	} {
		t.Run(path, func(t *testing.T) {
			p := b.post(path, url.Values{"name": {"evil"}, "direction": {"up"}}, false, true)
			wantStatus(t, p, http.StatusForbidden)
			// A wrong token is refused too, and htmx gets an inline message.
			form := url.Values{"_csrf": {"not-the-token"}}
			hx := b.post(path, form, true, true)
			wantStatus(t, hx, http.StatusForbidden)
			if hx.doc.Find(".alert-error").Length() != 1 || hx.header.Get("HX-Retarget") != "#flash" {
				t.Fatalf("htmx refusal not shown inline: %s", hx.body)
			}
		})
	}
	if after, _ := env.db.Generation(context.Background()); after != before {
		t.Fatalf("generation moved from %d to %d: a refused request changed something", before, after)
	}
	// The header htmx sends (hx-headers on <body>) is accepted.
	p := b.get("/security-groups", false)
	hdr, _ := p.doc.Find("body").Attr("hx-headers")
	if !strings.Contains(hdr, b.csrf()) {
		t.Fatalf("body hx-headers = %q, want the CSRF token", hdr)
	}
	req, _ := http.NewRequest(http.MethodPost, env.ts.URL+groupPath(g, "/rules/"+r.ID+"/delete"), nil)
	req.Header.Set("X-CSRF-Token", b.csrf())
	req.Header.Set("HX-Request", "true")
	wantStatus(t, b.do(req), http.StatusOK)
}

// TestConsolePages: every page renders in the layout, with labels on every
// control, no inline script or style, and the security headers.
func TestConsolePages(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", Description: "front"})
	s := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1", SecurityGroupID: g.ID})
	env.mustRule(t, g, store.Inbound, 22)
	env.mustRule(t, g, store.Outbound, 53)
	cases := []struct {
		path, section, h1 string
		testid            string
	}{
		{"/security-groups", "Security groups", "Security groups", "groups"},
		{"/security-groups/new", "Security groups", "Create a security group", "create-group"},
		{groupPath(g, ""), "Security groups", "web", "overview-form"},
		{groupPath(g, "/rules/"+"x"+"/edit"), "", "Not found", ""},
		{"/servers", "Servers", "Servers", "servers"},
		{"/servers/" + s.ID, "Servers", "vm-1", "server-form"},
		{"/tokens", "API tokens", "API tokens", "tokens"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			p := b.get(tc.path, false)
			if tc.testid == "" {
				wantStatus(t, p, http.StatusNotFound)
			} else {
				wantStatus(t, p, http.StatusOK)
			}
			for k, want := range map[string]string{"Content-Security-Policy": wantCSP,
				"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"} {
				if got := p.header.Get(k); got != want {
					t.Fatalf("%s = %q, want %q", k, got, want)
				}
			}
			if got := strings.TrimSpace(p.doc.Find("h1").First().Contents().First().Text()); got != tc.h1 {
				t.Fatalf("h1 = %q, want %q", got, tc.h1)
			}
			if tc.section != "" {
				if got := p.doc.Find(`nav a[aria-current=page]`).Text(); got != tc.section {
					t.Fatalf("current nav = %q, want %q", got, tc.section)
				}
			}
			if got := p.doc.Find(`[data-testid=org-name]`).Text(); got != "Acme Hosting" {
				t.Fatalf("organization = %q", got)
			}
			if !strings.Contains(p.doc.Find(`[data-testid=mode-banner]`).Text(), "Preview: not enforced") {
				t.Fatal("no preview banner")
			}
			if p.doc.Find(`#zone-select option[selected]`).Text() != "fr-par-1" {
				t.Fatal("zone selector does not show the zone")
			}
			if tc.testid != "" && p.doc.Find(`[data-testid=`+tc.testid+`]`).Length() == 0 {
				t.Fatalf("no [data-testid=%s]", tc.testid)
			}
			if n := p.doc.Find("[style]").Length(); n > 0 {
				t.Fatalf("%d elements with a style attribute", n)
			}
			if n := p.doc.Find("script:not([src]), style").Length(); n > 0 {
				t.Fatalf("%d inline scripts or styles", n)
			}
			p.doc.Find("input, select, textarea").Each(func(_ int, s *goquery.Selection) {
				if typ, _ := s.Attr("type"); typ == "hidden" {
					return
				}
				id, _ := s.Attr("id")
				if _, ok := s.Attr("aria-label"); ok {
					return
				}
				if id == "" || p.doc.Find(`label[for="`+id+`"]`).Length() == 0 {
					name, _ := s.Attr("name")
					t.Errorf("control %q (id %q) has no label", name, id)
				}
			})
		})
	}
	t.Run("zone remembered", func(t *testing.T) {
		p := b.get("/security-groups?zone=nl-ams-1", false)
		wantStatus(t, p, http.StatusOK)
		p = b.get("/security-groups", false)
		if p.doc.Find(`#zone-select option[selected]`).Text() != "nl-ams-1" {
			t.Fatal("zone not remembered in the session")
		}
		if p.doc.Find(`[data-group="`+g.ID+`"]`).Length() != 0 {
			t.Fatal("a fr-par-1 group listed in nl-ams-1")
		}
		b.get("/security-groups?zone=fr-par-1", false)
	})
	t.Run("static", func(t *testing.T) {
		for path, want := range map[string]int{"/static/vendor/htmx.min.js": 200, "/static/css/console.css": 200,
			"/static/js/console.js": 200, "/static/static.go": 404, "/static/css/": 404} {
			p := b.get(path, false)
			if p.status != want {
				t.Fatalf("GET %s = %d, want %d", path, p.status, want)
			}
			if want == 200 && !strings.Contains(p.header.Get("Cache-Control"), "max-age=31536000") {
				t.Fatalf("GET %s Cache-Control = %q", path, p.header.Get("Cache-Control"))
			}
		}
	})
}

// TestConsoleGroupList: the list shows each group's facts, the default
// badge and a self-polling sync state.
func TestConsoleGroupList(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	def, _ := env.db.DefaultGroup(context.Background(), env.org.ID, "fr-par-1")
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", Description: "front ends", Stateful: false,
		InboundDefaultPolicy: store.Drop})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1", SecurityGroupID: g.ID})
	p := b.get("/security-groups", false)
	wantStatus(t, p, http.StatusOK)
	row := p.doc.Find(`tr[data-group="` + g.ID + `"]`)
	cells := row.Find("td")
	want := []string{"web", "front ends", "fr-par-1", "Stateless", "Drop", "Accept", "1"}
	for i, w := range want {
		if got := strings.TrimSpace(cells.Eq(i).Text()); got != w {
			t.Errorf("cell %d = %q, want %q", i, got, w)
		}
	}
	if row.Find(`[data-testid=default-badge]`).Length() != 0 ||
		p.doc.Find(`tr[data-group="`+def.ID+`"] [data-testid=default-badge]`).Length() != 1 {
		t.Fatal("organization-default badge on the wrong group")
	}
	badge := row.Find(`#state-` + g.ID)
	if badge.Length() != 1 {
		t.Fatal("no state badge in the group's row")
	}
	if trig, ok := badge.Attr("hx-trigger"); ok {
		t.Fatalf("a list badge polls itself (hx-trigger %q): a request per group every 2 s", trig)
	}
	// The partial the badge polls on a group's page; the reconciler
	// applies the group soon.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := b.get(groupPath(g, "/state"), true)
		wantStatus(t, s, http.StatusOK)
		if st, _ := s.doc.Find(`#state-` + g.ID).Attr("data-state"); st == "available" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state never available: %s", s.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleGroupStatesPoll: the list refreshes its badges with one
// request every 2 s, which answers the badges that may be out of date
// (groups changed since the list was read, groups not in sync at the last
// poll or now) and the next poll's parameters; an unchanged list in sync
// gets no badge.
func TestConsoleGroupStatesPoll(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	a := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "a"})
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "b"})
	poll := func(q url.Values) (page, url.Values) {
		t.Helper()
		p := b.get("/security-groups/states?"+q.Encode(), true)
		wantStatus(t, p, http.StatusOK)
		next := url.Values{}
		p.doc.Find(`#group-states-params[hx-swap-oob] input`).Each(func(_ int, in *goquery.Selection) {
			name, _ := in.Attr("name")
			v, _ := in.Attr("value")
			next.Set(name, v)
		})
		if next.Get("zone") != "fr-par-1" || next.Get("since") == "" {
			t.Fatalf("next poll's parameters: %v in %s", next, p.body)
		}
		return p, next
	}
	shown := func(p page) map[string]string {
		out := map[string]string{}
		p.doc.Find(`[id^="state-"][hx-swap-oob]`).Each(func(_ int, s *goquery.Selection) {
			id, _ := s.Attr("id")
			st, _ := s.Attr("data-state")
			out[strings.TrimPrefix(id, "state-")] = st
		})
		return out
	}
	list := b.get("/security-groups", false)
	form := list.doc.Find(`form#group-states`)
	if trig, _ := form.Attr("hx-trigger"); trig != "every 2s" || form.AttrOr("hx-get", "") != "/security-groups/states" {
		t.Fatalf("the list's poll: %s", list.body)
	}
	q := url.Values{}
	form.Find("input").Each(func(_ int, in *goquery.Selection) { q.Set(in.AttrOr("name", ""), in.AttrOr("value", "")) })
	if want := strconv.FormatInt(max(a.Generation, g.Generation), 10); q.Get("since") != want {
		t.Fatalf("since = %q, want %s (the newest generation shown)", q.Get("since"), want)
	}
	// Until both are in sync, each poll sends the badges not in sync.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, next := poll(q)
		q = next
		st := shown(p)
		if len(st) == 0 && q.Get("pending") == "" {
			break
		}
		for id := range st {
			if id != a.ID && id != g.ID {
				t.Fatalf("a badge of another group: %s", id)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never in sync: %s", p.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// In sync and unchanged: nothing.
	if p, next := poll(q); len(shown(p)) != 0 || next.Get("since") != q.Get("since") {
		t.Fatalf("an unchanged list in sync got %v, next %v", shown(p), next)
	}
	// A change to one group: its badge, and only its.
	name := "b2"
	if _, err := env.db.UpdateGroup(ctx, env.org.ID, "fr-par-1", g.ID, store.GroupPatch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	p, _ := poll(q)
	st := shown(p)
	if _, ok := st[g.ID]; !ok || len(st) != 1 {
		t.Fatalf("after a change to %s the poll sent %v", g.ID, st)
	}
	// A group the poll last saw not in sync is sent again once it is.
	q.Set("pending", a.ID)
	if p, _ := poll(q); shown(p)[a.ID] != "available" {
		t.Fatalf("a pending group's badge: %v", shown(p))
	}
	q.Set("pending", "*")
	if p, _ := poll(q); len(shown(p)) < 2 {
		t.Fatalf("pending * sends every badge: %v", shown(p))
	}
	q.Set("since", "x")
	if p := b.get("/security-groups/states?"+q.Encode(), true); p.status != http.StatusBadRequest {
		t.Fatalf("since=x: %d", p.status)
	}
}

// TestConsoleCreateGroup covers the create form: recommended defaults,
// success, and each error beside its field with the values kept.
func TestConsoleCreateGroup(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	vm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1"})
	bm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "bm-1", Interface: "eno2", Type: store.BareMetal,
		SecurityGroupID: env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "bare"}).ID})

	p := b.get("/security-groups/new", false)
	wantStatus(t, p, http.StatusOK)
	if v, _ := p.doc.Find(`#g-inbound option[selected]`).Attr("value"); v != "drop" {
		t.Fatalf("inbound preselected = %q, want drop", v)
	}
	if v, _ := p.doc.Find(`#g-outbound option[selected]`).Attr("value"); v != "accept" {
		t.Fatalf("outbound preselected = %q, want accept", v)
	}
	if _, ok := p.doc.Find("#g-stateful").Attr("checked"); !ok {
		t.Fatal("#g-stateful not checked by default")
	}
	// SMTP blocked by default: "Enable SMTP" is not checked.
	if _, ok := p.doc.Find("#g-smtp").Attr("checked"); ok {
		t.Fatal("#g-smtp (Enable SMTP) checked by default")
	}
	if !strings.Contains(p.doc.Find(".recommend").Text(), "Recommended: drop incoming traffic") ||
		!strings.Contains(p.doc.Find("#g-smtp-hint").Text(), "Recommended: block outbound SMTP") {
		t.Fatal("recommendations missing")
	}
	if p.doc.Find(`#g-server-`+vm.ID).Length() != 1 {
		t.Fatal("zone's servers not offered")
	}

	valid := func() url.Values {
		return url.Values{"name": {"web"}, "description": {"front ends"}, "zone": {"fr-par-1"},
			"inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"},
			"stateful": {"on"}, "servers": {vm.ID}}
	}
	cases := []struct {
		name   string
		change func(url.Values)
		status int
		field  string // id of the control with the error
	}{
		{"empty name", func(v url.Values) { v.Set("name", "  ") }, 422, "g-name"},
		{"long name", func(v url.Values) { v.Set("name", strings.Repeat("n", 129)) }, 422, "g-name"},
		{"long description", func(v url.Values) { v.Set("description", strings.Repeat("d", 256)) }, 422, "g-description"},
		{"bad zone", func(v url.Values) { v.Set("zone", "mars-1") }, 422, "g-zone"},
		{"bad inbound policy", func(v url.Values) { v.Set("inbound_default_policy", "reject") }, 422, "g-inbound"},
		{"bad outbound policy", func(v url.Values) { v.Set("outbound_default_policy", "allow") }, 422, "g-outbound"},
		{"stateful on BareMetal", func(v url.Values) { v.Set("servers", bm.ID) }, 422, "server-choices"},
		{"server of another zone", func(v url.Values) { v.Set("zone", "nl-ams-1") }, 422, "server-choices"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := valid()
			tc.change(form)
			before, _ := env.db.Generation(context.Background())
			p := b.post("/security-groups/new", form, false, false)
			wantStatus(t, p, tc.status)
			msg := fieldError(p, tc.field)
			if tc.field == "server-choices" {
				msg = strings.TrimSpace(p.doc.Find("#server-choices p.error").Text())
			}
			if msg == "" {
				t.Fatalf("no error beside #%s", tc.field)
			}
			if p.doc.Find("p.error").Length() != 1 {
				t.Fatalf("%d errors shown, want 1", p.doc.Find("p.error").Length())
			}
			if got, _ := p.doc.Find("#g-description").Html(); got != form.Get("description") {
				t.Fatalf("description not kept: %q", got)
			}
			if after, _ := env.db.Generation(context.Background()); after != before {
				t.Fatal("a refused create changed the store")
			}
		})
	}
	t.Run("success", func(t *testing.T) {
		p := b.post("/security-groups/new", valid(), false, false)
		wantStatus(t, p, http.StatusSeeOther)
		groups, _, _ := env.db.Groups(context.Background(), env.org.ID, "fr-par-1", store.GroupFilter{Name: "web"})
		if len(groups) != 1 {
			t.Fatalf("%d groups named web", len(groups))
		}
		g := groups[0]
		if loc := p.header.Get("Location"); loc != "/security-groups/"+g.ID+"?zone=fr-par-1" {
			t.Fatalf("Location = %q", loc)
		}
		if !g.Stateful || g.InboundDefaultPolicy != store.Drop || g.OutboundDefaultPolicy != store.Accept ||
			g.SMTPEnabled || len(g.Servers) != 1 || g.Servers[0].ID != vm.ID || g.Description != "front ends" {
			t.Fatalf("created %+v", g)
		}
		detail := b.get(p.header.Get("Location"), false)
		if !strings.Contains(detail.doc.Find("#flash").Text(), "created") {
			t.Fatal("no flash after create")
		}
	})
}

// TestConsoleOverview covers the Overview section: edits, Enable SMTP,
// the BareMetal refusal, default and delete.
func TestConsoleOverview(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "bare"})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "bm-1", Interface: "eno2", Type: store.BareMetal, SecurityGroupID: g.ID})
	valid := func() url.Values {
		return url.Values{"name": {"bare metal"}, "description": {"racks"}, "inbound_default_policy": {"drop"},
			"outbound_default_policy": {"accept"}}
	}
	cases := []struct {
		name   string
		change func(url.Values)
		status int
		field  string
	}{
		{"empty name", func(v url.Values) { v.Set("name", "") }, 422, "o-name"},
		{"long description", func(v url.Values) { v.Set("description", strings.Repeat("d", 300)) }, 422, "o-description"},
		{"bad policy", func(v url.Values) { v.Set("outbound_default_policy", "maybe") }, 422, "o-outbound"},
		{"stateful with a BareMetal server", func(v url.Values) { v.Set("stateful", "on") }, 422, "o-stateful"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := valid()
			tc.change(form)
			p := b.post(groupPath(g, ""), form, false, false)
			wantStatus(t, p, tc.status)
			if fieldError(p, tc.field) == "" {
				t.Fatalf("no error beside #%s", tc.field)
			}
			if got, _ := p.doc.Find("#o-name").Attr("value"); got != form.Get("name") {
				t.Fatalf("name not kept: %q", got)
			}
			now, _ := env.db.Group(ctx, env.org.ID, "fr-par-1", g.ID)
			if now.Name != "bare" || now.Stateful {
				t.Fatalf("refused change written: %+v", now)
			}
		})
	}
	t.Run("success with SMTP enabled", func(t *testing.T) {
		form := valid()
		form.Set("smtp_enabled", "on")
		p := b.post(groupPath(g, ""), form, false, false)
		wantStatus(t, p, http.StatusSeeOther)
		now, _ := env.db.Group(ctx, env.org.ID, "fr-par-1", g.ID)
		if now.Name != "bare metal" || now.Description != "racks" || now.InboundDefaultPolicy != store.Drop ||
			!now.SMTPEnabled || now.Stateful {
			t.Fatalf("after save: %+v", now)
		}
		page := b.get(groupPath(g, ""), false)
		if _, ok := page.doc.Find("#o-smtp").Attr("checked"); !ok {
			t.Fatal("Enable SMTP not shown checked")
		}
		if page.doc.Find(`[data-testid=smtp-rules]`).Length() != 0 {
			t.Fatal("SMTP rules shown while SMTP is enabled")
		}
	})
	t.Run("delete refused while in use", func(t *testing.T) {
		p := b.post(groupPath(g, "/delete"), nil, false, false)
		wantStatus(t, p, http.StatusConflict)
		if !strings.Contains(p.doc.Find(`[data-testid=delete-message]`).Text(), "in use") {
			t.Fatalf("no refusal message: %s", p.doc.Find(".alert").Text())
		}
		if _, err := env.db.Group(ctx, env.org.ID, "fr-par-1", g.ID); err != nil {
			t.Fatal("group deleted")
		}
	})
	t.Run("set as default, then delete refused, then delete", func(t *testing.T) {
		other := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "spare"})
		def, _ := env.db.DefaultGroup(ctx, env.org.ID, "fr-par-1")
		wantStatus(t, b.post(groupPath(other, "/default"), nil, false, false), http.StatusSeeOther)
		list := b.get("/security-groups", false)
		if list.doc.Find(`tr[data-group="`+other.ID+`"] [data-testid=default-badge]`).Length() != 1 ||
			list.doc.Find(`[data-testid=default-badge]`).Length() != 1 {
			t.Fatal("default badge did not move")
		}
		p := b.post(groupPath(other, "/delete"), nil, false, false)
		wantStatus(t, p, http.StatusConflict)
		if !strings.Contains(p.doc.Find(`[data-testid=delete-message]`).Text(), "default") {
			t.Fatal("no refusal for deleting the default")
		}
		p = b.post(groupPath(def, "/delete"), nil, false, false) // the former default, now unused
		wantStatus(t, p, http.StatusSeeOther)
		if _, err := env.db.Group(ctx, env.org.ID, "fr-par-1", def.ID); store.ErrorCode(err) != store.CodeNotFound {
			t.Fatalf("group still there: %v", err)
		}
	})
}

// TestConsoleGroupServers covers the Servers section: add, the BareMetal
// refusal, unlink (moves to the default, with a message) and its refusal.
func TestConsoleGroupServers(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	def, _ := env.db.DefaultGroup(ctx, env.org.ID, "fr-par-1")
	def, _ = env.db.UpdateGroup(ctx, env.org.ID, "fr-par-1", def.ID, store.GroupPatch{Stateful: new(bool)})
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", Stateful: true})
	vm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1"})
	bm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "bm-1", Interface: "eno2", Type: store.BareMetal})
	env.mustServer(t, "nl-ams-1", store.ServerInput{Name: "ams-vm", Interface: "vnet9"})

	p := b.get(groupPath(g, ""), false)
	opts := p.doc.Find("#add-server option")
	if opts.Length() != 2 {
		t.Fatalf("%d candidate servers, want 2 (same zone, not in the group)", opts.Length())
	}
	cases := []struct {
		name     string
		server   string
		status   int
		inGroup  bool
		errorMsg bool
	}{
		{"no server chosen", "", 422, false, true},
		{"unknown server", "0b5e7a3c-0000-4000-8000-000000000000", 422, false, true},
		{"BareMetal into a stateful group", bm.ID, 422, false, true},
		{"instance", vm.ID, 303, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post(groupPath(g, "/servers"), url.Values{"server_id": {tc.server}}, false, false)
			wantStatus(t, p, tc.status)
			if tc.errorMsg && fieldError(p, "add-server") == "" {
				t.Fatal("no error beside the server select")
			}
			if tc.server != "" && tc.server != cases[1].server {
				s, _ := env.db.Server(ctx, env.org.ID, "fr-par-1", tc.server)
				if got := s.SecurityGroup.ID == g.ID; got != tc.inGroup {
					t.Fatalf("in group = %v, want %v", got, tc.inGroup)
				}
			}
		})
	}
	t.Run("unlink", func(t *testing.T) {
		p := b.post(groupPath(g, "/servers/"+vm.ID+"/unlink"), nil, false, false)
		wantStatus(t, p, http.StatusSeeOther)
		s, _ := env.db.Server(ctx, env.org.ID, "fr-par-1", vm.ID)
		if s.SecurityGroup.ID != def.ID {
			t.Fatalf("unlinked server in %s, want the default %s", s.SecurityGroup.ID, def.ID)
		}
		next := b.get(p.header.Get("Location"), false)
		if msg := next.doc.Find("#flash").Text(); !strings.Contains(msg, "organization default") {
			t.Fatalf("flash = %q", msg)
		}
	})
	t.Run("unlink from the default refused", func(t *testing.T) {
		page := b.get(groupPath(def, ""), false)
		if page.doc.Find(`button[aria-label="Unlink server vm-1"]`).Length() != 0 {
			t.Fatal("unlink offered on the default group")
		}
		p := b.post(groupPath(def, "/servers/"+vm.ID+"/unlink"), nil, false, false)
		wantStatus(t, p, http.StatusConflict)
		if !strings.Contains(p.doc.Find("#flash .alert-error").Text(), "default group already") {
			t.Fatalf("no refusal shown: %q", p.doc.Find("#flash").Text())
		}
	})
}

// ruleRows returns the position cells of a direction's table.
func ruleRows(p page, dir string) []string {
	var out []string
	p.doc.Find(`[data-testid=` + dir + `-rules] tbody tr[data-rule]`).Each(func(_ int, s *goquery.Selection) {
		out = append(out, s.AttrOr("data-rule", ""))
	})
	return out
}

// TestConsoleRules covers the Rules section as htmx partials and without
// JavaScript: add, errors beside fields, edit in place, move, delete.
func TestConsoleRules(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})

	t.Run("add errors", func(t *testing.T) {
		valid := url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"0.0.0.0/0"},
			"dest_port_from": {"22"}, "dest_port_to": {""}}
		cases := []struct {
			name   string
			key    string
			value  string
			field  string
			hx     bool
			status int
		}{
			{"bad ip range", "ip_range", "10.0.0.300/8", "r-ip_range", true, 422},
			{"empty ip range", "ip_range", "", "r-ip_range", false, 422},
			{"port out of range", "dest_port_from", "70000", "r-dest_port_from", true, 422},
			{"port not a number", "dest_port_to", "http", "r-dest_port_to", false, 422},
			{"reversed range", "dest_port_to", "20", "r-dest_port_to", true, 422},
			{"port with ICMP", "protocol", "ICMP", "r-dest_port_from", true, 422},
			{"bad action", "action", "reject", "r-action", true, 422},
			{"bad protocol", "protocol", "SCTP", "r-protocol", false, 422},
			{"bad direction", "direction", "sideways", "r-direction", true, 422},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				form := url.Values{}
				for k, v := range valid {
					form[k] = append([]string(nil), v...)
				}
				form.Set(tc.key, tc.value)
				p := b.post(groupPath(g, "/rules"), form, tc.hx, false)
				wantStatus(t, p, tc.status)
				if tc.hx && p.doc.Find("html body > section#rules").Length() != 1 {
					// goquery wraps fragments in html/body: the answer is the section alone.
					t.Fatalf("htmx answer is not the rules section alone")
				}
				if tc.hx && p.doc.Find(".sidebar").Length() != 0 {
					t.Fatal("htmx answer carries the layout")
				}
				if fieldError(p, tc.field) == "" {
					t.Fatalf("no error beside #%s", tc.field)
				}
				if got, _ := p.doc.Find("#r-ip_range").Attr("value"); got != form.Get("ip_range") {
					t.Fatalf("ip range not kept: %q", got)
				}
				if rules, _ := env.db.Rules(ctx, env.org.ID, "fr-par-1", g.ID); len(rules) != 0 {
					t.Fatalf("%d rules written", len(rules))
				}
			})
		}
	})

	add := func(t *testing.T, dir, proto, from string, hx bool) page {
		t.Helper()
		return b.post(groupPath(g, "/rules"), url.Values{"direction": {dir}, "action": {"accept"}, "protocol": {proto},
			"ip_range": {"192.0.2.0/24"}, "dest_port_from": {from}}, hx, false)
	}
	t.Run("add", func(t *testing.T) {
		p := add(t, "inbound", "TCP", "22", true)
		wantStatus(t, p, http.StatusOK)
		if got := len(ruleRows(p, "inbound")); got != 1 {
			t.Fatalf("%d inbound rows, want 1", got)
		}
		if !strings.Contains(p.doc.Find("#rules-flash").Text(), "Rule 1 added") {
			t.Fatal("no confirmation")
		}
		if p.doc.Find(`[data-testid=smtp-rules] tbody tr`).Length() != 6 {
			t.Fatal("the six SMTP rules are not shown")
		}
		wantStatus(t, add(t, "outbound", "UDP", "53", true), http.StatusOK)
		// Without JavaScript: 303 back to the rules.
		np := add(t, "inbound", "TCP", "80", false)
		wantStatus(t, np, http.StatusSeeOther)
		if loc := np.header.Get("Location"); !strings.HasSuffix(loc, "#rules") {
			t.Fatalf("Location = %q", loc)
		}
		wantStatus(t, add(t, "inbound", "ICMP", "", true), http.StatusOK)
	})
	rules, _ := env.db.Rules(ctx, env.org.ID, "fr-par-1", g.ID)
	if len(rules) != 4 {
		t.Fatalf("%d rules, want 4", len(rules))
	}
	// Positions: 1 in/22, 2 out/53, 3 in/80, 4 in/ICMP.
	in22, out53, in80, inICMP := rules[0], rules[1], rules[2], rules[3]

	t.Run("tables in position order with labelled buttons", func(t *testing.T) {
		p := b.get(groupPath(g, ""), false)
		if got, want := strings.Join(ruleRows(p, "inbound"), ","), in22.ID+","+in80.ID+","+inICMP.ID; got != want {
			t.Fatalf("inbound order = %s, want %s", got, want)
		}
		for _, label := range []string{"Delete rule 3", "Move rule 3 up", "Move rule 3 down", "Edit rule 3"} {
			if p.doc.Find(`[aria-label="`+label+`"]`).Length() != 1 {
				t.Fatalf("no control labelled %q", label)
			}
		}
		if _, disabled := p.doc.Find(`[aria-label="Move rule 1 up"]`).Attr("disabled"); !disabled {
			t.Fatal("first rule can move up")
		}
		if p.doc.Find(`[data-testid=outbound-rules] tr[draggable=true]`).Length() != 1 {
			t.Fatal("rows are not draggable")
		}
	})
	order := func(t *testing.T) []string {
		t.Helper()
		rs, _ := env.db.Rules(ctx, env.org.ID, "fr-par-1", g.ID)
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	moves := []struct {
		name string
		rule string
		form url.Values
		want []string
	}{
		{"up skips the outbound rule", in80.ID, url.Values{"direction": {"up"}}, []string{in80.ID, in22.ID, out53.ID, inICMP.ID}},
		{"down", in80.ID, url.Values{"direction": {"down"}}, []string{in22.ID, in80.ID, out53.ID, inICMP.ID}},
		{"down past the outbound rule", in80.ID, url.Values{"direction": {"down"}}, []string{in22.ID, out53.ID, inICMP.ID, in80.ID}},
		{"down at the bottom is a no-op", in80.ID, url.Values{"direction": {"down"}}, []string{in22.ID, out53.ID, inICMP.ID, in80.ID}},
		{"to a position (drag and drop)", in80.ID, url.Values{"position": {"1"}}, []string{in80.ID, in22.ID, out53.ID, inICMP.ID}},
	}
	for _, tc := range moves {
		t.Run("move "+tc.name, func(t *testing.T) {
			p := b.post(groupPath(g, "/rules/"+tc.rule+"/move"), tc.form, true, false)
			wantStatus(t, p, http.StatusOK)
			if got, want := strings.Join(order(t), ","), strings.Join(tc.want, ","); got != want {
				t.Fatalf("order = %s, want %s", got, want)
			}
			if p.doc.Find("section#rules").Length() != 1 {
				t.Fatal("answer is not the rules section")
			}
		})
	}
	t.Run("move to a bad position", func(t *testing.T) {
		p := b.post(groupPath(g, "/rules/"+in80.ID+"/move"), url.Values{"position": {"9"}}, true, false)
		wantStatus(t, p, http.StatusUnprocessableEntity)
		if p.doc.Find("#rules-flash .alert-error").Length() != 1 {
			t.Fatal("no message")
		}
	})
	t.Run("move without JavaScript", func(t *testing.T) {
		p := b.post(groupPath(g, "/rules/"+in22.ID+"/move"), url.Values{"direction": {"up"}}, false, false)
		wantStatus(t, p, http.StatusSeeOther)
		if got := order(t)[0]; got != in22.ID {
			t.Fatalf("first rule = %s, want %s", got, in22.ID)
		}
	})
	t.Run("edit in place", func(t *testing.T) {
		p := b.get(groupPath(g, "/rules/"+in22.ID+"/edit"), true)
		wantStatus(t, p, http.StatusOK)
		row := p.doc.Find(`tr#rule-` + in22.ID)
		if !row.HasClass("editing") || row.Find(`input[name=ip_range][form=edit-rule]`).Length() != 1 {
			t.Fatal("row did not become a form")
		}
		if got, _ := row.Find("#edit-dest_port_from").Attr("value"); got != "22" {
			t.Fatalf("from port = %q", got)
		}
		bad := b.post(groupPath(g, "/rules/"+in22.ID), url.Values{"action": {"drop"}, "protocol": {"TCP"},
			"ip_range": {"nope"}, "dest_port_from": {"2222"}}, true, false)
		wantStatus(t, bad, http.StatusUnprocessableEntity)
		if fieldError(bad, "edit-ip_range") == "" {
			t.Fatal("no error beside the edited IP range")
		}
		if got, _ := bad.doc.Find("#edit-dest_port_from").Attr("value"); got != "2222" {
			t.Fatalf("edited port not kept: %q", got)
		}
		ok := b.post(groupPath(g, "/rules/"+in22.ID), url.Values{"action": {"drop"}, "protocol": {"TCP"},
			"ip_range": {"2001:db8::/32"}, "dest_port_from": {"2222"}, "dest_port_to": {"2223"}}, true, false)
		wantStatus(t, ok, http.StatusOK)
		r, _ := env.db.Rule(ctx, env.org.ID, "fr-par-1", g.ID, in22.ID)
		if r.Action != store.Drop || r.IPRange.String() != "2001:db8::/32" || r.DestPortFrom != 2222 || r.DestPortTo != 2223 {
			t.Fatalf("after edit: %+v", r)
		}
		if ok.doc.Find("tr.editing").Length() != 0 {
			t.Fatal("still editing after save")
		}
		// Switching to ICMP with the ports emptied clears them.
		wantStatus(t, b.post(groupPath(g, "/rules/"+in22.ID), url.Values{"action": {"drop"}, "protocol": {"ICMP"},
			"ip_range": {"2001:db8::/32"}}, false, false), http.StatusSeeOther)
		if r, _ := env.db.Rule(ctx, env.org.ID, "fr-par-1", g.ID, in22.ID); r.DestPortFrom != 0 || r.Protocol != store.ICMP {
			t.Fatalf("after edit to ICMP: %+v", r)
		}
	})
	t.Run("delete", func(t *testing.T) {
		p := b.post(groupPath(g, "/rules/"+out53.ID+"/delete"), nil, true, false)
		wantStatus(t, p, http.StatusOK)
		if len(ruleRows(p, "outbound")) != 0 {
			t.Fatal("deleted rule still shown")
		}
		if got := len(order(t)); got != 3 {
			t.Fatalf("%d rules left, want 3", got)
		}
		p = b.post(groupPath(g, "/rules/"+out53.ID+"/delete"), nil, true, false)
		wantStatus(t, p, http.StatusNotFound)
	})
	t.Run("counters and nft preview", func(t *testing.T) {
		p := b.get(groupPath(g, ""), false)
		if p.doc.Find(`[data-testid=inbound-rules] thead th`).FilterFunction(func(_ int, s *goquery.Selection) bool {
			return strings.HasPrefix(s.Text(), "Packets") || s.Text() == "Bytes"
		}).Length() != 2 {
			t.Fatal("no counter columns")
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(p.doc.Find(`details.nft pre`).Text(), "chain") {
			if time.Now().After(deadline) {
				t.Fatalf("nft preview = %q", p.doc.Find(`details.nft pre`).Text())
			}
			time.Sleep(50 * time.Millisecond)
			p = b.get(groupPath(g, ""), false)
		}
	})
}

// TestConsoleOtherOrganization: another organization's objects answer 404
// on every page and form, and stay unchanged.
func TestConsoleOtherOrganization(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	other, _ := env.db.EnsureOrganization(ctx, "Other Corp")
	g := env.mustGroup(t, other.ID, "fr-par-1", store.GroupInput{Name: "theirs"})
	port := 22
	r, _ := env.db.CreateRule(ctx, other.ID, "fr-par-1", g.ID, store.RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: &port})
	s, _ := env.db.CreateServer(ctx, other.ID, "fr-par-1", store.ServerInput{Name: "their-vm", Interface: "vnet5"})
	before, _ := env.db.Generation(ctx)
	cases := []struct {
		method, path string
		hx           bool
	}{
		{"GET", groupPath(g, ""), false},
		{"GET", "/security-groups/" + g.ID, false},
		{"GET", groupPath(g, "/state"), true},
		{"GET", groupPath(g, "/rules/"+r.ID+"/edit"), true},
		{"POST", groupPath(g, ""), false},
		{"POST", groupPath(g, "/default"), false},
		{"POST", groupPath(g, "/delete"), false},
		{"POST", groupPath(g, "/rules"), true},
		{"POST", groupPath(g, "/rules/"+r.ID+"/delete"), true},
		{"POST", groupPath(g, "/rules/"+r.ID+"/move"), true},
		{"GET", "/servers/" + s.ID, false},
		{"POST", "/servers/" + s.ID + "/delete", false},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var p page
			if tc.method == "GET" {
				p = b.get(tc.path, tc.hx)
			} else {
				p = b.post(tc.path, url.Values{"name": {"mine"}, "ip_range": {"0.0.0.0/0"}, "direction": {"up"}}, tc.hx, false)
			}
			wantStatus(t, p, http.StatusNotFound)
			if strings.Contains(p.body, "theirs") {
				t.Fatal("the other organization's group name leaked")
			}
			if !tc.hx && strings.TrimSpace(p.doc.Find("h1").Text()) != "Not found" {
				t.Fatalf("h1 = %q", p.doc.Find("h1").Text())
			}
		})
	}
	if after, _ := env.db.Generation(ctx); after != before {
		t.Fatal("another organization's objects changed")
	}
	if p := b.get("/security-groups", false); strings.Contains(p.body, "theirs") {
		t.Fatal("listed another organization's group")
	}
}

// TestConsoleServers covers the Servers page: register, errors beside
// fields, the BareMetal refusal, edit and remove.
func TestConsoleServers(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	stateful := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", Stateful: true})
	stateless := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "racks"})
	ams := env.mustGroup(t, env.org.ID, "nl-ams-1", store.GroupInput{Name: "amsterdam"})
	valid := func() url.Values {
		return url.Values{"name": {"vm-1"}, "zone": {"fr-par-1"}, "type": {"instance"}, "interface": {"vnet1"},
			"addresses": {"192.0.2.10, 2001:db8::10"}, "security_group": {stateful.ID}}
	}
	cases := []struct {
		name   string
		change func(url.Values)
		status int
		field  string
	}{
		{"empty name", func(v url.Values) { v.Set("name", "") }, 422, "s-name"},
		{"bad zone", func(v url.Values) { v.Set("zone", "moon-1") }, 422, "s-zone"},
		{"bad type", func(v url.Values) { v.Set("type", "mainframe") }, 422, "s-type"},
		{"bad address", func(v url.Values) { v.Set("addresses", "192.0.2.10, 300.1.1.1") }, 422, "s-addresses"},
		{"bad interface", func(v url.Values) { v.Set("interface", "has space") }, 422, "s-interface"},
		{"local with an interface", func(v url.Values) { v.Set("local", "on") }, 422, "s-interface"},
		{"BareMetal in a stateful group", func(v url.Values) { v.Set("type", "baremetal") }, 422, "s-group"},
		{"group of another zone", func(v url.Values) { v.Set("security_group", ams.ID) }, 422, "s-group"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			form := valid()
			tc.change(form)
			p := b.post("/servers", form, false, false)
			wantStatus(t, p, tc.status)
			if fieldError(p, tc.field) == "" {
				t.Fatalf("no error beside #%s: %s", tc.field, p.doc.Find("p.error, .alert").Text())
			}
			if got, _ := p.doc.Find("#s-addresses").Attr("value"); got != form.Get("addresses") {
				t.Fatalf("addresses not kept: %q", got)
			}
			if ss, _, _ := env.db.Servers(ctx, env.org.ID, "fr-par-1", store.ServerFilter{}); len(ss) != 0 {
				t.Fatal("server written")
			}
		})
	}
	var id string
	t.Run("register", func(t *testing.T) {
		p := b.post("/servers", valid(), false, false)
		wantStatus(t, p, http.StatusSeeOther)
		list := b.get(p.header.Get("Location"), false)
		row := list.doc.Find(`[data-testid=servers] tr[data-server]`)
		if row.Length() != 1 || !strings.Contains(row.Text(), "web") || !strings.Contains(row.Text(), "2001:db8::10") {
			t.Fatalf("row = %q", row.Text())
		}
		id = row.AttrOr("data-server", "")
	})
	t.Run("edit refused: BareMetal in a stateful group", func(t *testing.T) {
		form := valid()
		form.Set("type", "baremetal")
		p := b.post("/servers/"+id, form, false, false)
		wantStatus(t, p, http.StatusUnprocessableEntity)
		if fieldError(p, "s-type") == "" && fieldError(p, "s-group") == "" {
			t.Fatal("no error beside type or group")
		}
		if s, _ := env.db.Server(ctx, env.org.ID, "fr-par-1", id); s.Type != store.Instance {
			t.Fatal("refused edit written")
		}
	})
	t.Run("edit", func(t *testing.T) {
		form := valid()
		form.Set("type", "baremetal")
		form.Set("security_group", stateless.ID)
		form.Set("name", "bm-1")
		wantStatus(t, b.post("/servers/"+id, form, false, false), http.StatusSeeOther)
		s, _ := env.db.Server(ctx, env.org.ID, "fr-par-1", id)
		if s.Name != "bm-1" || s.Type != store.BareMetal || s.SecurityGroup.ID != stateless.ID {
			t.Fatalf("after edit: %+v", s)
		}
	})
	t.Run("remove", func(t *testing.T) {
		wantStatus(t, b.post("/servers/"+id+"/delete", nil, false, false), http.StatusSeeOther)
		if _, err := env.db.Server(ctx, env.org.ID, "fr-par-1", id); store.ErrorCode(err) != store.CodeNotFound {
			t.Fatalf("server still there: %v", err)
		}
	})
}

// TestConsoleTokens covers API tokens: generate (secret shown once),
// list, the description limit, and revoke.
func TestConsoleTokens(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	ctx := context.Background()
	p := b.post("/tokens", url.Values{"description": {strings.Repeat("x", 256)}}, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if fieldError(p, "t-description") == "" {
		t.Fatal("no error beside the description")
	}
	p = b.post("/tokens", url.Values{"description": {"terraform"}}, false, false)
	wantStatus(t, p, http.StatusOK)
	secret := strings.TrimSpace(p.doc.Find("#new-secret").Text())
	if _, err := env.db.TokenBySecret(ctx, secret); err != nil {
		t.Fatalf("shown secret does not authenticate: %v", err)
	}
	if p.doc.Find(`button[data-copy=new-secret]`).Length() != 1 {
		t.Fatal("no copy button")
	}
	if p.header.Get("Cache-Control") != "no-store" {
		t.Fatal("page with a secret may be cached")
	}
	list := b.get("/tokens", false)
	if strings.Contains(list.body, secret) {
		t.Fatal("secret shown twice")
	}
	tokens, _ := env.db.Tokens(ctx, env.org.ID)
	if len(tokens) != 1 || list.doc.Find(`tr[data-token="`+tokens[0].AccessKey+`"]`).Length() != 1 {
		t.Fatal("token not listed")
	}
	wantStatus(t, b.post("/tokens/"+tokens[0].AccessKey+"/revoke", nil, false, false), http.StatusSeeOther)
	if tokens, _ := env.db.Tokens(ctx, env.org.ID); len(tokens) != 0 {
		t.Fatal("token not revoked")
	}
	wantStatus(t, b.post("/tokens/SCWNOTATOKEN0000000/revoke", nil, false, false), http.StatusNotFound)
}
