package web

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/static"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// Session keys and context keys of the console.
const (
	sessUser      = "user_id"
	sessZone      = "zone"
	sessFlash     = "flash"
	sessFlashKind = "flash_kind"

	ctxPage = "console.page"
	ctxOrg  = "console.org"
	ctxUser = "console.user"

	sessionCookie = "rampart_session"
)

// contentSecurityPolicy allows nothing inline: scripts, styles and images
// come from the console itself.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// console serves the web console: pages and htmx partials for people, with
// sessions and protection against cross-site requests. Its handlers are
// named for what they answer: …Page a whole page, …Form a posted form
// (303 on success, else the page or section again with the store's errors
// beside their fields), …Partial an htmx fragment.
type console struct {
	srv      *Server
	db       *store.DB
	enf      Enforcer
	log      *slog.Logger
	sessions *scs.SessionManager
	csrfKey  []byte                      // signs the CSRF tokens (see csrf.go)
	origins  *http.CrossOriginProtection // refuses changes from other origins
	// hashSlots bounds the password hashes computed at once: each takes
	// 64 MiB and tens of milliseconds (40 parallel sign-ins once took the
	// process from 1.2 to 2.5 GiB).
	hashSlots chan struct{}
	// testHookHashing, when set (tests only), runs while a hash slot is held.
	testHookHashing func()

	touchMu sync.Mutex
	touched map[string]time.Time // session token → when its expiry was last moved
}

func newConsole(s *Server, csrfKey []byte) *console {
	sm := scs.New()
	sm.Store = s.db // *store.DB implements scs.CtxStore
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	return &console{srv: s, db: s.db, enf: s.enf, log: s.log, sessions: sm, csrfKey: csrfKey, touched: map[string]time.Time{},
		origins: http.NewCrossOriginProtection(), hashSlots: make(chan struct{}, maxHashes)}
}

func (con *console) secureRequest(r *http.Request) bool { return con.srv.secureRequest(r) }

func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// securityHeaders sets the CSP and friends, and keeps pages (which may show
// a secret once) out of caches.
func (con *console) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		setSecurityHeaders(h)
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// loadSession is scs's LoadAndSave made for Echo: the session is committed
// just before the header is written, so that error pages rendered by the
// HTTPErrorHandler commit it too. The cookie is written here rather than by
// scs, because whether it is Secure (and named __Host-) depends on the
// request: --secure-cookies, or a trusted proxy saying it took HTTPS.
func (con *console) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		secure := con.secureRequest(r)
		name := cookieName(sessionCookie, secure)
		var token string
		if ck, err := r.Cookie(name); err == nil {
			token = ck.Value
		}
		ctx, err := con.sessions.Load(r.Context(), token)
		if err != nil {
			return fmt.Errorf("load session: %w", err)
		}
		loaded := con.sessionValues(ctx)
		c.SetRequest(r.WithContext(ctx))
		c.Response().Header().Add("Vary", "Cookie")
		c.Response().Before(func() {
			ctx := c.Request().Context()
			ck := &http.Cookie{Name: name, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
			switch con.sessions.Status(ctx) {
			case scs.Modified:
				var expiry time.Time
				if t := con.sessions.Token(ctx); t != "" && t == token && maps.Equal(loaded, con.sessionValues(ctx)) {
					// scs marks every session with an idle timeout
					// modified, to move its expiry; writing the data
					// read at the start back would undo what a request
					// beside this one (a poll beside a form) wrote.
					if expiry, err = con.touchSession(ctx, t); err != nil || expiry.IsZero() {
						if err != nil {
							con.log.Error("touch session", "err", err)
						}
						return
					}
				} else if token, expiry, err = con.sessions.Commit(ctx); err != nil {
					con.log.Error("commit session", "err", err)
					return
				}
				ck.Value, ck.Expires = token, time.Unix(expiry.Unix()+1, 0).UTC()
				ck.MaxAge = int(time.Until(expiry).Seconds() + 1)
			case scs.Destroyed:
				ck.Expires, ck.MaxAge = time.Unix(1, 0), -1
			default:
				return
			}
			c.Response().Header().Add("Set-Cookie", ck.String())
			c.Response().Header().Add("Cache-Control", `no-cache="Set-Cookie"`)
		})
		return next(c)
	}
}

