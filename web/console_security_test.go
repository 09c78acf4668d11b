package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

func TestConsoleSignInThrottled(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.browser(t)
	b.get("/login", false)
	for i := 0; i < 5; i++ {
		p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {"wrong password"}}, false, false)
		wantStatus(t, p, http.StatusUnauthorized)
	}
	// Even the right password waits once the account is over its limit.
	p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {consolePassword}}, false, false)
	wantStatus(t, p, http.StatusTooManyRequests)
	if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q", p.header.Get("Retry-After"))
	}
	if !strings.Contains(p.doc.Find(`[data-testid=form-message]`).Text(), "Too many") {
		t.Fatalf("no message saying why: %s", p.body)
	}
	// Per address: twenty failures over many accounts lock the address.
	for i := 0; i < 20; i++ {
		b.post("/login", url.Values{"email": {fmt.Sprintf("u%d@acme.test", i)}, "password": {"wrong password"}}, false, false)
	}
	p = b.post("/login", url.Values{"email": {"fresh@acme.test"}, "password": {"wrong password"}}, false, false)
	wantStatus(t, p, http.StatusTooManyRequests)
}

// syncBuffer collects the log lines of a whole run.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestNoSecretInLogs runs sign-in, token and API traffic with logs at
// debug level and greps them for every secret and password used.
func TestNoSecretInLogs(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := store.Open(ctx, testdb.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	backend, _ := enforcer.Open(enforcer.ModePreview)
	rec := enforcer.NewReconciler(db, backend, logger)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { rec.Run(rctx); close(done) }()
	srv, err := web.New(web.Config{Store: db, Enforcer: rec, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { ts.Close(); cancel(); <-done; db.Close() }()
	org, _ := db.EnsureOrganization(ctx, "acme")
	password := "a very secret password 42"
	if _, err := db.CreateUser(ctx, org.ID, "ops@acme.test", password); err != nil {
		t.Fatal(err)
	}
	env := &consoleEnv{db: db, ts: ts, org: org}
	b := env.browser(t)
	b.get("/login", false)
	b.post("/login", url.Values{"email": {"ops@acme.test"}, "password": {"wrong " + password}}, false, false)
	p := b.post("/login", url.Values{"email": {"ops@acme.test"}, "password": {password}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	p = b.post("/tokens", url.Values{"description": {"ci"}}, false, false)
	secret := ""
	// The page shows the secret once; find it by its shape.
	for _, f := range strings.FieldsFunc(p.body, func(r rune) bool { return !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'f') }) {
		if len(f) == 36 && strings.Count(f, "-") == 4 {
			if _, err := db.TokenBySecret(ctx, f); err == nil {
				secret = f
			}
		}
	}
	if secret == "" {
		t.Fatalf("no token secret on the page: %d", p.status)
	}
	for _, path := range []string{"/instance/v1/zones/fr-par-1/security_groups", "/organizations", "/instance/v1/zones/fr-par-1/servers"} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("X-Auth-Token", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", ts.URL+"/organizations", nil)
	req.Header.Set("X-Auth-Token", "00000000-1111-2222-3333-444444444444")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	out := logs.String()
	if !strings.Contains(out, `"route":"/login"`) || !strings.Contains(out, "/organizations") {
		t.Fatalf("the run logged no requests:\n%s", out)
	}
	for _, s := range []string{password, secret, "00000000-1111-2222-3333-444444444444", "rampart_session"} {
		if strings.Contains(out, s) {
			t.Fatalf("log contains %q:\n%s", s, out)
		}
	}
}

func TestConsoleActivity(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "audited"})
	p := b.post(groupPath(g, ""), url.Values{"name": {"audited-2"}, "description": {""}, "inbound_default_policy": {"drop"},
		"outbound_default_policy": {"accept"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	p = b.get(groupPath(g, ""), false)
	rows := p.doc.Find(`[data-testid=activity] tbody tr`)
	if rows.Length() != 2 {
		t.Fatalf("activity rows = %d, want 2 (create, update)", rows.Length())
	}
	first := rows.First().Text()
	if !strings.Contains(first, "group update") || !strings.Contains(first, "user "+consoleEmail) || !strings.Contains(first, "audited-2") {
		t.Fatalf("newest activity row = %q", first)
	}
}

func TestConsoleNFTPreviewRefreshes(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "nft"})
	p := b.post(groupPath(g, "/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"},
		"ip_range": {"0.0.0.0/0"}, "dest_port_from": {"8443"}}, true, false)
	wantStatus(t, p, http.StatusOK)
	if got := p.header.Get("HX-Trigger"); got != "rules-changed" {
		t.Fatalf("HX-Trigger = %q, want rules-changed", got)
	}
	var text string
	for i := 0; i < 50; i++ {
		text = b.get(groupPath(g, "/nft"), true).doc.Find("#nft-text").Text()
		if strings.Contains(text, "8443") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the preview partial never showed the new rule:\n%s", text)
}
