package web

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// rulesView makes the Rules section of g from its rules as the store lists
// them (read with g, at one generation) and their counters: the SMTP
// rules, then inbound and outbound, each in position order, with their
// counters, same-direction neighbours and what the rule analysis finds
// about them.
func (con *console) rulesView(c echo.Context, g store.Group, rules []store.Rule, choices store.RemoteChoices, counters map[string]store.RuleCounter) views.RulesView {
	return con.rulesViewOf(c, g, rules, choices, counters, false)
}

// rulesViewOf is rulesView, for a draft's rules when draft (no counters:
// a draft is not in the kernel).
func (con *console) rulesViewOf(c echo.Context, g store.Group, rules []store.Rule, choices store.RemoteChoices, counters map[string]store.RuleCounter, draft bool) views.RulesView {
	findings, note := con.findingsOf(c.Request().Context(), g, rules)
	v := views.RulesView{Group: g, CSRF: csrfToken(c), Add: views.NewRuleForm(), Draft: draft, AnalysisNote: note, Choices: choices,
		Defaults: views.DefaultCounters(counters)}
	for _, r := range rules {
		rc := counters[r.ID]
		row := views.RuleRow{Rule: r, Packets: rc.Packets, Bytes: rc.Bytes, LastMatched: rc.LastMatched, Findings: findings[r.ID]}
		switch {
		case !r.Editable:
			v.SMTP = append(v.SMTP, row)
		case r.Direction == store.Outbound:
			v.Outbound = append(v.Outbound, row)
		default:
			v.Inbound = append(v.Inbound, row)
		}
	}
	for _, rows := range [][]views.RuleRow{v.Inbound, v.Outbound} {
		for i := range rows {
			rows[i].First, rows[i].Last = i == 0, i == len(rows)-1
		}
	}
	return v
}

// rulesAnswer answers a rule change (or a GET of the section) with one
// read: for htmx the Rules section alone (the same component the page
// embeds); without JavaScript a 303 back to the page on success, or the
// whole page with the errors.
func (con *console) rulesAnswer(c echo.Context, status int, edit func(*views.RulesView)) error {
	ref := con.groupRef(c)
	if status < 300 && !isHX(c) {
		if edit != nil {
			// The change's message (with what the analysis finds about
			// the rule) goes with the redirect.
			d, err := con.db.GroupDetail(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, 0)
			if err != nil {
				return err
			}
			v := con.rulesView(c, d.Group, d.Rules, d.Choices, d.Counters)
			edit(&v)
			if v.Flash.Message != "" {
				con.flash(c, v.Flash.Kind, v.Flash.Message)
			}
		}
		return redirect(c, views.GroupURL(ref, "")+"#rules")
	}
	if !isHX(c) {
		d, err := con.groupDetail(c)
		if err != nil {
			return err
		}
		if edit != nil {
			edit(&d.Rules)
		}
		return con.renderGroup(c, status, d)
	}
	d, err := con.db.GroupDetail(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, 0)
	if err != nil {
		return err
	}
	v := con.rulesView(c, d.Group, d.Rules, d.Choices, d.Counters)
	if edit != nil {
		edit(&v)
	}
	if status < 300 {
		// The nftables preview listens for this and reloads itself.
		c.Response().Header().Set("HX-Trigger", "rules-changed")
	}
	return render(c, status, views.RulesSection(v))
}

// ruleForm reads the rule form and the input it describes; ports that are
// not numbers are refused by the store's ParsePort, naming the field.
func ruleForm(c echo.Context) (views.RuleForm, store.RuleInput, error) {
	f := views.RuleForm{
		Direction: c.FormValue("direction"), Action: c.FormValue("action"), Protocol: c.FormValue("protocol"),
		IPRange: c.FormValue("ip_range"), PortFrom: c.FormValue("dest_port_from"), PortTo: c.FormValue("dest_port_to"),
		Description: c.FormValue("description"), IPSetID: c.FormValue("ip_set_id"), RemoteGroupID: c.FormValue("remote_security_group_id"),
		Log: checked(c, "log"),
	}
	in := store.RuleInput{Direction: store.Direction(f.Direction), Action: store.Policy(f.Action),
		Protocol: store.Protocol(f.Protocol), IPRange: f.IPRange, Description: &f.Description,
		IPSetID: &f.IPSetID, RemoteGroupID: &f.RemoteGroupID, Log: &f.Log}
	// The form shows a range, a set and a group together: a set or a
	// group chosen is the rule's remote side, and the range left in its
	// field (0.0.0.0/0 at first) is not.
	if f.IPSetID != "" || f.RemoteGroupID != "" {
		in.IPRange = ""
	}
	var err error
	if in.DestPortFrom, err = store.ParsePort("dest_port_from", f.PortFrom); err != nil {
		return f, in, err
	}
	in.DestPortTo, err = store.ParsePort("dest_port_to", f.PortTo)
	return f, in, err
}

