package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

const orgKey = "rampart.org"

// registerAPIRoutes registers the Instance API v1 routes and the legacy API
// of the original documentation.
func (s *Server) registerAPIRoutes() {
	z := s.e.Group("/instance/v1/zones/:zone", s.requireToken)
	z.GET("/security_groups", s.handleGroupList)
	z.POST("/security_groups", s.handleGroupCreate)
	// Static segments win over parameters in Echo's router, so "default"
	// is never taken for a group ID.
	z.GET("/security_groups/default/rules", s.handleDefaultRules)
	z.GET("/security_groups/:id", s.handleGroupGet)
	z.PATCH("/security_groups/:id", s.handleGroupPatch)
	z.PUT("/security_groups/:id", s.handleGroupPut)
	z.DELETE("/security_groups/:id", s.handleGroupDelete)
	z.GET("/security_groups/:id/events", s.handleGroupEvents)
	z.GET("/security_groups/:id/ruleset", s.handleGroupRuleset)
	z.GET("/security_groups/:id/rules", s.handleRuleList)
	z.POST("/security_groups/:id/rules", s.handleRuleCreate)
	z.PUT("/security_groups/:id/rules", s.handleRuleSetAll)
	z.GET("/security_groups/:id/rules/:rule", s.handleRuleGet)
	z.PATCH("/security_groups/:id/rules/:rule", s.handleRulePatch)
	z.DELETE("/security_groups/:id/rules/:rule", s.handleRuleDelete)
	z.GET("/servers", s.handleServerList)
	z.POST("/servers", s.handleServerCreate)
	z.GET("/servers/:server", s.handleServerGet)
	z.PATCH("/servers/:server", s.handleServerPatch)
	z.DELETE("/servers/:server", s.handleServerDelete)

	// Route-level middleware: a middleware group at the root would also
	// catch every unknown console path.
	auth := []echo.MiddlewareFunc{s.requireToken, s.legacyZone}
	s.e.GET("/organizations", s.handleOrganizations, auth...)
	s.e.GET("/security_groups", s.handleGroupList, auth...)
	s.e.POST("/security_groups", s.handleLegacyGroupCreate, auth...)
	s.e.GET("/security_groups/:id", s.handleGroupGet, auth...)
	s.e.PUT("/security_groups/:id", s.handleGroupPatch, auth...)
	s.e.PATCH("/security_groups/:id", s.handleGroupPatch, auth...)
	s.e.DELETE("/security_groups/:id", s.handleGroupDelete, auth...)
}

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
}

