package bench

import (
	"bytes"
	"compress/gzip"
	"context"
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
// it returns the session's cookies.
func SignIn(ctx context.Context, env *WebEnv) ([]*http.Cookie, error) {
	const email, password = "bench@example.com", "correct horse battery staple"
	if _, err := env.DS.DB.CreateUser(ctx, env.DS.Org.ID, email, password); err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(env.TS.URL + "/login")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	u, _ := url.Parse(env.TS.URL)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "rampart_csrf" {
			csrf = ck.Value
		}
	}
	resp, err = c.PostForm(env.TS.URL+"/login", url.Values{"email": {email}, "password": {password}, "_csrf": {csrf}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("sign in: %s, want 303", resp.Status)
	}
	return jar.Cookies(u), nil
}

var assetRe = regexp.MustCompile(`(?:src|href)="(/static/[^"?]+\.(?:js|css))(?:\?[^"]*)?"`)

// MeasureConsole times the server side of the list page (every group of
// the dataset) and of the detail page of the 100-rule group, n times each
// through the real handler with a signed-in session, and sizes the assets.
func MeasureConsole(ctx context.Context, env *WebEnv, n int) (ConsoleResults, error) {
	var res ConsoleResults
	cookies, err := SignIn(ctx, env)
	if err != nil {
		return res, err
	}
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
		env.Srv.ServeHTTP(rec, req)
		return rec, time.Since(t0)
	}
	detailPath := "/security-groups/" + env.Detail.ID
	for i := -1; i < n; i++ {
		for _, p := range []struct {
			path string
			s    *Sample
			size *int
		}{{"/security-groups", &res.List, &res.ListBytes}, {detailPath, &res.Detail, &res.DetailBytes}} {
			rec, d := get(p.path)
			if rec.Code != http.StatusOK {
				return res, fmt.Errorf("GET %s: %d: %.300s", p.path, rec.Code, rec.Body.String())
			}
			if i >= 0 {
				*p.s = append(*p.s, d)
			}
			*p.size = rec.Body.Len()
			if i < 0 && p.path == detailPath {
				page := rec.Body.String()
				rules, err := env.DS.DB.Rules(ctx, env.DS.Org.ID, env.DS.Zone, env.Detail.ID)
				if err != nil {
					return res, err
				}
				for _, r := range rules {
					if r.Editable && strings.Contains(page, r.ID) {
						res.DetailRules++
					}
				}
				for _, m := range assetRe.FindAllStringSubmatch(page, -1) {
					if slices.ContainsFunc(res.Page, func(a Asset) bool { return a.Path == m[1] }) {
						continue
					}
					rec, _ := get(m[1], "Accept-Encoding", "gzip")
					if rec.Code != http.StatusOK {
						return res, fmt.Errorf("GET %s: %d", m[1], rec.Code)
					}
					body := rec.Body.Bytes()
					raw := body
					enc := rec.Header().Get("Content-Encoding")
					if enc == "gzip" {
						zr, err := gzip.NewReader(bytes.NewReader(body))
						if err != nil {
							return res, err
						}
						raw, _ = io.ReadAll(zr)
					}
					res.Page = append(res.Page, Asset{Path: m[1], Bytes: len(body), Gzip: gzipSize(raw), Encoding: enc})
				}
			}
			if i < 0 && p.path == "/security-groups" {
				page := rec.Body.String()
				for _, g := range env.DS.Groups {
					if strings.Contains(page, g.ID) {
						res.ListGroups++
					}
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
	return res, err
}

func gzipSize(b []byte) int {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, 6)
	zw.Write(b)
	zw.Close()
	return buf.Len()
}