// handleRulesPartial handles "GET /security-groups/:id/rules": the Rules
// section (htmx, e.g. cancelling an edit), or the page without JavaScript.
func (con *console) handleRulesPartial(c echo.Context) error {
	if !isHX(c) {
		ref := con.groupRef(c)
		if _, err := con.db.Group(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID); err != nil {
			return err
		}
		return redirect(c, views.GroupURL(ref, "")+"#rules")
	}
	return con.rulesAnswer(c, http.StatusOK, nil)
}

// handleRuleAddForm handles "POST /security-groups/:id/rules": the rule is
// appended.
func (con *console) handleRuleAddForm(c echo.Context) error {
	ref := con.groupRef(c)
	f, in, err := ruleForm(c)
	var r store.Rule
	if err == nil {
		r, err = con.db.CreateRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, in)
	}
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.RuleFormFields...)
		return con.rulesAnswer(c, formStatus(err), func(v *views.RulesView) { v.Add = f })
	}
	if err != nil {
		return err
	}
	return con.rulesAnswer(c, http.StatusOK, func(v *views.RulesView) { v.Flash = changeFlash(*v, r, "added") })
}

// handleRuleEditPage handles "GET /security-groups/:id/rules/:rule/edit":
// the rule's row becomes a form.
func (con *console) handleRuleEditPage(c echo.Context) error {
	ref := con.groupRef(c)
	r, err := con.db.Rule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, c.Param("rule"))
	if err != nil {
		return err
	}
	return con.rulesAnswer(c, http.StatusOK, func(v *views.RulesView) { v.Edit = views.RuleFormOf(r) })
}

// handleRuleEditForm handles "POST /security-groups/:id/rules/:rule". The
// direction stays: the row is in its direction's table.
func (con *console) handleRuleEditForm(c echo.Context) error {
	ref := con.groupRef(c)
	f, in, err := ruleForm(c)
	f.ID = c.Param("rule")
	var r store.Rule
	if err == nil {
		r, err = con.db.UpdateRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, f.ID, store.RulePatch{
			Action: &in.Action, Protocol: &in.Protocol, IPRange: &in.IPRange, IPSetID: in.IPSetID, RemoteGroupID: in.RemoteGroupID,
			DestPortFrom: orZero(in.DestPortFrom), DestPortTo: orZero(in.DestPortTo), Description: in.Description,
			Log: in.Log,
		})
	}
	if refused(err) {
		f.Errors, f.Message = views.ErrorsOf(err, views.RuleFormFields...)
		return con.rulesAnswer(c, formStatus(err), func(v *views.RulesView) { v.Edit = f })
	}
	if err != nil {
		return err
	}
	return con.rulesAnswer(c, http.StatusOK, func(v *views.RulesView) { v.Flash = changeFlash(*v, r, "saved") })
}

// orZero makes an empty port of a form a port of 0, which a patch reads
// as "unset".
func orZero(p *int) *int {
	if p == nil {
		return new(int)
	}
	return p
}

// handleRuleMoveForm handles "POST /security-groups/:id/rules/:rule/move":
// to a position (drag and drop), or up/down, which swaps the rule with its
// neighbour of the same direction.
func (con *console) handleRuleMoveForm(c echo.Context) error {
	ref := con.groupRef(c)
	ctx, org, id := c.Request().Context(), consoleOrg(c), c.Param("rule")
	var err error
	switch pos, dir := c.FormValue("position"), c.FormValue("direction"); {
	case pos != "":
		n, perr := strconv.Atoi(pos)
		if perr != nil {
			n = 0 // the store names the field
		}
		_, err = con.db.MoveRule(ctx, org, ref.Zone, ref.ID, id, n)
	case dir == "up":
		_, err = con.db.MoveRuleStep(ctx, org, ref.Zone, ref.ID, id, -1)
	case dir == "down":
		_, err = con.db.MoveRuleStep(ctx, org, ref.Zone, ref.ID, id, 1)
	default:
		_, err = con.db.MoveRuleStep(ctx, org, ref.Zone, ref.ID, id, 0)
	}
	if refused(err) {
		return con.rulesAnswer(c, formStatus(err), func(v *views.RulesView) {
			v.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
		})
	}
	if err != nil {
		return err
	}
	return con.rulesAnswer(c, http.StatusOK, nil)
}

// handleRuleDeleteForm handles "POST /security-groups/:id/rules/:rule/delete".
func (con *console) handleRuleDeleteForm(c echo.Context) error {
	ref := con.groupRef(c)
	if err := con.db.DeleteRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, c.Param("rule")); err != nil {
		return err
	}
	return con.rulesAnswer(c, http.StatusOK, func(v *views.RulesView) {
		v.Flash = views.Flash{Kind: "success", Message: "Rule deleted."}
	})
}
