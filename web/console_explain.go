package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// The console's packet tester and rule findings. The tester's forms post
// like any other, but change nothing: their answer is the Test a packet
// section (htmx) or the page with it, rather than a redirect.

// testerForm reads the packet tester's form.
func testerForm(c echo.Context) views.TesterForm {
	return views.TesterForm{
		Direction: c.FormValue("direction"), Protocol: c.FormValue("protocol"),
		IP: strings.TrimSpace(c.FormValue("ip")), LocalIP: strings.TrimSpace(c.FormValue("local_ip")),
		Port: c.FormValue("port"), State: c.FormValue("state"), FromServer: c.FormValue("from_server"),
	}
}

// body turns the form into the API's request. A port that is not a number
// is refused by the store's ParsePort; the caller joins that refusal with
// the other fields' (see joinInvalid), so that every bad field is named.
func testerBody(f views.TesterForm) (packetBody, error) {
	port, err := store.ParsePort("port", f.Port)
	return packetBody{Direction: f.Direction, Protocol: f.Protocol, IP: f.IP, LocalIP: f.LocalIP, Port: port,
		State: f.State}, err
}

// refusedForm puts a refusal beside the tester form's fields, and tells
// whether it was one.
func refusedForm(f *views.TesterForm, err error) bool {
	if !refused(err) {
		return false
	}
	f.Errors, f.Message = views.ErrorsOf(err, views.TesterFormFields...)
	return true
}

// groupTester tests the form's packet on group g, read with its rules at
// one generation. A refused packet gives the form with its errors and the
// status to answer with.
func (con *console) groupTester(c echo.Context, g store.Group, rules []store.Rule, f views.TesterForm) (views.GroupTester, int, error) {
	t := views.GroupTester{Group: g, CSRF: csrfToken(c), Form: f}
	eg, err := con.srv.explainGroup(c.Request().Context(), g, rules)
	if err != nil {
		return t, 0, err
	}
	b, portErr := testerBody(f)
	p, err := b.packet()
	var d explain.Decision
	if err = joinInvalid(portErr, err); err == nil {
		d, err = eg.Evaluate(p)
		err = renameFields(err, packetFieldNames)
	}
	if refusedForm(&t.Form, err) {
		return t, formStatus(err), nil
	}
	if err != nil {
		return t, 0, err
	}
	side := sideOf("", g, d, func(id string) string { return "#rule-" + id })
	t.Answer = &views.PacketAnswer{Verdict: d.Verdict, Summary: summaryOf(d), DecidedRule: d.DecidedBy.RuleID,
		Sides: []views.PacketSide{side}}
	return t, http.StatusOK, nil
}

// handleGroupEvaluateForm handles "POST /security-groups/:id/evaluate":
// the group's packet tester. htmx gets the Test a packet section with the
// answer (the page's script marks the deciding rule's row); without
// JavaScript, the page with the answer and the row marked.
func (con *console) handleGroupEvaluateForm(c echo.Context) error {
	ref, ctx, org := con.groupRef(c), c.Request().Context(), consoleOrg(c)
	f := testerForm(c)
	if isHX(c) {
		g, rules, err := con.db.GroupRules(ctx, org, ref.Zone, ref.ID)
		if err != nil {
			return err
		}
		t, status, err := con.groupTester(c, g, rules, f)
		if err != nil {
			return err
		}
		return render(c, status, views.GroupTesterSection(t))
	}
	sd, err := con.db.GroupDetail(ctx, org, ref.Zone, ref.ID, 50)
	if err != nil {
		return err
	}
	d := con.detail(c, sd)
	t, status, err := con.groupTester(c, sd.Group, sd.Rules, f)
	if err != nil {
		return err
	}
	d.Tester = t
	if t.Answer != nil {
		d.Rules.Decided = t.Answer.DecidedRule
	}
	return con.renderGroup(c, status, d)
}

// serverTester returns the Test a packet section of server s, with the
// zone's other servers to test a packet from.
func (con *console) serverTester(c echo.Context, s store.Server) (views.ServerTester, error) {
	servers, err := con.allServers(c.Request().Context(), consoleOrg(c), s.Zone)
	if err != nil {
		return views.ServerTester{}, err
	}
	t := views.ServerTester{Server: s, CSRF: csrfToken(c), Packet: views.NewTesterForm(), Flow: views.NewTesterForm()}
	for _, p := range servers {
		if p.ID != s.ID {
			t.Peers = append(t.Peers, p)
		}
	}
	return t, nil
}