func (b groupCreateBody) input() store.GroupInput {
	in := store.GroupInput{
		Name: b.Name, Description: b.Description, Tags: b.Tags, Stateful: b.Stateful,
		InboundDefaultPolicy: store.Policy(b.InboundDefaultPolicy), OutboundDefaultPolicy: store.Policy(b.OutboundDefaultPolicy),
		EnableDefaultSecurity: true, // SMTP blocked unless asked, as at Scaleway
	}
	if b.EnableDefaultSecurity != nil {
		in.EnableDefaultSecurity = *b.EnableDefaultSecurity
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
}

func (b groupPatchBody) patch() store.GroupPatch {
	p := store.GroupPatch{
		Name: b.Name, Description: b.Description, Tags: b.Tags, Stateful: b.Stateful,
		EnableDefaultSecurity: b.EnableDefaultSecurity, OrganizationDefault: b.ProjectDefault,
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
	for _, p := range []*string{b.Project, b.Organization} {
		if p != nil && *p != "" && *p != orgOf(c) {
			return &store.Error{Code: store.CodeForbidden, Message: "a group cannot move to another project", Resource: "project", ResourceID: *p}
		}
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
	return c.JSON(http.StatusOK, map[string]any{"security_group": s.groupJSON(g)})
}

// handleGroupDelete handles "DELETE /instance/v1/zones/:zone/security_groups/:id".
func (s *Server) handleGroupDelete(c echo.Context) error {
	if err := s.db.DeleteGroup(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id")); err != nil {
		return err
	}
	return noContent(c)
}

// noContent answers 204 with an empty body; the JSON content type is kept
// as Scaleway sends it.
func noContent(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	c.Response().WriteHeader(http.StatusNoContent)
	return nil
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

// handleRuleList handles "GET /instance/v1/zones/:zone/security_groups/:id/rules".
func (s *Server) handleRuleList(c echo.Context) error {
	page, err := queryPage(c)
	if err != nil {
		return err
	}
	rules, total, err := s.db.ListRules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), page)
	if err != nil {
		return err
	}
	return list(c, "rules", s.rulesJSON(c.Param("id"), zoneOf(c), rules), total)
}

type ruleBody struct {
	ID           *string         `json:"id"`
	Protocol     *string         `json:"protocol"`
	Direction    *string         `json:"direction"`
	Action       *string         `json:"action"`
	IPRange      *string         `json:"ip_range"`
	DestIPRange  *string         `json:"dest_ip_range"`
	DestPortFrom *int            `json:"dest_port_from"`
	DestPortTo   *int            `json:"dest_port_to"`
	Position     *int            `json:"position"`
	Editable     *bool           `json:"editable"`
	Zone         json.RawMessage `json:"zone"`
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (b ruleBody) input() store.RuleInput {
	return store.RuleInput{
		ID:        deref(b.ID),
		Direction: store.Direction(deref(b.Direction)), Protocol: store.Protocol(deref(b.Protocol)),
		Action: store.Policy(deref(b.Action)), IPRange: deref(b.IPRange), DestIPRange: deref(b.DestIPRange),
		DestPortFrom: b.DestPortFrom, DestPortTo: b.DestPortTo, Position: deref(b.Position),
		NotEditable: b.Editable != nil && !*b.Editable,
	}
}

// handleRuleCreate handles "POST /instance/v1/zones/:zone/security_groups/:id/rules".
func (s *Server) handleRuleCreate(c echo.Context) error {
	var b ruleBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	r, err := s.db.CreateRule(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), b.input())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/instance/v1/zones/"+zoneOf(c)+"/security_groups/"+r.GroupID+"/rules/"+r.ID)
	return c.JSON(http.StatusCreated, map[string]any{"rule": ruleToJSON(r, zoneOf(c))})
}

// handleRuleSetAll handles "PUT /instance/v1/zones/:zone/security_groups/:id/rules".
func (s *Server) handleRuleSetAll(c echo.Context) error {
	var b struct {
		Rules []ruleBody `json:"rules"`
	}
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	ins := make([]store.RuleInput, len(b.Rules))
	for i, r := range b.Rules {
		ins[i] = r.input()
	}
	rules, err := s.db.SetRules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), ins)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"rules": s.rulesJSON(c.Param("id"), zoneOf(c), rules)})
}

// handleRuleGet handles "GET /instance/v1/zones/:zone/security_groups/:id/rules/:rule".
func (s *Server) handleRuleGet(c echo.Context) error {
	r, err := s.db.Rule(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), c.Param("rule"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"rule": ruleToJSON(r, zoneOf(c))})
}

// handleRulePatch handles "PATCH /instance/v1/zones/:zone/security_groups/:id/rules/:rule".
func (s *Server) handleRulePatch(c echo.Context) error {
	var b ruleBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	p := store.RulePatch{
		Direction: (*store.Direction)(b.Direction), Protocol: (*store.Protocol)(b.Protocol), Action: (*store.Policy)(b.Action),
		IPRange: b.IPRange, DestIPRange: b.DestIPRange, DestPortFrom: b.DestPortFrom, DestPortTo: b.DestPortTo,
		Position: b.Position,
	}
	r, err := s.db.UpdateRule(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), c.Param("rule"), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"rule": ruleToJSON(r, zoneOf(c))})
}

// handleRuleDelete handles "DELETE /instance/v1/zones/:zone/security_groups/:id/rules/:rule".
func (s *Server) handleRuleDelete(c echo.Context) error {
	if err := s.db.DeleteRule(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), c.Param("rule")); err != nil {
		return err
	}
	return noContent(c)
}

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

type serverBody struct {
	Name          *string         `json:"name"`
	Organization  *string         `json:"organization"`
	Project       *string         `json:"project"`
	Tags          *[]string       `json:"tags"`
	SecurityGroup json.RawMessage `json:"security_group"`
	Type          *string         `json:"type"`
	Interface     *string         `json:"interface"`
	Addresses     *[]string       `json:"addresses"`
	Local         *bool           `json:"local"`
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
		Addresses: deref(b.Addresses), Local: deref(b.Local), SecurityGroupID: deref(sg),
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
	if err := s.db.DeleteServer(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("server")); err != nil {
		return err
	}
	return noContent(c)
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

type eventJSON struct {
	ID         int64           `json:"id"`
	Resource   string          `json:"resource"`
	ResourceID string          `json:"resource_id"`
	Action     string          `json:"action"`
	Actor      string          `json:"actor"`
	At         string          `json:"at"`
	Before     json.RawMessage `json:"before"`
	After      json.RawMessage `json:"after"`
	Generation int64           `json:"generation"`
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
