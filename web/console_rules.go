package web

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// rulesView gathers the Rules section of g: inbound and outbound rules,
// each in position order, with their counters and same-direction
// neighbours.
func (con *console) rulesView(c echo.Context, g store.Group) (views.RulesView, error) {
	rules, err := con.db.Rules(c.Request().Context(), consoleOrg(c), g.Zone, g.ID)
	if err != nil {
		return views.RulesView{}, err
	}
	counters := con.enf.Counters(g.ID)
	v := views.RulesView{Group: g, CSRF: csrfToken(c), Add: views.NewRuleForm()}
	for _, r := range rules {
		row := views.RuleRow{Rule: r, Packets: counters[r.ID].Packets, Bytes: counters[r.ID].Bytes}
		if r.Direction == store.Outbound {
			v.Outbound = append(v.Outbound, row)
		} else {
			v.Inbound = append(v.Inbound, row)
		}
	}
	for _, rows := range [][]views.RuleRow{v.Inbound, v.Outbound} {
		for i := range rows {
			if i > 0 {
				rows[i].Prev = rows[i-1].Rule.Position
			}
			if i+1 < len(rows) {
				rows[i].Next = rows[i+1].Rule.Position
			}
		}
	}
	if g.EnableDefaultSecurity {
		v.SMTP = store.SMTPRules(g.ID)
	}
	return v, nil
}

// rulesAnswer answers a rule change: for htmx the Rules section alone (the
// same component the page embeds); without JavaScript a 303 back to the
// page on success, or the whole page with the errors.
func (con *console) rulesAnswer(c echo.Context, g store.Group, status int, edit func(*views.RulesView)) error {
	// Reload: the change moved the group's generation and maybe its rules.
	g, err := con.db.Group(c.Request().Context(), consoleOrg(c), g.Zone, g.ID)
	if err != nil {
		return err
	}
	if status < 300 && !isHX(c) {
		return redirect(c, groupURL(g)+"#rules")
	}
	v, err := con.rulesView(c, g)
	if err != nil {
		return err
	}
	if edit != nil {
		edit(&v)
	}
	if isHX(c) {
		if status < 300 {
			// The nftables preview listens for this and reloads itself.
			c.Response().Header().Set("HX-Trigger", "rules-changed")
		}
		return con.renderHTML(c, status, views.RulesSection(v))
	}
	d, err := con.groupDetail(c, g)
	if err != nil {
		return err
	}
	d.Rules = v
	return con.renderGroup(c, status, d)
}

func ruleForm(c echo.Context) views.RuleForm {
	return views.RuleForm{
		Direction: c.FormValue("direction"), Action: c.FormValue("action"), Protocol: c.FormValue("protocol"),
		IPRange: c.FormValue("ip_range"), PortFrom: c.FormValue("dest_port_from"), PortTo: c.FormValue("dest_port_to"),
	}
}

// handleRules handles "GET /security-groups/:id/rules": the Rules section
// (htmx, e.g. cancelling an edit), or the page without JavaScript.
func (con *console) handleRules(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	if !isHX(c) {
		return redirect(c, groupURL(g)+"#rules")
	}
	return con.rulesAnswer(c, g, http.StatusOK, nil)
}

// handleRuleAdd handles "POST /security-groups/:id/rules": the rule is
// appended.
func (con *console) handleRuleAdd(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	f := ruleForm(c)
	in, ok := f.Validate()
	status := http.StatusUnprocessableEntity
	if ok {
		_, err = con.db.CreateRule(c.Request().Context(), consoleOrg(c), g.Zone, g.ID, in)
		if status, ok = refusal(err); !ok {
			if err != nil {
				return err
			}
			return con.rulesAnswer(c, g, http.StatusOK, func(v *views.RulesView) {
				v.Flash = views.Flash{Kind: "success", Message: "Rule added."}
			})
		}
		f.SetStoreError(err)
	}
	return con.rulesAnswer(c, g, status, func(v *views.RulesView) { v.Add = f })
}

// handleRuleEditForm handles "GET /security-groups/:id/rules/:rule/edit":
// the rule's row becomes a form.
func (con *console) handleRuleEditForm(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	r, err := con.db.Rule(c.Request().Context(), consoleOrg(c), g.Zone, g.ID, c.Param("rule"))
	if err != nil {
		return err
	}
	if isHX(c) {
		return con.rulesAnswer(c, g, http.StatusOK, func(v *views.RulesView) { v.Edit = views.RuleFormOf(r) })
	}
	d, err := con.groupDetail(c, g)
	if err != nil {
		return err
	}
	d.Rules.Edit = views.RuleFormOf(r)
	return con.renderGroup(c, http.StatusOK, d)
}

