package e2e

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Safe changes in the console (issue 16): a draft reviewed and applied, a
// change confirmed, and one left to roll back.

// TestDraftReviewedAndApplied: edits staged as a draft (a rule from a
// preset, then a line as text) are reviewed, with the changes and the
// nftables text they compile to, while the group is untouched, then
// applied as one change.
func TestDraftReviewedAndApplied(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "draft")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-draft", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")

	p.click(p.button("Review changes before applying"), "Review changes before applying")
	p.visible(p.role("heading", "Review changes to “web-draft”"), "the review of the draft")
	p.visible(p.text("No change yet: edit the draft's rules below, or edit them as text."), "an empty draft")
	p.see("draft-begun")

	p.preset("HTTPS")
	p.hasValue("Rule description", "HTTPS")
	p.click(p.button("Add rule"), "Add rule")
	p.visible(p.text(regexp.MustCompile(`^inbound accept TCP port 443 from 0\.0\.0\.0/0 # HTTPS$`)).First(), "the added rule in the pending changes")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 443")
	if nft := mustText(t, p.GetByTestId("draft-nft")); !strings.Contains(nft, "tcp dport 443 counter name ") {
		t.Errorf("the draft's nftables text lacks the new rule:\n%s", nft)
	}
	if got := srv.rules(t, tok, g.ID, "inbound"); len(got) != 1 {
		t.Fatalf("API: %d inbound rules while the draft is under review, want 1", len(got))
	}
	p.see("draft-reviewed")

	p.click(p.link("Edit as text"), "Edit as text")
	text, err := p.label("Rules").InputValue()
	if err != nil {
		t.Fatal(err)
	}
	if text != "inbound accept TCP port 22 from 0.0.0.0/0\ninbound accept TCP port 443 from 0.0.0.0/0 # HTTPS\n" {
		t.Errorf("the draft as text = %q", text)
	}
	// A bad line is named, and the text comes back as typed.
	p.fill("Rules", text+"outbound drop UDP port 53 to 0.0.0.0/0 # no outside DNS\ninbound acept TCP from 0.0.0.0/0\n")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/"+g.ID+"/draft/text")
	p.click(p.button("Review changes"), "Review changes")
	p.visible(p.text(regexp.MustCompile(`^Line 4: action: must be accept or drop`)), "the bad line's error")
	if err := expect.Locator(p.label("Rules")).ToHaveAttribute("aria-invalid", "true"); err != nil {
		t.Errorf("the text is not marked invalid: %v", err)
	}
	p.see("draft-text-refused")
	p.fill("Rules", text+"outbound drop UDP port 53 to 0.0.0.0/0 # no outside DNS\n")
	p.see("draft-as-text")
	p.click(p.button("Review changes"), "Review changes")
	p.visible(p.text(regexp.MustCompile(`^outbound drop UDP port 53 to 0\.0\.0\.0/0 # no outside DNS$`)).First(), "the line added as text")
	p.see("draft-with-text")

	p.click(p.button("Apply changes"), "Apply changes")
	p.visible(p.text("Changes applied."), "the confirmation that the draft was applied")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 443")
	p.expectRules("outbound", "3 Drop UDP 0.0.0.0/0 53")
	p.visible(roleIn(p.role("table", "Versions of this group"), "cell", regexp.MustCompile("reviewed draft applied")), "the version the draft made")
	p.see("draft-applied")
	if got := srv.rules(t, tok, g.ID, "outbound"); len(got) != 1 || got[0].Action != "drop" {
		t.Errorf("API: outbound rules %+v", got)
	}
}

// TestChangeConfirmed: a change saved with "Roll back unless I confirm
// within 60 s" shows its countdown on the group's page and a notice on
// every page, and stays once confirmed.
func TestChangeConfirmed(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "confirm")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-confirm", true)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")

	p.choose("Inbound default policy", "Accept")
	p.check("Roll back unless I confirm within 60 s", true)
	p.save()
	panel := p.GetByTestId("pending-panel")
	p.visible(panel, "the pending panel")
	p.visible(roleIn(panel, "button", "Confirm version 2"), "the Confirm button")
	if err := expect.Locator(panel.Locator(".countdown")).ToHaveText(regexp.MustCompile(`^(60|5\d) s$`)); err != nil {
		t.Errorf("countdown: %v", err)
	}
	p.see("pending")

	p.open("/servers", "notice-on-another-page")
	notice := p.GetByTestId("pending-notices")
	p.visible(notice, "the notice on the servers page")
	p.click(roleIn(notice, "link", "“web-confirm”"), "the group in the notice")
	p.visible(panel, "the pending panel again")

	p.click(roleIn(panel, "button", "Confirm version 2"), "Confirm version 2")
	p.visible(p.text("Version 2 confirmed: the group keeps it."), "the confirmation")
	if err := expect.Locator(panel).ToHaveCount(0); err != nil {
		t.Errorf("the pending panel stays after confirming: %v", err)
	}
	p.see("confirmed")
	if got := srv.group(t, tok, g.ID); got.InboundDefaultPolicy != "accept" {
		t.Errorf("API: inbound default policy %s after confirming, want accept", got.InboundDefaultPolicy)
	}

	// The version, compared with the one before, and a revert to that one.
	p.click(p.link("Version 2"), "Version 2")
	p.visible(p.role("heading", "Changes from version 1 to version 2"), "the comparison")
	settings := p.role("table", "Changes: settings")
	p.visible(roleIn(settings, "cell", "Drop"), "the inbound policy before")
	p.visible(roleIn(settings, "cell", "Accept"), "the inbound policy after")
	p.see("version-2")
	p.click(p.link("Version 1"), "Version 1")
	p.click(p.button("Revert to version 1"), "Revert to version 1")
	p.visible(p.text("Reverted to version 1."), "the revert")
	p.see("reverted")
	if got := srv.group(t, tok, g.ID); got.InboundDefaultPolicy != "drop" {
		t.Errorf("API: inbound default policy %s after the revert, want drop", got.InboundDefaultPolicy)
	}
}

// TestChangeRolledBack: a change made with X-Rampart-Confirm-Within: 3
// and left alone is rolled back by the server; the open group page, which
// shows its countdown, reloads by itself and says so.
func TestChangeRolledBack(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "rollback")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-rollback", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	p := newTab(t, srv)
	p.signIn(a)

	code, _, raw := srv.apiWith(t, http.MethodPut, groupPath(g.ID)+"/rules", tok.SecretKey,
		"inbound drop ANY from 0.0.0.0/0 # locks everyone out\n", map[string]string{"X-Rampart-Confirm-Within": "3"})
	if code != http.StatusOK {
		t.Fatalf("PUT rules as text with a confirmation: %d %s", code, raw)
	}
	p.openGroup(g, "pending")
	p.visible(p.GetByTestId("pending-panel"), "the pending panel")
	p.expectRules("inbound", "1 Drop ANY 0.0.0.0/0 All")
	p.see("counting-down")

	p.visible(p.text(regexp.MustCompile(`Version 3 was not confirmed in time: the server rolled the group back`)), "the roll-back, said on the page")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22")
	p.visible(roleIn(p.role("table", "Versions of this group"), "cell", regexp.MustCompile(`^rolled back to version 2: version 3 was not confirmed`)), "the roll-back's version")
	p.see("rolled-back")
}
