package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// handleLegacyGroupCreate handles "POST /security_groups" of the legacy
// API. Its documented example names an organization that is not the
// caller's; the token decides the organization, so the group is created in
// the caller's own organization whatever the body names.
func (s *Server) handleLegacyGroupCreate(c echo.Context) error {
	var b groupCreateBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	in := b.input()
	in.ProjectID = ""
	return s.createGroup(c, in)
}

// handleOrganizations handles "GET /organizations" of the legacy API: the
// caller's organization and its users.
func (s *Server) handleOrganizations(c echo.Context) error {
	ctx := c.Request().Context()
	org, err := s.db.Organization(ctx, orgOf(c))
	if err != nil {
		return err
	}
	users, err := s.db.Users(ctx, org.ID)
	if err != nil {
		return err
	}
	type userJSON struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}
	us := make([]userJSON, len(users))
	for i, u := range users {
		us[i] = userJSON{ID: u.ID, Email: u.Email}
	}
	return c.JSON(http.StatusOK, map[string]any{"organizations": []map[string]any{{
		"id": org.ID, "name": org.Name, "users": us,
	}}})
}
