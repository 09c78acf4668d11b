package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/views"
)

// Review before apply: a person's draft of a group's rules, edited with
// plain forms (each answers 303 to the review, or the review again with
// the store's errors), reviewed with its changes and the nftables text it
// compiles to, and applied as one change.

// draftNFT is the text of a group's two chains with rules instead of its
// own: the enforcer's compiler on a snapshot of that one group, rendered
// as the preview renders it.
func draftNFT(g store.Group, rules []store.Rule, remotes store.Remotes) string {
	return enforcer.Compile(oneGroup(g, rules, remotes)).GroupText(g.ID)
}

// draftView reads the review of the signed-in person's draft of the
// request's group.
func (con *console) draftView(c echo.Context) (views.DraftView, error) {
	ref := con.groupRef(c)
	r, err := con.db.ReviewDraft(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c))
	if err != nil {
		return views.DraftView{}, err
	}
	remotes, err := con.db.RemotesOf(c.Request().Context(), r.Draft.Rules)
	if err != nil {
		return views.DraftView{}, err
	}
	v := views.DraftView{Review: r, CSRF: csrfToken(c), NFT: draftNFT(r.Group, r.Draft.Rules, remotes)}
	v.Rules = con.rulesViewOf(c, r.Group, r.Draft.Rules, r.Choices, nil, true)
	return v, nil
}

func (con *console) renderDraft(c echo.Context, status int, v views.DraftView) error {
	p := con.page(c, "Review changes to "+v.Review.Group.Name, "groups")
	return render(c, status, views.DraftPage(p, v))
}

// draftAnswer answers a draft edit: 303 to the review on success, or the
// review again with what edit puts in it.
func (con *console) draftAnswer(c echo.Context, err error, edit func(*views.DraftView)) error {
	if err == nil {
		return redirect(c, views.GroupURL(con.groupRef(c), "/draft")+"#rules")
	}
	if !refused(err) {
		return err
	}
	v, verr := con.draftView(c)
	if verr != nil {
		return verr
	}
	edit(&v)
	return con.renderDraft(c, formStatus(err), v)
}

// handleDraftStartForm handles "POST /security-groups/:id/draft": opens
// the person's draft (beginning it from the group's rules when there is
// none, or again with restart=1), to review it or (then=text) to edit it
// as text.
func (con *console) handleDraftStartForm(c echo.Context) error {
	ref := con.groupRef(c)
	restart := c.FormValue("restart") == "1"
	if err := con.db.StartDraft(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), restart); err != nil {
		return err
	}
	if restart {
		con.flash(c, "info", "Your draft starts again from the group's current rules.")
	}
	if c.FormValue("then") == "text" {
		return redirect(c, views.GroupURL(ref, "/draft/text"))
	}
	return redirect(c, views.GroupURL(ref, "/draft"))
}

// handleDraftPage handles "GET /security-groups/:id/draft": the review.
func (con *console) handleDraftPage(c echo.Context) error {
	v, err := con.draftView(c)
	if err != nil {
		return err
	}
	return con.renderDraft(c, http.StatusOK, v)
}

// handleDraftRuleAddForm handles "POST /security-groups/:id/draft/rules".
func (con *console) handleDraftRuleAddForm(c echo.Context) error {
	ref := con.groupRef(c)
	f, in, err := ruleForm(c)
	if err == nil {
		err = con.db.DraftAddRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), in)
	}
	return con.draftAnswer(c, err, func(v *views.DraftView) {
		f.Errors, f.Message = views.ErrorsOf(err, views.RuleFormFields...)
		v.Rules.Add = f
	})
}

// handleDraftRuleEditPage handles "GET /security-groups/:id/draft/rules/:rule/edit":
// the draft's rule as a form.
func (con *console) handleDraftRuleEditPage(c echo.Context) error {
	v, err := con.draftView(c)
	if err != nil {
		return err
	}
	for _, r := range v.Review.Draft.Rules {
		if r.ID == c.Param("rule") {
			v.Rules.Edit = views.RuleFormOf(r)
			return con.renderDraft(c, http.StatusOK, v)
		}
	}
	return &store.Error{Code: store.CodeNotFound, Message: "resource is not found", Resource: store.ResourceRule, ResourceID: c.Param("rule")}
}