// handleServerEvaluateForm handles "POST /servers/:server/evaluate": the
// server's packet tester, for a packet to or from an address, or with
// from_server, a packet from another server. Answered as the group's.
func (con *console) handleServerEvaluateForm(c echo.Context) error {
	ctx, org, zone, id := c.Request().Context(), consoleOrg(c), con.zone(c), c.Param("server")
	form, err := c.FormParams()
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "unreadable form")
	}
	// Read first: a server that is not there answers 404, whatever the form.
	sgs, err := con.db.ServerGroups(ctx, org, zone, id)
	if err != nil {
		return err
	}
	s := sgs[0].Server
	t, err := con.serverTester(c, s)
	if err != nil {
		return err
	}
	f := testerForm(c)
	b, portErr := testerBody(f)
	status := http.StatusOK
	if form.Has("from_server") {
		t.Flow = f
		path, err := con.srv.evaluateBetween(ctx, org, zone, id, f.FromServer, func() (explain.Flow, error) {
			fl, err := b.flow()
			return fl, joinInvalid(portErr, err)
		})
		switch {
		case refusedForm(&t.Flow, err):
			status = formStatus(err)
		case err != nil:
			return err
		default:
			t.Answer = pathAnswer(path)
		}
	} else {
		t.Packet = f
		d, err := con.srv.evaluateServer(c.Request().Context(), sgs[0], func() (explain.Packet, error) {
			p, err := b.packet()
			return p, joinInvalid(portErr, err)
		})
		switch {
		case refusedForm(&t.Packet, err):
			status = formStatus(err)
		case err != nil:
			return err
		default:
			g := sgs[0].Group
			side := sideOf("", g, d, groupRuleHref(g))
			t.Answer = &views.PacketAnswer{Verdict: d.Verdict, Summary: summaryOf(d), Sides: []views.PacketSide{side}}
		}
	}
	if isHX(c) {
		return render(c, status, views.ServerTesterSection(t))
	}
	return con.renderServer(c, status, views.ServerFormOf(s), t)
}

// groupRuleHref links the rules of g, on its page.
func groupRuleHref(g store.Group) func(string) string {
	return func(id string) string { return views.GroupURL(g, "") + "#rule-" + id }
}

// pathAnswer is the answer for a packet between two servers.
func pathAnswer(p serverPath) *views.PacketAnswer {
	out := sideOf(fmt.Sprintf("Leaving %s, through its group’s outbound rules", p.From.Server.Name),
		p.From.Group, p.Outbound, groupRuleHref(p.From.Group))
	in := sideOf(fmt.Sprintf("Coming into %s, through its group’s inbound rules", p.To.Server.Name),
		p.To.Group, p.Inbound, groupRuleHref(p.To.Group))
	var summary string
	switch {
	case p.Outbound.Verdict == store.Drop:
		summary = fmt.Sprintf("Dropped as it leaves %s, by %s of group “%s”.", p.From.Server.Name, refName(p.Outbound.DecidedBy), p.From.Group.Name)
	case p.Inbound.Verdict == store.Drop:
		summary = fmt.Sprintf("Dropped as it comes into %s, by %s of group “%s”.", p.To.Server.Name, refName(p.Inbound.DecidedBy), p.To.Group.Name)
	default:
		summary = fmt.Sprintf("Accepted: it leaves %s and comes into %s.", p.From.Server.Name, p.To.Server.Name)
	}
	return &views.PacketAnswer{Verdict: p.Verdict, Summary: summary, Sides: []views.PacketSide{out, in}}
}

// sideOf turns what group g does with a packet into the answer's terms;
// href links a rule ID to its row.
func sideOf(title string, g store.Group, d explain.Decision, href func(string) string) views.PacketSide {
	s := views.PacketSide{Title: title, Group: g, Packet: describePacket(d.Packet), Verdict: d.Verdict,
		DecidedBy: refName(d.DecidedBy), Note: d.Note}
	if d.DecidedBy.RuleID != "" {
		s.RuleHref = href(d.DecidedBy.RuleID)
	}
	for _, st := range d.Trace {
		ts := views.TraceStep{Name: refName(st.RuleRef), Action: st.Action, Matched: st.Matched, Reason: st.Reason}
		if st.RuleID != "" {
			ts.Href = href(st.RuleID)
		}
		s.Steps = append(s.Steps, ts)
	}
	return s
}

// summaryOf is the first line of an answer for one group.
func summaryOf(d explain.Decision) string {
	if d.DecidedBy.Kind == explain.KindNotEnforced {
		return "Not filtered on this host."
	}
	verb := "Accepted"
	if d.Verdict == store.Drop {
		verb = "Dropped"
	}
	return verb + " by " + refName(d.DecidedBy) + "."
}

