package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// safeNext keeps a post-sign-in redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") {
		return "/security-groups"
	}
	return next
}

// handleLoginPage handles "GET /login".
func (con *console) handleLoginPage(c echo.Context) error {
	if con.sessions.GetString(c.Request().Context(), sessUser) != "" {
		return redirect(c, "/security-groups")
	}
	return con.renderHTML(c, http.StatusOK, views.LoginPage(csrfToken(c), views.LoginForm{Next: c.QueryParam("next")}))
}

// handleLogin handles "POST /login": the session token is renewed on
// sign-in, so that a token planted before it is worthless after.
func (con *console) handleLogin(c echo.Context) error {
	f := views.LoginForm{Email: strings.TrimSpace(c.FormValue("email")), Password: c.FormValue("password"), Next: c.FormValue("next")}
	if !f.Validate() {
		return con.renderHTML(c, http.StatusUnprocessableEntity, views.LoginPage(csrfToken(c), f))
	}
	ctx := c.Request().Context()
	keys := []string{"account " + strings.ToLower(f.Email), "address " + c.RealIP()}
	if wait := con.throttle.wait(keys...); wait > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		f.Message = fmt.Sprintf("Too many failed sign-ins. Try again in %d seconds.", int(wait.Seconds()+0.999))
		return con.renderHTML(c, http.StatusTooManyRequests, views.LoginPage(csrfToken(c), f))
	}
	u, err := con.db.Authenticate(ctx, f.Email, f.Password)
	if store.ErrorCode(err) == store.CodeUnauthorized {
		con.throttle.fail(keys...)
		f.Message = "Wrong email or password."
		return con.renderHTML(c, http.StatusUnauthorized, views.LoginPage(csrfToken(c), f))
	}
	if err != nil {
		return err
	}
	if err := con.sessions.RenewToken(ctx); err != nil {
		return err
	}
	con.sessions.Put(ctx, sessUser, u.ID)
	return redirect(c, safeNext(f.Next))
}

// handleLogout handles "POST /logout".
func (con *console) handleLogout(c echo.Context) error {
	if err := con.sessions.Destroy(c.Request().Context()); err != nil {
		return err
	}
	return redirect(c, "/login")
}
