package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rampart-fw/rampart/static"
)

// Asset is one static file as the console serves it.
type Asset struct {
	Path     string
	Bytes    int    // as served
	Gzip     int    // gzip -6 of the file, for comparison
	Encoding string // Content-Encoding served, "" for none
}

// ConsoleResults are the console figures.
type ConsoleResults struct {
	ListGroups  int    // groups shown on the list page
	List        Sample // server time of GET /security-groups
	ListBytes   int
	DetailRules int // rules of the group on the detail page
	Detail      Sample
	DetailBytes int
	Page        []Asset // scripts and style sheets a page loads
	AllStatic   []Asset // every file of static/
}

// SignIn creates a console user and signs in through the real login form;
// it returns the session's cookies. Every step's answer is checked.
func SignIn(ctx context.Context, env *WebEnv) ([]*http.Cookie, error) {
	const email, password = "bench@example.com", "correct horse battery staple"
	if _, err := env.DS.DB.CreateUser(ctx, env.DS.Org.ID, email, password); err != nil {
		return nil, fmt.Errorf("create the console user: %w", err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(env.TS.URL + "/login")
	if err != nil {
		return nil, fmt.Errorf("GET /login: %w", err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /login: %s %v, want 200", resp.Status, err)
	}
	u, err := url.Parse(env.TS.URL)
	if err != nil {
		return nil, err
	}
	// The form carries the token, bound to this browser's session.
	m := csrfRe.FindSubmatch(page)
	if m == nil {
		return nil, errors.New("GET /login: no CSRF token in the form")
	}
	csrf := string(m[1])
	resp, err = c.PostForm(env.TS.URL+"/login", url.Values{"email": {email}, "password": {password}, "_csrf": {csrf}})
	if err != nil {
		return nil, fmt.Errorf("POST /login: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("POST /login: %s, want 303", resp.Status)
	}
	return jar.Cookies(u), nil
}

var (
	csrfRe  = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)
	assetRe = regexp.MustCompile(`(?:src|href)="(/static/[^"?]+\.(?:js|css))(?:\?[^"]*)?"`)
	uuidRe  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
)

// countShown returns how many of ids the page shows.
func countShown(page []byte, ids map[string]bool) int {
	seen := map[string]bool{}
	for _, m := range uuidRe.FindAll(page, -1) {
		if id := string(m); ids[id] {
			seen[id] = true
		}
	}
	return len(seen)
}

// MeasureConsole times the server side of the list page (every group of
// the dataset) and of the detail page of the DetailRules-rule group, n
// times each through the handler env serves, with a signed-in session,
// and sizes the assets. Every render is checked: a 200 that shows every
// group (list) or every rule (detail); anything else is an error.
func MeasureConsole(ctx context.Context, env *WebEnv, n int) (ConsoleResults, error) {
	var res ConsoleResults
	cookies, err := SignIn(ctx, env)
	if err != nil {
		return res, fmt.Errorf("console sign-in: %w", err)
	}
	// The handler the test server serves (env.Srv): timed without the
	// network, as the server's own time.
	h := env.TS.Config.Handler
	get := func(path string, hdr ...string) (*httptest.ResponseRecorder, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(rec, req)
		return rec, time.Since(t0)
	}
	groupIDs := map[string]bool{}
	for _, g := range env.DS.Groups {
		groupIDs[g.ID] = true
	}
	rules, err := env.DS.DB.Rules(ctx, env.DS.Org.ID, env.DS.Zone, env.Detail.ID)
	if err != nil {
		return res, fmt.Errorf("read the detail group's rules: %w", err)
	}
	ruleIDs := map[string]bool{}
	for _, r := range rules {
		if r.Editable {
			ruleIDs[r.ID] = true
		}
	}
	res.ListGroups, res.DetailRules = len(groupIDs), len(ruleIDs)
	detailPath := "/security-groups/" + env.Detail.ID
	pages := []struct {
		path  string
		s     *Sample
		size  *int
		ids   map[string]bool
		shows string
	}{
		{"/security-groups", &res.List, &res.ListBytes, groupIDs, "groups"},
		{detailPath, &res.Detail, &res.DetailBytes, ruleIDs, "rules"},
	}
	for i := -1; i < n; i++ {
		for _, p := range pages {
			rec, d := get(p.path)
			if rec.Code != http.StatusOK {
				return res, fmt.Errorf("GET %s: %d: %s", p.path, rec.Code, snippet(rec.Body.Bytes()))
			}
			if got := countShown(rec.Body.Bytes(), p.ids); got != len(p.ids) {
				return res, fmt.Errorf("GET %s shows %d of the %d %s", p.path, got, len(p.ids), p.shows)
			}
			if i >= 0 {
				*p.s = append(*p.s, d)
			}
			*p.size = rec.Body.Len()
			if i < 0 && p.path == detailPath {
				for _, m := range assetRe.FindAllStringSubmatch(rec.Body.String(), -1) {
					if slices.ContainsFunc(res.Page, func(a Asset) bool { return a.Path == m[1] }) {
						continue
					}
					a, err := fetchAsset(get, m[1])
					if err != nil {
						return res, err
					}
					res.Page = append(res.Page, a)
				}
				if len(res.Page) == 0 {
					return res, fmt.Errorf("GET %s loads no script or style sheet", p.path)
				}
			}
		}
	}
	err = fs.WalkDir(static.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.FS.ReadFile(path)
		if err != nil {
			return err
		}
		res.AllStatic = append(res.AllStatic, Asset{Path: "/static/" + path, Bytes: len(b), Gzip: gzipSize(b)})
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("walk the embedded static files: %w", err)
	}
	return res, nil
}

// fetchAsset gets a static file as a browser accepting gzip does and
// checks that the answer is the file (decompressed when gzip-encoded).
func fetchAsset(get func(string, ...string) (*httptest.ResponseRecorder, time.Duration), path string) (Asset, error) {
	rec, _ := get(path, "Accept-Encoding", "gzip")
	if rec.Code != http.StatusOK {
		return Asset{}, fmt.Errorf("GET %s: %d", path, rec.Code)
	}
	body := rec.Body.Bytes()
	raw := body
	enc := rec.Header().Get("Content-Encoding")
	if enc == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return Asset{}, fmt.Errorf("GET %s: gzip answer: %w", path, err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return Asset{}, fmt.Errorf("GET %s: gzip answer: %w", path, err)
		}
	}
	want, err := static.FS.ReadFile(strings.TrimPrefix(path, "/static/"))
	if err != nil {
		return Asset{}, fmt.Errorf("GET %s: not an embedded file: %w", path, err)
	}
	if !bytes.Equal(raw, want) {
		return Asset{}, fmt.Errorf("GET %s: answered %d bytes that are not the file's %d", path, len(raw), len(want))
	}
	return Asset{Path: path, Bytes: len(body), Gzip: gzipSize(raw), Encoding: enc}, nil
}

func gzipSize(b []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 6) // a valid level: no error
	zw.Write(b)
	zw.Close()
	return buf.Len()
}