// handleRuleEdit handles "POST /security-groups/:id/rules/:rule".
func (con *console) handleRuleEdit(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	ctx, org := c.Request().Context(), consoleOrg(c)
	old, err := con.db.Rule(ctx, org, g.Zone, g.ID, c.Param("rule"))
	if err != nil {
		return err
	}
	f := ruleForm(c)
	f.ID, f.Direction = old.ID, string(old.Direction)
	in, ok := f.Validate()
	status := http.StatusUnprocessableEntity
	if ok {
		_, err = con.db.UpdateRule(ctx, org, g.Zone, g.ID, old.ID, store.RulePatch{
			Action: &in.Action, Protocol: &in.Protocol, IPRange: &in.IPRange,
			DestPortFrom: in.DestPortFrom, DestPortTo: in.DestPortTo,
		})
		if status, ok = refusal(err); !ok {
			if err != nil {
				return err
			}
			return con.rulesAnswer(c, g, http.StatusOK, func(v *views.RulesView) {
				v.Flash = views.Flash{Kind: "success", Message: "Rule " + strconv.Itoa(old.Position) + " saved."}
			})
		}
		f.SetStoreError(err)
	}
	return con.rulesAnswer(c, g, status, func(v *views.RulesView) { v.Edit = f })
}

// handleRuleMove handles "POST /security-groups/:id/rules/:rule/move": to
// a position (drag and drop), or up/down, which swaps the rule with its
// neighbour of the same direction.
func (con *console) handleRuleMove(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	ctx, org := c.Request().Context(), consoleOrg(c)
	rules, err := con.db.Rules(ctx, org, g.Zone, g.ID)
	if err != nil {
		return err
	}
	id := c.Param("rule")
	idx := -1
	for i, r := range rules {
		if r.ID == id {
			idx = i
		}
	}
	if idx < 0 {
		return &store.Error{Code: store.CodeNotFound, Message: "resource is not found", Resource: store.ResourceRule, ResourceID: id}
	}
	target := 0
	switch dir := c.FormValue("direction"); {
	case c.FormValue("position") != "":
		n, err := strconv.Atoi(c.FormValue("position"))
		if err != nil || n < 1 || n > len(rules) {
			return con.rulesAnswer(c, g, http.StatusUnprocessableEntity, func(v *views.RulesView) {
				v.Flash = views.Flash{Kind: "error", Message: "A position is a number from 1 to " + strconv.Itoa(len(rules)) + "."}
			})
		}
		target = n
	case dir == "up":
		for i := idx - 1; i >= 0; i-- {
			if rules[i].Direction == rules[idx].Direction {
				target = rules[i].Position
				break
			}
		}
	case dir == "down":
		for i := idx + 1; i < len(rules); i++ {
			if rules[i].Direction == rules[idx].Direction {
				target = rules[i].Position
				break
			}
		}
	default:
		return con.rulesAnswer(c, g, http.StatusUnprocessableEntity, func(v *views.RulesView) {
			v.Flash = views.Flash{Kind: "error", Message: "Say where to move the rule: up, down or a position."}
		})
	}
	if target != 0 && target != rules[idx].Position {
		_, err = con.db.MoveRule(ctx, org, g.Zone, g.ID, id, target)
		if status, ok := refusal(err); ok {
			return con.rulesAnswer(c, g, status, func(v *views.RulesView) {
				v.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
			})
		}
		if err != nil {
			return err
		}
	}
	return con.rulesAnswer(c, g, http.StatusOK, nil)
}

// handleRuleDelete handles "POST /security-groups/:id/rules/:rule/delete".
func (con *console) handleRuleDelete(c echo.Context) error {
	g, err := con.group(c)
	if err != nil {
		return err
	}
	if err := con.db.DeleteRule(c.Request().Context(), consoleOrg(c), g.Zone, g.ID, c.Param("rule")); err != nil {
		return err
	}
	return con.rulesAnswer(c, g, http.StatusOK, func(v *views.RulesView) {
		v.Flash = views.Flash{Kind: "success", Message: "Rule deleted."}
	})
}