// refName names a rule of a compiled chain as the Rules section shows it.
func refName(r explain.RuleRef) string {
	switch r.Kind {
	case explain.KindRule:
		if r.Position == 0 {
			return "a rule deleted since"
		}
		return fmt.Sprintf("rule %d", r.Position)
	case explain.KindSMTP:
		return fmt.Sprintf("SMTP rule %d", r.Position)
	case explain.KindStateful:
		return "the stateful rule (replies are accepted)"
	case explain.KindDefaultPolicy:
		return "the default policy"
	case explain.KindCompileError:
		return "the fail-closed rule (the group's stored rules cannot be read)"
	case explain.KindNotEnforced:
		return "nothing: not filtered on this host"
	}
	return string(r.Kind)
}

// describePacket renders a packet for a person: "Inbound TCP from
// 203.0.113.7 to port 22, new connection".
func describePacket(p explain.Packet) string {
	var b strings.Builder
	proto := string(p.Protocol)
	if p.Protocol == store.ICMP && p.Remote.Is6() {
		proto = "ICMPv6"
	}
	fmt.Fprintf(&b, "%s %s", p.Direction, proto)
	switch {
	case p.Direction == store.Inbound:
		fmt.Fprintf(&b, " from %s", p.Remote)
		if p.Local.IsValid() {
			fmt.Fprintf(&b, " to %s", p.Local)
		}
	case p.Local.IsValid():
		fmt.Fprintf(&b, " from %s to %s", p.Local, p.Remote)
	default:
		fmt.Fprintf(&b, " to %s", p.Remote)
	}
	if p.Protocol.HasPorts() {
		if p.Local.IsValid() || p.Direction == store.Outbound {
			fmt.Fprintf(&b, " port %d", p.Port)
		} else {
			fmt.Fprintf(&b, " to port %d", p.Port)
		}
	}
	if p.State == explain.Established {
		b.WriteString(", a reply")
	} else {
		b.WriteString(", new connection")
	}
	s := b.String()
	return strings.ToUpper(s[:1]) + s[1:]
}

// findingsOf returns the findings about g's rules, by rule ID, and a note
// when there are none to show because the analysis could not be made.
func (con *console) findingsOf(ctx context.Context, g store.Group, rules []store.Rule) (map[string][]views.Finding, string) {
	a, err := con.srv.analysis(ctx, g, rules)
	switch {
	case errors.Is(err, explain.ErrTooComplex):
		return nil, tooComplexMessage
	case err != nil:
		con.log.Error("analyse group", "group", g.ID, "err", err)
		return nil, "The rules of this group could not be analysed: no findings can be shown."
	}
	out := map[string][]views.Finding{}
	for _, f := range a.Findings {
		out[f.RuleID] = append(out[f.RuleID], views.Finding{Kind: string(f.Kind), Message: f.Message})
	}
	return out, ""
}

// findingCount counts the findings about group g, as listed: from the
// analysis of its generation when there is one, else from its rules read
// now (and the analysis of their generation).
func (con *console) findingCount(ctx context.Context, org string, g store.Group) (int, string) {
	a, err, ok := con.srv.analyses.get(g.ID, g.Generation)
	if !ok {
		var rules []store.Rule
		if g, rules, err = con.db.GroupRules(ctx, org, g.Zone, g.ID); err == nil {
			a, err = con.srv.analysis(ctx, g, rules)
		}
	}
	switch {
	case errors.Is(err, explain.ErrTooComplex):
		return 0, "too complex to analyse"
	case store.ErrorCode(err) == store.CodeNotFound:
		return 0, "deleted since"
	case err != nil:
		con.log.Error("analyse group", "group", g.ID, "err", err)
		return 0, "could not be analysed"
	}
	return len(a.Findings), ""
}

// changeFlash is the message of a rule change: what was done and, when the
// analysis finds something about the rule, what.
func changeFlash(v views.RulesView, r store.Rule, done string) views.Flash {
	msg := fmt.Sprintf("Rule %d %s.", r.Position, done)
	var findings []views.Finding
	for _, rows := range [][]views.RuleRow{v.Inbound, v.Outbound} {
		for _, row := range rows {
			if row.Rule.ID == r.ID {
				findings, msg = row.Findings, fmt.Sprintf("Rule %d %s.", row.Rule.Position, done)
			}
		}
	}
	if len(findings) == 0 {
		return views.Flash{Kind: "success", Message: msg}
	}
	for i, f := range findings {
		also := ""
		if i > 0 {
			also = "also "
		}
		msg += fmt.Sprintf(" It is %s%s: %s.", also, strings.ToLower(findingName(f.Kind)), f.Message)
	}
	return views.Flash{Kind: "info", Message: msg}
}

// findingName names a kind of finding in a sentence: "it is shadowed".
func findingName(kind string) string {
	if kind == string(explain.Conflict) {
		return "in conflict with an earlier rule"
	}
	return kind
}
