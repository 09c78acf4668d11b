package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// handleGroupList handles "GET /instance/v1/zones/:zone/security_groups".
func (s *Server) handleGroupList(c echo.Context) error {
	f := store.GroupFilter{Name: c.QueryParam("name"), Tags: splitComma(c.QueryParam("tags"))}
	var err error
	if f.Page, err = queryPage(c); err != nil {
		return err
	}
	if f.ProjectDefault, err = queryBool(c, "project_default"); err != nil {
		return err
	}
	org := orgOf(c)
	for _, p := range []string{c.QueryParam("project"), c.QueryParam("organization")} {
		if p != "" {
			f.ProjectID = p
		}
	}
	if !s.db.HasZone(zoneOf(c)) {
		return list(c, "security_groups", []groupJSON{}, 0)
	}
	groups, total, err := s.db.Groups(c.Request().Context(), org, zoneOf(c), f)
	if err != nil {
		return err
	}
	out := make([]groupJSON, len(groups))
	for i, g := range groups {
		out[i] = s.groupJSON(g)
	}
	return list(c, "security_groups", out, total)
}

type groupCreateBody struct {
	Name                  string   `json:"name"`
	Description           string   `json:"description"`
	Organization          *string  `json:"organization"`
	Project               *string  `json:"project"`
	Tags                  []string `json:"tags"`
	OrganizationDefault   *bool    `json:"organization_default"`
	ProjectDefault        *bool    `json:"project_default"`
	Stateful              bool     `json:"stateful"`
	InboundDefaultPolicy  string   `json:"inbound_default_policy"`
	OutboundDefaultPolicy string   `json:"outbound_default_policy"`
	EnableDefaultSecurity *bool    `json:"enable_default_security"`
	LogDefaultDrops       *bool    `json:"log_default_drops" rampart:"keep"`
}

func (b groupCreateBody) input() store.GroupInput {
	in := store.GroupInput{
		Name: b.Name, Description: b.Description, Tags: b.Tags, Stateful: b.Stateful,
		InboundDefaultPolicy: store.Policy(b.InboundDefaultPolicy), OutboundDefaultPolicy: store.Policy(b.OutboundDefaultPolicy),
		LogDefaultDrops: b.LogDefaultDrops,
	}
	// Scaleway blocks SMTP unless asked (enable_default_security absent
	// means true).
	if b.EnableDefaultSecurity != nil {
		in.SMTPEnabled = !*b.EnableDefaultSecurity
	}
	if b.ProjectDefault != nil {
		in.OrganizationDefault = *b.ProjectDefault
	} else if b.OrganizationDefault != nil {
		in.OrganizationDefault = *b.OrganizationDefault
	}
	if b.Project != nil {
		in.ProjectID = *b.Project
	} else if b.Organization != nil {
		in.ProjectID = *b.Organization
	}
	return in
}

// handleGroupCreate handles "POST /instance/v1/zones/:zone/security_groups".
func (s *Server) handleGroupCreate(c echo.Context) error {
	var b groupCreateBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	return s.createGroup(c, b.input())
}

