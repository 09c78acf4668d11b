package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
)

func newInternalServer(t *testing.T, logs *bytes.Buffer) (*Server, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), testdb.DSN(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rec := enforcer.NewReconciler(db, enforcer.NewPreview("test"), nil)
	s, err := New(Config{Store: db, Enforcer: rec, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

// TestPanicAnswers500 (finding 4): a handler that panics gets an answer
// (JSON 500 on the API, an error page on the console), a log line with the
// stack, and a count in /metrics; the connection is not dropped.
func TestPanicAnswers500(t *testing.T) {
	var logs bytes.Buffer
	s, _ := newInternalServer(t, &logs)
	boom := func(echo.Context) error { panic("index out of range") }
	s.e.GET("/instance/v1/zones/:zone/boom", boom)
	s.e.GET("/boom", boom)
	ts := httptest.NewServer(s)
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/instance/v1/zones/fr-par-1/boom")
	if err != nil {
		t.Fatalf("API: %v (connection dropped?)", err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 500 || !strings.Contains(body, `"type":"internal_error"`) || strings.Contains(body, "index out of range") {
		t.Errorf("API: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(ts.URL + "/boom")
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	body = readAll(t, resp)
	if resp.StatusCode != 500 || !strings.Contains(body, "Something went wrong") {
		t.Errorf("console: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "index out of range") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("no log line with the panic and its stack:\n%s", logs.String())
	}
	resp, _ = http.Get(ts.URL + "/metrics")
	if m := readAll(t, resp); !strings.Contains(m, "rampart_http_panics_total 2") {
		t.Errorf("panics not counted:\n%s", grep(m, "panics"))
	}
}

// TestSignInHashesBounded (finding 2): at most two password checks run at
// once, whatever the number of parallel sign-ins; the others wait for a
// slot (and get 429 after hashWait).
func TestSignInHashesBounded(t *testing.T) {
	var logs bytes.Buffer
	s, db := newInternalServer(t, &logs)
	var running, peak atomic.Int32
	s.console.testHookHashing = func() {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
	}
	db.EnsureOrganization(context.Background(), "acme")
	ts := httptest.NewServer(s)
	defer ts.Close()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct accounts and a fresh page each: only the hash slots
			// limit them.
			client := &http.Client{Jar: newJar(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Get(ts.URL + "/login")
			if err != nil {
				t.Error(err)
				return
			}
			page := readAll(t, resp)
			token := between(page, `name="_csrf" value="`, `"`)
			resp, err = client.PostForm(ts.URL+"/login", url.Values{"email": {"u" + string(rune('a'+i)) + "@acme.test"},
				"password": {"wrong password"}, "_csrf": {token}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || p > maxHashes {
		t.Fatalf("peak concurrent password checks = %d, want 1..%d", p, maxHashes)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func grep(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func newJar() http.CookieJar {
	jar, _ := cookiejar.New(nil)
	return jar
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}
