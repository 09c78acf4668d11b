package web

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

const orgKey = "rampart.org"

// requireToken authenticates X-Auth-Token and scopes the request to the
// token's organization.
func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		secret := strings.TrimSpace(c.Request().Header.Get("X-Auth-Token"))
		if secret == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "authentication is denied: no X-Auth-Token header")
		}
		tok, err := s.db.TokenBySecret(c.Request().Context(), secret)
		if err != nil {
			return err
		}
		c.Set(orgKey, tok.OrganizationID)
		r := c.Request()
		c.SetRequest(r.WithContext(store.WithActor(r.Context(), "token "+tok.AccessKey)))
		return next(c)
	}
}

// legacyZone serves the legacy API in the default zone.
func (s *Server) legacyZone(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set("zone", s.db.DefaultZone())
		return next(c)
	}
}

func orgOf(c echo.Context) string { return c.Get(orgKey).(string) }

func zoneOf(c echo.Context) string {
	if z, ok := c.Get("zone").(string); ok {
		return z
	}
	return c.Param("zone")
}
