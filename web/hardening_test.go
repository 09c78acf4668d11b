package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// The tests of this file are named for the findings of the hostile review
// they fix (issue 11); each failed on the code before the fix.

// TestMultipartLeavesNoTempFiles (finding 1): a multipart body of 40 MiB to
// any console route, sign-in included, is refused before anything parses
// it, and leaves nothing in the temporary folder.
func TestMultipartLeavesNoTempFiles(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where net/http spools multipart parts
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	for _, path := range []string{"/login", groupPath(g, "/rules"), "/tokens"} {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("_csrf", b.csrf())
		fw, _ := mw.CreateFormFile("f", "big.bin")
		fw.Write(bytes.Repeat([]byte("x"), 40<<20))
		mw.Close()
		req, _ := http.NewRequest(http.MethodPost, env.ts.URL+path, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		p := b.do(req)
		if p.status != http.StatusUnsupportedMediaType && p.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d, want 415 or 413", path, p.status)
		}
	}
	left, _ := filepath.Glob(filepath.Join(tmp, "multipart-*"))
	if len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestSignInParallelAttempts (finding 2): 40 wrong passwords sent at once
// are checked 5 times (the account's bucket), the rest answered 429; a
// made-up X-Forwarded-For does not move the client to another bucket.
func TestSignInParallelAttempts(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.browser(t)
	token := b.csrf()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"email": {consoleEmail}, "password": {"wrong password"}, "_csrf": {token}}
			req, _ := http.NewRequest(http.MethodPost, env.ts.URL+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := b.c.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 35 {
		t.Fatalf("statuses = %v, want 5×401 and 35×429", statuses)
	}

	// The address bucket (20) is per socket address: spoofed headers
	// change nothing.
	for i := range 25 {
		form := url.Values{"email": {fmt.Sprintf("u%d@acme.test", i)}, "password": {"wrong password"}, "_csrf": {token}}
		req, _ := http.NewRequest(http.MethodPost, env.ts.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))
		req.Header.Set("X-Real-IP", fmt.Sprintf("203.0.113.%d", i))
		p := b.do(req)
		if i >= 15 && p.status != http.StatusTooManyRequests { // 5 + 15 = the address's 20
			t.Fatalf("attempt %d with a spoofed address: status %d, want 429", i, p.status)
		}
	}
}

// TestSignInTrustedProxy: behind a proxy named by TrustedProxies, the
// client address is the one the proxy forwards.
func TestSignInTrustedProxy(t *testing.T) {
	env := newConsoleEnvWith(t, func(c *web.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	b := env.browser(t)
	token := b.csrf()
	for i := range 30 {
		form := url.Values{"email": {fmt.Sprintf("u%d@acme.test", i)}, "password": {"wrong password"}, "_csrf": {token}}
		req, _ := http.NewRequest(http.MethodPost, env.ts.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i)) // each a different client
		if p := b.do(req); p.status != http.StatusUnauthorized {
			t.Fatalf("client %d: status %d, want 401 (its own address bucket)", i, p.status)
		}
	}
}

// TestCSRFCookieTossing (finding 3): a page on another port of the same
// host can set cookies for this one; neither a planted token cookie, nor a
// token of another session, nor a request marked same-site (rather than
// same-origin) may change anything.
func TestCSRFCookieTossing(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	before, _ := env.db.Generation(context.Background())
	rule := url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"ANY"}, "ip_range": {"0.0.0.0/0"}}
	post := func(form url.Values, header map[string]string) page {
		req, _ := http.NewRequest(http.MethodPost, env.ts.URL+groupPath(g, "/rules"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return b.do(req)
	}
	// The old double-submit cookie: planted, and echoed in the form.
	u, _ := url.Parse(env.ts.URL)
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "rampart_csrf", Value: "known-to-the-attacker", Path: "/"}})
	form := url.Values{"_csrf": {"known-to-the-attacker"}}
	for k, v := range rule {
		form[k] = v
	}
	wantStatus(t, post(form, nil), http.StatusForbidden)

	// A token valid for another session (the attacker's own).
	other := env.signedIn(t)
	form.Set("_csrf", other.csrf())
	wantStatus(t, post(form, nil), http.StatusForbidden)

	// The right token, but from a page of another origin.
	form.Set("_csrf", b.csrf())
	wantStatus(t, post(form, map[string]string{"Sec-Fetch-Site": "same-site"}), http.StatusForbidden)
	wantStatus(t, post(form, map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden)
	wantStatus(t, post(form, map[string]string{"Origin": "http://" + u.Hostname() + ":1"}), http.StatusForbidden)
	if after, _ := env.db.Generation(context.Background()); after != before {
		t.Fatalf("generation moved from %d to %d: a refused request changed something", before, after)
	}
	// Same origin, as a browser says it: accepted.
	p := post(form, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": env.ts.URL})
	if p.status != http.StatusSeeOther {
		t.Fatalf("same-origin post: status %d, want 303: %s", p.status, p.body)
	}
}

// TestPageBounds (finding 4): page numbers past what a list can page
// through, or page sizes outside 1–100, are refused naming the parameter,
// instead of a panic (rules) or a silent first page (groups, servers).
func TestPageBounds(t *testing.T) {
	env := newTestEnv(t)
	g := env.createGroup(t, `{"name":"paged"}`)
	base := env.url + "/instance/v1/zones/fr-par-1"
	for _, tt := range []struct {
		path, param string
	}{
		{"/security_groups/" + g + "/rules?page=9223372036854775807", "page"},
		{"/security_groups?page=9223372036854775807", "page"},
		{"/servers?page=9223372036854775807", "page"},
		{"/security_groups?page=100001&per_page=100", "page"},
		{"/security_groups?per_page=101", "per_page"},
		{"/servers?per_page=1000", "per_page"},
		{"/security_groups/" + g + "/rules?per_page=101", "per_page"},
	} {
		a := call(t, "GET", base+tt.path, "", env.auth())
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"argument_name":"`+tt.param+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tt.path, a.status, a.raw, tt.param)
		}
	}
	a := call(t, "GET", base+"/security_groups?page=2&per_page=100", "", env.auth())
	if a.status != http.StatusOK {
		t.Errorf("page 2: %d %s", a.status, a.raw)
	}
}