// handleDraftRuleEditForm handles "POST /security-groups/:id/draft/rules/:rule".
func (con *console) handleDraftRuleEditForm(c echo.Context) error {
	ref := con.groupRef(c)
	f, in, err := ruleForm(c)
	f.ID = c.Param("rule")
	if err == nil {
		err = con.db.DraftUpdateRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), f.ID, in)
	}
	return con.draftAnswer(c, err, func(v *views.DraftView) {
		f.Errors, f.Message = views.ErrorsOf(err, views.RuleFormFields...)
		v.Rules.Edit = f
	})
}

// handleDraftRuleMoveForm handles "POST /security-groups/:id/draft/rules/:rule/move":
// up or down among the rules of its direction.
func (con *console) handleDraftRuleMoveForm(c echo.Context) error {
	ref := con.groupRef(c)
	step := 0
	switch c.FormValue("direction") {
	case "up":
		step = -1
	case "down":
		step = 1
	}
	err := con.db.DraftMoveRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), c.Param("rule"), step)
	return con.draftAnswer(c, err, func(v *views.DraftView) {
		v.Rules.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
	})
}

// handleDraftRuleDeleteForm handles "POST /security-groups/:id/draft/rules/:rule/delete".
func (con *console) handleDraftRuleDeleteForm(c echo.Context) error {
	ref := con.groupRef(c)
	err := con.db.DraftDeleteRule(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), c.Param("rule"))
	return con.draftAnswer(c, err, func(v *views.DraftView) {
		v.Rules.Flash = views.Flash{Kind: "error", Message: storeMessage(err)}
	})
}

// handleDraftTextPage handles "GET /security-groups/:id/draft/text": the
// draft's rules as text, to edit.
func (con *console) handleDraftTextPage(c echo.Context) error {
	ref := con.groupRef(c)
	r, err := con.db.ReviewDraft(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c))
	if err != nil {
		return err
	}
	p := con.page(c, "Edit the rules of "+r.Group.Name+" as text", "groups")
	return render(c, http.StatusOK, views.DraftTextPage(p, views.DraftTextView{
		Group: r.Group, CSRF: csrfToken(c), Text: store.FormatRules(r.Draft.Rules)}))
}

// handleDraftTextForm handles "POST /security-groups/:id/draft/text": the
// draft's rules become the text's, then the review; a refused text comes
// back as typed, with each bad line named.
func (con *console) handleDraftTextForm(c echo.Context) error {
	ref := con.groupRef(c)
	text := strings.ReplaceAll(c.FormValue("rules"), "\r\n", "\n")
	err := con.db.DraftSetText(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c), text)
	if err == nil {
		return redirect(c, views.GroupURL(ref, "/draft")+"#changes")
	}
	var se *store.Error
	if !errors.As(err, &se) || se.Code != store.CodeInvalid {
		return err
	}
	g, gerr := con.db.Group(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID)
	if gerr != nil {
		return gerr
	}
	p := con.page(c, "Edit the rules of "+g.Name+" as text", "groups")
	return render(c, formStatus(err), views.DraftTextPage(p, views.DraftTextView{
		Group: g, CSRF: csrfToken(c), Text: text, Errors: se.Fields}))
}

// handleDraftApplyForm handles "POST /security-groups/:id/draft/apply":
// the draft becomes the group's rules in one change, optionally to be
// confirmed. A draft whose group's rules moved on is refused, on the
// review that shows what changed.
func (con *console) handleDraftApplyForm(c echo.Context) error {
	ref := con.groupRef(c)
	confirm, err := withConfirm(c, ref.ID)
	if err == nil {
		_, err = con.db.ApplyDraft(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c))
	}
	if err != nil {
		return con.draftAnswer(c, err, func(v *views.DraftView) {
			v.Confirm, v.Message = confirm, storeMessage(err)
		})
	}
	con.flash(c, "success", "Changes applied."+confirmNote(confirm))
	return redirect(c, views.GroupURL(ref, ""))
}

// handleDraftDiscardForm handles "POST /security-groups/:id/draft/discard".
func (con *console) handleDraftDiscardForm(c echo.Context) error {
	ref := con.groupRef(c)
	if err := con.db.DiscardDraft(c.Request().Context(), consoleOrg(c), ref.Zone, ref.ID, consoleUser(c)); err != nil {
		return err
	}
	con.flash(c, "info", "Draft discarded: nothing was applied.")
	return redirect(c, views.GroupURL(ref, "")+"#rules")
}
