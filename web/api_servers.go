package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// handleServerList handles "GET /instance/v1/zones/:zone/servers".
func (s *Server) handleServerList(c echo.Context) error {
	f := store.ServerFilter{Name: c.QueryParam("name"), Tags: splitComma(c.QueryParam("tags"))}
	var err error
	if f.Page, err = queryPage(c); err != nil {
		return err
	}
	if !s.db.HasZone(zoneOf(c)) {
		return list(c, "servers", []serverJSON{}, 0)
	}
	servers, total, err := s.db.Servers(c.Request().Context(), orgOf(c), zoneOf(c), f)
	if err != nil {
		return err
	}
	out := make([]serverJSON, len(servers))
	for i, sv := range servers {
		out[i] = serverToJSON(sv)
	}
	return list(c, "servers", out, total)
}

// serverBody is a server as clients send it; fields tagged rampart:"keep"
// are Rampart's (see "Rampart fields" in api_decode.go).
type serverBody struct {
	Name          *string         `json:"name"`
	Organization  *string         `json:"organization"`
	Project       *string         `json:"project"`
	Tags          *[]string       `json:"tags"`
	SecurityGroup json.RawMessage `json:"security_group"`
	Type          *string         `json:"type" rampart:"keep"`
	Interface     *string         `json:"interface" rampart:"keep"`
	Addresses     *[]string       `json:"addresses" rampart:"keep"`
	Local         *bool           `json:"local" rampart:"keep"`
	Host          *string         `json:"host" rampart:"keep"`
}

// securityGroupID reads security_group as an ID string (the SDK's create
// form) or as {"id": "…"} (its update form).
func (b serverBody) securityGroupID() (*string, error) {
	raw := strings.TrimSpace(string(b.SecurityGroup))
	if raw == "" || raw == "null" {
		return nil, nil
	}
	var id string
	if err := json.Unmarshal(b.SecurityGroup, &id); err == nil {
		return &id, nil
	}
	var obj struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b.SecurityGroup, &obj); err != nil {
		return nil, store.Invalid("security_group", "format", `expected a group ID or {"id": "…"}`)
	}
	return &obj.ID, nil
}

// handleServerCreate handles "POST /instance/v1/zones/:zone/servers".
func (s *Server) handleServerCreate(c echo.Context) error {
	var b serverBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	sg, err := b.securityGroupID()
	if err != nil {
		return err
	}
	in := store.ServerInput{
		Name: deref(b.Name), Tags: deref(b.Tags), Type: store.ServerType(deref(b.Type)), Interface: deref(b.Interface),
		Addresses: deref(b.Addresses), Local: deref(b.Local), SecurityGroupID: deref(sg), Host: deref(b.Host),
	}
	if b.Project != nil {
		in.ProjectID = *b.Project
	} else if b.Organization != nil {
		in.ProjectID = *b.Organization
	}
	sv, err := s.db.CreateServer(c.Request().Context(), orgOf(c), zoneOf(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/instance/v1/zones/"+sv.Zone+"/servers/"+sv.ID)
	return c.JSON(http.StatusCreated, map[string]any{"server": serverToJSON(sv)})
}

// handleServerGet handles "GET /instance/v1/zones/:zone/servers/:server".
func (s *Server) handleServerGet(c echo.Context) error {
	sv, err := s.db.Server(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("server"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"server": serverToJSON(sv)})
}

// handleServerPatch handles "PATCH /instance/v1/zones/:zone/servers/:server".
func (s *Server) handleServerPatch(c echo.Context) error {
	var b serverBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	sg, err := b.securityGroupID()
	if err != nil {
		return err
	}
	p := store.ServerPatch{
		Name: b.Name, Tags: b.Tags, Interface: b.Interface, Addresses: b.Addresses, Local: b.Local, SecurityGroupID: sg,
		Host: b.Host,
	}
	if b.Type != nil {
		t := store.ServerType(*b.Type)
		p.Type = &t
	}
	sv, err := s.db.UpdateServer(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("server"), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"server": serverToJSON(sv)})
}

// handleServerDelete handles "DELETE /instance/v1/zones/:zone/servers/:server".
func (s *Server) handleServerDelete(c echo.Context) error {
	if _, err := s.db.DeleteServer(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("server")); err != nil {
		return err
	}
	return noContent(c)
}