// sessionValues are the values of the request's session, as text, to
// tell whether a request changed them.
func (con *console) sessionValues(ctx context.Context) map[string]string {
	keys := con.sessions.Keys(ctx)
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = fmt.Sprint(con.sessions.Get(ctx, k))
	}
	return out
}

// touchInterval is how often a session that requests leave unchanged has
// its expiry moved in the store: its idle timeout is hours, and polls come
// every few seconds.
const touchInterval = time.Minute

// touchSession moves the expiry of session token to the idle timeout from
// now (within its lifetime), at most once per touchInterval; it returns
// the new expiry, or zero when it was moved a moment ago.
func (con *console) touchSession(ctx context.Context, token string) (time.Time, error) {
	now := time.Now()
	con.touchMu.Lock()
	if last, ok := con.touched[token]; ok && now.Sub(last) < touchInterval {
		con.touchMu.Unlock()
		return time.Time{}, nil
	}
	con.touched[token] = now
	if len(con.touched) > 10_000 {
		for t, at := range con.touched {
			if now.Sub(at) >= touchInterval {
				delete(con.touched, t)
			}
		}
	}
	con.touchMu.Unlock()
	expiry := now.Add(con.sessions.IdleTimeout)
	if d := con.sessions.Deadline(ctx); d.Before(expiry) {
		expiry = d
	}
	return expiry, con.db.TouchSession(ctx, token, expiry)
}

// requireUser sends signed-out people to the sign-in page and otherwise
// prepares what every page shows: organization, zone, enforcer mode.
func (con *console) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		uid := con.sessions.GetString(ctx, sessUser)
		if uid == "" {
			return con.toLogin(c)
		}
		u, org, err := con.db.Account(ctx, uid)
		if store.ErrorCode(err) == store.CodeNotFound {
			if err := con.sessions.Destroy(ctx); err != nil {
				return err
			}
			return con.toLogin(c)
		}
		if err != nil {
			return err
		}
		zone := con.sessions.GetString(ctx, sessZone)
		if q := c.QueryParam("zone"); q != "" && con.db.HasZone(q) {
			if q != zone {
				con.sessions.Put(ctx, sessZone, q)
			}
			zone = q
		}
		if !con.db.HasZone(zone) {
			zone = con.db.DefaultZone()
		}
		mode, reason := con.enf.Mode()
		c.SetRequest(c.Request().WithContext(store.WithActor(ctx, "user "+u.Email)))
		c.Set(ctxOrg, org.ID)
		c.Set(ctxUser, u.ID)
		c.Set(ctxOperator, u.Operator)
		p := views.Page{
			Org: org.Name, Email: u.Email, Zone: zone, Zones: con.db.Zones,
			Mode: mode, ModeReason: reason, CSRF: csrfToken(c), Path: "/security-groups", Operator: u.Operator,
		}
		// Every page mentions the changes awaiting confirmation; a form or
		// a fragment has no frame to mention them in.
		if c.Request().Method == http.MethodGet && !isHX(c) {
			if p.Pending, err = con.db.PendingNotices(ctx, org.ID); err != nil {
				return err
			}
		}
		c.Set(ctxPage, p)
		return next(c)
	}
}

// toLogin answers a signed-out request: 303 to the sign-in page, or an
// HX-Redirect for htmx, which would otherwise swap the sign-in page into a
// section.
func (con *console) toLogin(c echo.Context) error {
	if isHX(c) {
		c.Response().Header().Set("HX-Redirect", "/login")
		return c.NoContent(http.StatusOK)
	}
	target := "/login"
	if c.Request().Method == http.MethodGet {
		target += "?next=" + url.QueryEscape(c.Request().URL.RequestURI())
	}
	return c.Redirect(http.StatusSeeOther, target)
}

