package web

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/views"
)

func (con *console) renderTokens(c echo.Context, status int, f views.TokenForm, created *views.NewToken) error {
	p := con.page(c, "API tokens", "tokens")
	org := consoleOrg(c)
	tokens, err := con.db.Tokens(c.Request().Context(), org)
	if err != nil {
		return err
	}
	return render(c, status, views.TokensPage(p, tokens, f, created, org))
}

// handleTokensPage handles "GET /tokens".
func (con *console) handleTokensPage(c echo.Context) error {
	return con.renderTokens(c, http.StatusOK, views.TokenForm{}, nil)
}

// handleTokenGenerateForm handles "POST /tokens": the answer shows the
// secret once, so it is a page rather than a redirect (and is never
// cached).
func (con *console) handleTokenGenerateForm(c echo.Context) error {
	f := views.TokenForm{Description: c.FormValue("description")}
	t, secret, err := con.db.CreateToken(c.Request().Context(), consoleOrg(c), f.Description)
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.TokenFormFields...)
		return con.renderTokens(c, formStatus(err), f, nil)
	}
	if err != nil {
		return err
	}
	return con.renderTokens(c, http.StatusOK, views.TokenForm{}, &views.NewToken{Token: t, Secret: secret})
}

// handleTokenRevokeForm handles "POST /tokens/:key/revoke".
func (con *console) handleTokenRevokeForm(c echo.Context) error {
	key := c.Param("key")
	if err := con.db.DeleteToken(c.Request().Context(), consoleOrg(c), key); err != nil {
		return err
	}
	con.flash(c, "success", fmt.Sprintf("Token %s revoked.", key))
	return redirect(c, "/tokens")
}