// TestInterfaceNameRule (finding 5): a name the enforcer could not program
// is refused by the store, naming the field, so that no group is left in
// syncing_error by what an API client sent.
func TestInterfaceNameRule(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1"
	for _, name := range []string{`ta"p0`, "tap 0", "tap*", "a-name-too-long-", "..", "tap/0", "eth0:1", "tåp0"} {
		a := call(t, "POST", base+"/servers", `{"name":"vm","interface":`+jsonString(name)+`}`, env.auth())
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"argument_name":"interface"`) {
			t.Errorf("interface %q: %d %s, want 400 naming interface", name, a.status, a.raw)
		}
	}
	for _, name := range []string{"tap-acme_0.1", "vnet12345678901", "eth0.100"} {
		if a := call(t, "POST", base+"/servers", `{"name":"vm","interface":`+jsonString(name)+`}`, env.auth()); a.status != http.StatusCreated {
			t.Errorf("interface %q: %d %s, want 201", name, a.status, a.raw)
		}
	}
}

// TestOpenRedirect (finding 6): the sign-in redirect goes to a path of
// this site only, however the target is spelt for a browser to read
// otherwise.
func TestOpenRedirect(t *testing.T) {
	env := newConsoleEnv(t, false)
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "//evil.example", "/\\evil.example",
		"\\/evil.example", "https://evil.example/", "/%0a", " //evil.example", "http:evil.example", "javascript:alert(1)"} {
		b := env.browser(t)
		p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {consolePassword}, "next": {next}}, false, false)
		if loc := p.header.Get("Location"); p.status != http.StatusSeeOther || (loc != "/security-groups" && !strings.HasPrefix(loc, "/%0a")) {
			t.Errorf("next=%q: %d Location %q, want /security-groups", next, p.status, loc)
		}
	}
	b := env.browser(t)
	p := b.post("/login", url.Values{"email": {consoleEmail}, "password": {consolePassword}, "next": {"/servers?zone=nl-ams-1"}}, false, false)
	if loc := p.header.Get("Location"); loc != "/servers?zone=nl-ams-1" {
		t.Errorf("a path of this site: Location %q", loc)
	}
}

// TestControlCharactersInAPI (finding 7): control and bidi characters and
// invalid UTF-8 in JSON are refused naming the field, not replaced.
func TestControlCharactersInAPI(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1"
	for _, tt := range []struct {
		body, field string
	}{
		{`{"name":"\u0000"}`, "name"},
		{`{"name":"admin\u202egpj.exe"}`, "name"},
		{`{"name":"ok","description":"\u001b[31mred"}`, "description"},
		{`{"name":"ok","tags":["a","b\u0007"]}`, "tags"},
		{"{\"name\":\"caf\xe9\"}", "name"},
		{"{\"name\":\"ok\",\"tags\":[\"fine\",\"\xff\"]}", "tags[1]"},
	} {
		a := call(t, "POST", base+"/security_groups", tt.body, env.auth())
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"argument_name":"`+tt.field+`"`) {
			t.Errorf("%q: %d %s, want 400 naming %s", tt.body, a.status, a.raw, tt.field)
		}
	}
	a := call(t, "GET", base+"/security_groups", "", env.auth())
	if n := field(a.body, "total_count"); n != float64(0) {
		t.Errorf("groups written: %v", n)
	}
}