// handleStatic handles "GET /static/*": the embedded assets, cached for a
// year (pages link them with ?v=<hash of the assets>).
func (con *console) handleStatic(c echo.Context) error {
	name := strings.TrimPrefix(c.Param("*"), "/")
	if name == "" || strings.HasSuffix(name, "/") || name == "static.go" {
		return echo.ErrNotFound
	}
	if fi, err := fs.Stat(static.FS, name); err != nil || fi.IsDir() {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeFileFS(c.Response(), c.Request(), static.FS, name)
	return nil
}

func isHX(c echo.Context) bool { return c.Request().Header.Get("HX-Request") == "true" }

func csrfToken(c echo.Context) string {
	t, _ := c.Get(ctxCSRF).(string)
	return t
}

func consoleOrg(c echo.Context) string {
	o, _ := c.Get(ctxOrg).(string)
	return o
}

// consoleUser is the ID of the signed-in user.
func consoleUser(c echo.Context) string {
	u, _ := c.Get(ctxUser).(string)
	return u
}

// withConfirm reads a form's "Roll back unless I confirm within 60 s":
// when checked, the change the request makes to the group waits for its
// confirmation, and the server rolls it back past the deadline. It
// reports whether it was checked.
func withConfirm(c echo.Context, groupID string) (bool, error) {
	v := c.FormValue("confirm_within")
	if v == "" {
		return false, nil
	}
	d, err := store.ParseConfirmWithin(v)
	if err != nil {
		return true, err
	}
	ctx, _ := store.WithConfirmation(c.Request().Context(), groupID, d)
	c.SetRequest(c.Request().WithContext(ctx))
	return true, nil
}

// confirmNote is what a change made with a confirmation window adds to
// its flash message.
func confirmNote(confirm bool) string {
	if !confirm {
		return ""
	}
	return fmt.Sprintf(" Confirm it within %d s, or it rolls back by itself.", views.ConsoleConfirmSeconds)
}

// zone is the zone a console request is about: its ?zone= when served
// here (every link and form to an object carries it), else the zone of the
// session.
func (con *console) zone(c echo.Context) string {
	p, _ := c.Get(ctxPage).(views.Page)
	return p.Zone
}

// page returns the layout's data for a page of section, with the flash
// message left by the previous request.
func (con *console) page(c echo.Context, title, section string) views.Page {
	p, _ := c.Get(ctxPage).(views.Page)
	p.Title, p.Section = title, section
	switch section {
	case "servers":
		p.Path = "/servers"
	case "tokens":
		p.Path = "/tokens"
	case "ip-sets":
		p.Path = "/ip-sets"
	case "hosts", "organizations", "users", "grants":
		p.Path = "/operator/" + section
	default:
		p.Path = "/security-groups"
	}
	ctx := c.Request().Context()
	if msg := con.sessions.PopString(ctx, sessFlash); msg != "" {
		p.Flash = views.Flash{Kind: con.sessions.PopString(ctx, sessFlashKind), Message: msg}
	}
	return p
}

// flash leaves a message for the next page.
func (con *console) flash(c echo.Context, kind, msg string) {
	ctx := c.Request().Context()
	con.sessions.Put(ctx, sessFlash, msg)
	con.sessions.Put(ctx, sessFlashKind, kind)
}

// render renders a component through templ's pooled buffer.
func render(c echo.Context, status int, comp templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := comp.Render(c.Request().Context(), buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

func checked(c echo.Context, name string) bool {
	v := c.FormValue(name)
	return v == "on" || v == "true" || v == "1"
}

func redirect(c echo.Context, target string) error {
	return c.Redirect(http.StatusSeeOther, target)
}

// inZones runs find in the request's zone and, for a page reached without
// ?zone= (a typed or old link), in the other zones too; another
// organization's object is found in none.
func inZones[T any](con *console, c echo.Context, find func(ctx context.Context, org, zone string) (T, error)) (T, error) {
	ctx, org, first := c.Request().Context(), consoleOrg(c), con.zone(c)
	v, err := find(ctx, org, first)
	if store.ErrorCode(err) != store.CodeNotFound || c.QueryParam("zone") != "" {
		return v, err
	}
	for _, z := range con.db.Zones {
		if z == first {
			continue
		}
		if v2, err2 := find(ctx, org, z); err2 == nil {
			return v2, nil
		}
	}
	return v, err
}

// allServers lists every server of the zone.
func (con *console) allServers(ctx context.Context, org, zone string) ([]store.Server, error) {
	servers, _, err := con.db.Servers(ctx, org, zone, store.ServerFilter{All: true})
	return servers, err
}

// allGroups lists every group of the zone.
func (con *console) allGroups(ctx context.Context, org, zone string) ([]store.Group, error) {
	groups, _, err := con.db.Groups(ctx, org, zone, store.GroupFilter{All: true})
	return groups, err
}