func (s *Server) createGroup(c echo.Context, in store.GroupInput) error {
	g, err := s.db.CreateGroup(c.Request().Context(), orgOf(c), zoneOf(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", groupPath(c, g))
	return c.JSON(http.StatusCreated, map[string]any{"security_group": s.groupJSON(g)})
}

func groupPath(c echo.Context, g store.Group) string {
	if c.Param("zone") == "" {
		return "/security_groups/" + g.ID
	}
	return "/instance/v1/zones/" + g.Zone + "/security_groups/" + g.ID
}

// handleGroupGet handles "GET /instance/v1/zones/:zone/security_groups/:id".
func (s *Server) handleGroupGet(c echo.Context) error {
	g, err := s.db.Group(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"security_group": s.groupJSON(g)})
}

type groupPatchBody struct {
	Name                  *string   `json:"name"`
	Description           *string   `json:"description"`
	Tags                  *[]string `json:"tags"`
	Stateful              *bool     `json:"stateful"`
	InboundDefaultPolicy  *string   `json:"inbound_default_policy"`
	OutboundDefaultPolicy *string   `json:"outbound_default_policy"`
	OrganizationDefault   *bool     `json:"organization_default"`
	ProjectDefault        *bool     `json:"project_default"`
	EnableDefaultSecurity *bool     `json:"enable_default_security"`
	Organization          *string   `json:"organization"`
	Project               *string   `json:"project"`
	// LogDefaultDrops is Rampart's: absent, it keeps its value.
	LogDefaultDrops *bool `json:"log_default_drops" rampart:"keep"`
}

func (b groupPatchBody) patch() store.GroupPatch {
	p := store.GroupPatch{
		Name: b.Name, Description: b.Description, Tags: b.Tags, Stateful: b.Stateful,
		OrganizationDefault: b.ProjectDefault, LogDefaultDrops: b.LogDefaultDrops,
	}
	if b.EnableDefaultSecurity != nil {
		enabled := !*b.EnableDefaultSecurity
		p.SMTPEnabled = &enabled
	}
	if b.Project != nil {
		p.ProjectID = b.Project
	} else if b.Organization != nil {
		p.ProjectID = b.Organization
	}
	if p.OrganizationDefault == nil {
		p.OrganizationDefault = b.OrganizationDefault
	}
	if b.InboundDefaultPolicy != nil {
		v := store.Policy(*b.InboundDefaultPolicy)
		p.InboundDefaultPolicy = &v
	}
	if b.OutboundDefaultPolicy != nil {
		v := store.Policy(*b.OutboundDefaultPolicy)
		p.OutboundDefaultPolicy = &v
	}
	return p
}

// handleGroupPatch handles "PATCH /instance/v1/zones/:zone/security_groups/:id"
// and the legacy API's partial "PUT /security_groups/:id".
func (s *Server) handleGroupPatch(c echo.Context) error {
	var b groupPatchBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	return s.updateGroup(c, b)
}

// handleGroupPut handles "PUT /instance/v1/zones/:zone/security_groups/:id":
// a full object, of which the writable fields are applied.
func (s *Server) handleGroupPut(c echo.Context) error {
	var b groupPatchBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Name == nil {
		return store.Invalid("name", "required", "a full update carries the name")
	}
	return s.updateGroup(c, b)
}

func (s *Server) updateGroup(c echo.Context, b groupPatchBody) error {
	g, err := s.db.UpdateGroup(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), b.patch())
	if err != nil && b.ProjectDefault != nil {
		// The store names the field it keeps; the client sent the other
		// name of the same flag.
		err = renameField(err, "organization_default", "project_default")
	}
	if err != nil {
		return err
	}
	if p := pendingOf(c); p != nil {
		g.Pending = p
	}
	return c.JSON(http.StatusOK, map[string]any{"security_group": s.groupJSON(g)})
}

// handleGroupDelete handles "DELETE /instance/v1/zones/:zone/security_groups/:id".
func (s *Server) handleGroupDelete(c echo.Context) error {
	if _, err := s.db.DeleteGroup(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id")); err != nil {
		return err
	}
	return noContent(c)
}

// handleDefaultRules handles "GET /instance/v1/zones/:zone/security_groups/default/rules":
// the rules every group starts with, which are the SMTP blocking rules.
func (s *Server) handleDefaultRules(c echo.Context) error {
	if !s.db.HasZone(zoneOf(c)) {
		return &store.Error{Code: store.CodeNotFound, Message: "zone not found", Resource: "zone", ResourceID: zoneOf(c)}
	}
	rules := store.SMTPRules("default")
	out := make([]ruleJSON, len(rules))
	for i, r := range rules {
		out[i] = ruleToJSON(r, zoneOf(c))
	}
	return list(c, "rules", out, len(out))
}

// handleGroupEvents handles "GET /instance/v1/zones/:zone/security_groups/:id/events",
// Rampart's audit log of a group, newest first.
func (s *Server) handleGroupEvents(c echo.Context) error {
	perPage, err := queryInt(c, "per_page")
	if err != nil {
		return err
	}
	events, err := s.db.Events(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), perPage)
	if err != nil {
		return err
	}
	out := make([]eventJSON, len(events))
	for i, e := range events {
		out[i] = eventJSON{ID: e.ID, Resource: e.Resource, ResourceID: e.ResourceID, Action: e.Action, Actor: e.Actor,
			At: scwTime(e.At), Before: e.Before, After: e.After, Generation: e.Generation}
	}
	return list(c, "events", out, len(out))
}

// handleGroupRuleset handles "GET /instance/v1/zones/:zone/security_groups/:id/ruleset",
// Rampart's view of the nftables chains the group compiles to.
func (s *Server) handleGroupRuleset(c echo.Context) error {
	g, err := s.db.Group(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	mode, reason := s.enf.Mode()
	state, detail := s.enf.GroupState(g.ID, g.Generation)
	return c.JSON(http.StatusOK, map[string]any{
		"ruleset": s.enf.GroupText(g.ID), "mode": mode, "mode_reason": reason,
		"state": state, "state_detail": detail, "generation": g.Generation,
	})
}