// TestSlowBodyTimesOut (finding 8): a body trickled a byte at a time
// cannot hold a connection past the read timeout.
func TestSlowBodyTimesOut(t *testing.T) {
	env := newConsoleEnvWith(t, func(c *web.Config) {
		c.Timeouts = web.Timeouts{Read: time.Second}
	})
	u, _ := url.Parse(env.ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n", u.Host)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	for {
		select {
		case d := <-closed:
			t.Logf("connection closed after %v", d)
			return
		case <-time.After(300 * time.Millisecond):
			if time.Since(start) > 10*time.Second {
				t.Fatal("a trickled body still holds the connection after 10 s")
			}
			conn.Write([]byte("a"))
		}
	}
}

// TestSecureCookies (finding 9): with SecureCookies, or behind a trusted
// proxy that took HTTPS, every console cookie is Secure and __Host-; a
// client's own X-Forwarded-Proto changes nothing.
func TestSecureCookies(t *testing.T) {
	check := func(t *testing.T, env *consoleEnv, header map[string]string, secure bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, env.ts.URL+"/login", nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		p := env.browser(t).do(req)
		cookies := p.header.Values("Set-Cookie")
		if len(cookies) == 0 {
			t.Fatal("no cookie set")
		}
		for _, c := range cookies {
			if got := strings.Contains(c, "; Secure") && strings.HasPrefix(c, "__Host-"); got != secure {
				t.Errorf("cookie %q: secure = %v, want %v", c, got, secure)
			}
		}
	}
	t.Run("flag", func(t *testing.T) { check(t, newConsoleEnv(t, true), nil, true) })
	t.Run("plain", func(t *testing.T) {
		check(t, newConsoleEnv(t, false), map[string]string{"X-Forwarded-Proto": "https"}, false)
	})
	t.Run("trusted proxy", func(t *testing.T) {
		env := newConsoleEnvWith(t, func(c *web.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		})
		check(t, env, map[string]string{"X-Forwarded-Proto": "https"}, true)
		check(t, env, nil, false)
	})
	// Signed in over a secure cookie.
	env := newConsoleEnv(t, true)
	b := env.signedIn(t)
	if p := b.get("/security-groups", false); p.status != http.StatusOK {
		t.Fatalf("signed in with __Host- cookies: %d", p.status)
	}
}

// TestListInUnservedZone: a client that asks every zone (scw zone=all)
// gets an empty list for a well-formed zone not served here; objects there
// stay not found.
func TestListInUnservedZone(t *testing.T) {
	env := newTestEnv(t)
	for _, kind := range []string{"security_groups", "servers"} {
		a := call(t, "GET", env.url+"/instance/v1/zones/pl-waw-3/"+kind, "", env.auth())
		if a.status != http.StatusOK || a.header.Get("X-Total-Count") != "0" || field(a.body, "total_count") != float64(0) {
			t.Errorf("%s: %d %s %q", kind, a.status, a.raw, a.header.Get("X-Total-Count"))
		}
		if list, ok := field(a.body, kind).([]any); !ok || len(list) != 0 {
			t.Errorf("%s: list = %v", kind, field(a.body, kind))
		}
	}
	a := call(t, "GET", env.url+"/instance/v1/zones/pl-waw-3/security_groups/00000000-0000-4000-8000-000000000000", "", env.auth())
	if a.status != http.StatusNotFound {
		t.Errorf("object in an unserved zone: %d", a.status)
	}
}

// TestProjectDefaultRefusalNamesSentField: refusing to unset the default
// names the field the client sent.
func TestProjectDefaultRefusalNamesSentField(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1"
	g := env.createGroup(t, `{"name":"def","project_default":true}`)
	for _, f := range []string{"project_default", "organization_default"} {
		a := call(t, "PATCH", base+"/security_groups/"+g, `{"`+f+`":false}`, env.auth())
		if a.status != http.StatusBadRequest || !strings.Contains(a.raw, `"argument_name":"`+f+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", f, a.status, a.raw, f)
		}
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// createGroup creates a group through the API and returns its ID.
func (env *testEnv) createGroup(t *testing.T, body string) string {
	t.Helper()
	a := call(t, "POST", env.url+"/instance/v1/zones/fr-par-1/security_groups", body, env.auth())
	if a.status != http.StatusCreated {
		t.Fatalf("create group: %d %s", a.status, a.raw)
	}
	return field(a.body, "security_group", "id").(string)
}
