package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
)

// The console's protection against cross-site requests has two layers:
//
//   - a change must come from the console's own origin, which browsers tell
//     with Sec-Fetch-Site (or, without it, Origin): net/http's
//     CrossOriginProtection refuses the rest. Another port of the same host
//     is same-site but not same-origin, so a page there cannot post here;
//   - a change carries a token bound to the session: an HMAC of the session
//     token under a server secret. A cookie planted by a neighbour
//     (cookie tossing) cannot supply it, unlike the double-submit cookie
//     this replaces. Signed out, the token is bound to a random cookie
//     instead; it guards only the sign-in form, which the origin check
//     covers as well.
const (
	csrfField  = "_csrf"
	csrfHeader = "X-CSRF-Token"
	ctxCSRF    = "csrf"
	anonCookie = "rampart_pre"
)

var errCrossOrigin = echo.NewHTTPError(http.StatusForbidden,
	"This form has expired or did not come from the console. Reload the page and try again.")

// csrfBinding returns what the request's token is bound to: the session
// token when there is a session, else the anonymous cookie (created here).
func (con *console) csrfBinding(c echo.Context) string {
	if t := con.sessions.Token(c.Request().Context()); t != "" {
		return "session\x00" + t
	}
	secure := con.secureRequest(c.Request())
	name := cookieName(anonCookie, secure)
	if ck, err := c.Request().Cookie(name); err == nil && len(ck.Value) >= 22 {
		return "anonymous\x00" + ck.Value
	}
	v := rand.Text()
	http.SetCookie(c.Response(), &http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true,
		Secure: secure, SameSite: http.SameSiteStrictMode})
	// The request goes on with it, so that this page's token matches the
	// cookie it has just set.
	c.Request().AddCookie(&http.Cookie{Name: name, Value: v})
	return "anonymous\x00" + v
}

// csrfTokenFor derives the token bound to binding.
func (con *console) csrfTokenFor(binding string) string {
	m := hmac.New(sha256.New, con.csrfKey)
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrf checks every console request that may change something and makes
// the token available to the pages (csrfToken).
func (con *console) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		token := con.csrfTokenFor(con.csrfBinding(c))
		c.Set(ctxCSRF, token)
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		if err := con.origins.Check(r); err != nil {
			return errCrossOrigin
		}
		if err := r.ParseForm(); err != nil {
			if mbe := new(http.MaxBytesError); errors.As(err, &mbe) {
				return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
			}
			return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
		}
		sent := r.Header.Get(csrfHeader)
		if sent == "" {
			sent = r.PostForm.Get(csrfField)
		}
		if !hmac.Equal([]byte(sent), []byte(token)) {
			return errCrossOrigin
		}
		return next(c)
	}
}

// rotateCSRF is called once the session token changed (sign-in): the
// pages rendered from then on carry the token bound to the new session.
func (con *console) rotateCSRF(c echo.Context) {
	c.Set(ctxCSRF, con.csrfTokenFor(con.csrfBinding(c)))
}
