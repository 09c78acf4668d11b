package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// safeNext keeps a post-sign-in redirect on this site: a path of this
// origin, parsed as a browser would read it. Browsers drop tabs and
// newlines from URLs and read a backslash as a slash, so "/\t/evil.example"
// is "//evil.example" to them: any such character refuses the target.
func safeNext(next string) string {
	const fallback = "/security-groups"
	for _, r := range next {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return fallback
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(u.Path, "/login") {
		return fallback
	}
	return next
}

// handleLoginPage handles "GET /login".
func (con *console) handleLoginPage(c echo.Context) error {
	if con.sessions.GetString(c.Request().Context(), sessUser) != "" {
		return redirect(c, "/security-groups")
	}
	return render(c, http.StatusOK, views.LoginPage(csrfToken(c), views.LoginForm{Next: c.QueryParam("next")}))
}

// handleLoginForm handles "POST /login": the session token is renewed on
// sign-in, so that a token planted before it is worthless after.
func (con *console) handleLoginForm(c echo.Context) error {
	f := views.LoginForm{Email: strings.TrimSpace(c.FormValue("email")), Password: c.FormValue("password"), Next: c.FormValue("next")}
	ctx := c.Request().Context()
	refund, wait, err := con.db.Reserve(ctx, signInBuckets(f.Email, c.RealIP())...)
	if err != nil {
		return err
	}
	if wait > 0 {
		return con.tooManySignIns(c, f, wait)
	}
	u, err := con.authenticate(ctx, f.Email, f.Password)
	if errors.Is(err, errBusy) {
		con.refund(ctx, refund)
		return con.tooManySignIns(c, f, time.Second)
	}
	if store.ErrorCode(err) == store.CodeUnauthorized {
		f.Message = "Wrong email or password."
		return render(c, http.StatusUnauthorized, views.LoginPage(csrfToken(c), f))
	}
	con.refund(ctx, refund)
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, "email", "password")
		return render(c, formStatus(err), views.LoginPage(csrfToken(c), f))
	}
	if err != nil {
		return err
	}
	if err := con.sessions.RenewToken(ctx); err != nil {
		return err
	}
	con.sessions.Put(ctx, sessUser, u.ID)
	con.rotateCSRF(c)
	return redirect(c, safeNext(f.Next))
}

// refund gives back the attempts of a sign-in that did not fail on its
// password. A refund that fails costs the account one attempt, no more:
// it is logged, and the sign-in goes on.
func (con *console) refund(ctx context.Context, refund func(context.Context) error) {
	if err := refund(ctx); err != nil {
		con.log.Warn("sign-in throttle", "err", err)
	}
}

// errBusy says that no password check could start in time.
var errBusy = errors.New("sign-in busy")

// authenticate checks a password within the console's hash slots, waiting
// up to hashWait for one.
func (con *console) authenticate(ctx context.Context, email, password string) (store.User, error) {
	t := time.NewTimer(hashWait)
	defer t.Stop()
	select {
	case con.hashSlots <- struct{}{}:
	case <-t.C:
		return store.User{}, errBusy
	case <-ctx.Done():
		return store.User{}, ctx.Err()
	}
	defer func() { <-con.hashSlots }()
	if con.testHookHashing != nil {
		con.testHookHashing()
	}
	return con.db.Authenticate(ctx, email, password)
}

// tooManySignIns answers 429 with when to retry.
func (con *console) tooManySignIns(c echo.Context, f views.LoginForm, wait time.Duration) error {
	secs := int(wait.Seconds() + 0.999)
	c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
	f.Message = fmt.Sprintf("Too many sign-ins. Try again in %d seconds.", secs)
	return render(c, http.StatusTooManyRequests, views.LoginPage(csrfToken(c), f))
}

// handleLogoutForm handles "POST /logout".
func (con *console) handleLogoutForm(c echo.Context) error {
	if err := con.sessions.Destroy(c.Request().Context()); err != nil {
		return err
	}
	return redirect(c, "/login")
}
