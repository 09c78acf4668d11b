package web

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
)

// handleRuleList handles "GET /instance/v1/zones/:zone/security_groups/:id/rules":
// the rules as JSON, or, for a client that asks for text/plain, the
// editable rules in the text form (store.FormatRules).
func (s *Server) handleRuleList(c echo.Context) error {
	if acceptsText(c.Request()) {
		rules, err := s.db.Rules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"))
		if err != nil {
			return err
		}
		return rulesText(c, rules)
	}
	page, err := queryPage(c)
	if err != nil {
		return err
	}
	rules, total, err := s.db.ListRules(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), page)
	if err != nil {
		return err
	}
	out, err := s.rulesJSON(c, rules)
	if err != nil {
		return err
	}
	return list(c, "rules", out, total)
}

// ruleBody is a rule as clients send it. Fields tagged rampart:"keep" are
// Rampart's (see "Rampart fields" in api_decode.go): absent, they keep the
// stored value.
type ruleBody struct {
	ID           *string         `json:"id"`
	Protocol     *string         `json:"protocol"`
	Direction    *string         `json:"direction"`
	Action       *string         `json:"action"`
	IPRange      *string         `json:"ip_range"`
	DestIPRange  *string         `json:"dest_ip_range" rampart:"keep"`
	DestPortFrom *int            `json:"dest_port_from"`
	DestPortTo   *int            `json:"dest_port_to"`
	Position     *int            `json:"position"`
	Editable     *bool           `json:"editable"`
	Zone         json.RawMessage `json:"zone"`
	Description  *string         `json:"description" rampart:"keep"`
	// A rule gives one of ip_range, ip_set_id and remote_security_group_id.
	IPSetID       *string `json:"ip_set_id" rampart:"keep"`
	RemoteGroupID *string `json:"remote_security_group_id" rampart:"keep"`
	Log           *bool   `json:"log" rampart:"keep"`
}

func (b ruleBody) input() store.RuleInput {
	return store.RuleInput{
		ID:        deref(b.ID),
		Direction: store.Direction(deref(b.Direction)), Protocol: store.Protocol(deref(b.Protocol)),
		Action: store.Policy(deref(b.Action)), IPRange: deref(b.IPRange), DestIPRange: b.DestIPRange,
		DestPortFrom: b.DestPortFrom, DestPortTo: b.DestPortTo, Position: deref(b.Position),
		NotEditable: b.Editable != nil && !*b.Editable, Description: b.Description,
		IPSetID: b.IPSetID, RemoteGroupID: b.RemoteGroupID, Log: b.Log,
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

// handleRuleSetAll handles "PUT /instance/v1/zones/:zone/security_groups/:id/rules":
// a JSON set-all, or, with Content-Type text/plain, the rules' text form.
// The answer is the resulting list, as JSON or (Accept: text/plain) text.
func (s *Server) handleRuleSetAll(c echo.Context) error {
	if isText(c.Request()) {
		text, err := readText(c)
		if err != nil {
			return err
		}
		rules, err := s.db.SetRulesText(c.Request().Context(), orgOf(c), zoneOf(c), c.Param("id"), text)
		if err != nil {
			return err
		}
		return s.setAllAnswer(c, rules)
	}
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
	return s.setAllAnswer(c, rules)
}

// setAllAnswer answers a set-all with the resulting rules.
func (s *Server) setAllAnswer(c echo.Context, rules []store.Rule) error {
	if acceptsText(c.Request()) {
		return rulesText(c, rules)
	}
	out, err := s.rulesJSON(c, rules)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"rules": out})
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
		Position: b.Position, Description: b.Description, IPSetID: b.IPSetID, RemoteGroupID: b.RemoteGroupID, Log: b.Log,
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
