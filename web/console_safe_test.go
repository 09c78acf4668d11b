package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/rampart-fw/rampart/store"
)

// TestConsoleRuleDescriptions: the rule tables show each rule's
// description, and the add and edit forms set it.
func TestConsoleRuleDescriptions(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	p := b.post(groupPath(g, "/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"},
		"ip_range": {"0.0.0.0/0"}, "dest_port_from": {"22"}, "description": {" SSH from anywhere "}}, true, false)
	wantStatus(t, p, http.StatusOK)
	row := p.doc.Find(`[data-testid=inbound-rules] tbody tr`).First()
	if got := strings.TrimSpace(row.Find("td").Eq(5).Text()); got != "SSH from anywhere" {
		t.Fatalf("description cell = %q", got)
	}
	id, _ := row.Attr("data-rule")
	p = b.get(groupPath(g, "/rules/"+id+"/edit"), true)
	if v, _ := p.doc.Find("#edit-description").Attr("value"); v != "SSH from anywhere" {
		t.Fatalf("edit form description = %q", v)
	}
	if p.doc.Find(`label[for=edit-description]`).Length() != 1 {
		t.Error("the description's control has no label")
	}
	p = b.post(groupPath(g, "/rules/"+id), url.Values{"direction": {"inbound"}, "action": {"drop"}, "protocol": {"TCP"},
		"ip_range": {"0.0.0.0/0"}, "dest_port_from": {"22"}, "description": {"no SSH"}}, true, false)
	wantStatus(t, p, http.StatusOK)
	r, _ := env.db.Rule(context.Background(), env.org.ID, "fr-par-1", g.ID, id)
	if r.Description != "no SSH" || r.Action != store.Drop {
		t.Fatalf("rule after edit = %+v", r)
	}
}

// TestConsoleVersions: the group page lists versions; a version's page
// shows what changed, readably, and reverts; a revert refused by today's
// rules says why.
func TestConsoleVersions(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", Stateful: true})
	env.mustRule(t, g, store.Inbound, 22)
	if _, err := env.db.UpdateGroup(ctx, env.org.ID, "fr-par-1", g.ID, store.GroupPatch{Stateful: new(bool), InboundDefaultPolicy: ptrPolicy(store.Drop)}); err != nil {
		t.Fatal(err)
	}
	env.mustRule(t, g, store.Inbound, 443)

	p := b.get(groupPath(g, ""), false)
	wantStatus(t, p, http.StatusOK)
	rows := p.doc.Find(`[data-testid=versions] tbody tr`)
	if rows.Length() != 4 || !strings.Contains(rows.First().Text(), "Version 4") || !strings.Contains(rows.First().Text(), "current") ||
		!strings.Contains(rows.Eq(1).Text(), "settings: stateful, inbound policy") {
		t.Fatalf("versions section: %q", rows.Text())
	}
	p = b.get(groupPath(g, "/versions/4")+"&against=1", false)
	wantStatus(t, p, http.StatusOK)
	lines := p.doc.Find(`[data-testid=diff-lines] li`)
	if lines.Length() != 2 || !strings.Contains(lines.Eq(0).Text(), "Added: inbound accept TCP port 22") ||
		!strings.Contains(lines.Eq(1).Text(), "Added: inbound accept TCP port 443") {
		t.Errorf("diff lines: %q", lines.Text())
	}
	settings := p.doc.Find(`table.diff-settings tbody tr`)
	if settings.Length() != 2 || !strings.Contains(settings.Eq(0).Text(), "stateful") || !strings.Contains(settings.Eq(0).Text(), "stateless") {
		t.Errorf("settings diff: %q", settings.Text())
	}
	if p.doc.Find(`form[action*="/versions/4/revert"]`).Length() != 0 {
		t.Error("the current version offers a revert")
	}
	// A bad comparison is shown beside its field.
	p = b.get(groupPath(g, "/versions/4")+"&against=-1", false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if msg := fieldError(p, "against"); msg == "" {
		t.Error("no error beside the compare field")
	}
	if d, _ := p.doc.Find("#against").Attr("aria-describedby"); d != "err-against" {
		t.Errorf("compare field described by %q", d)
	}
	// Revert to version 2 (stateful, one rule).
	p = b.post(groupPath(g, "/versions/2/revert"), nil, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	got, rules, _ := env.db.GroupRules(ctx, env.org.ID, "fr-par-1", g.ID)
	if !got.Stateful || got.InboundDefaultPolicy != store.Accept || len(rules) != 6+1 || got.Version != 5 {
		t.Fatalf("after the revert: %+v, %d rules", got, len(rules))
	}
	if p = b.get(groupPath(g, ""), false); !strings.Contains(p.doc.Find("#flash").Text(), "Reverted to version 2.") {
		t.Errorf("flash after the revert: %q", p.doc.Find("#flash").Text())
	}
	// Refused: version 4 is stateless, fine; make the group hold a
	// BareMetal server and try the stateful version 2 from a stateless state.
	if _, _, err := env.db.RevertGroup(ctx, env.org.ID, "fr-par-1", g.ID, 4); err != nil {
		t.Fatal(err)
	}
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "metal-1", Type: store.BareMetal, SecurityGroupID: g.ID})
	p = b.post(groupPath(g, "/versions/2/revert"), nil, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if msg := p.doc.Find(`[data-testid=revert-message]`).Text(); !strings.Contains(msg, "Version 2 cannot be restored") || !strings.Contains(msg, `BareMetal server "metal-1"`) {
		t.Errorf("refused revert says %q", msg)
	}
}

func ptrPolicy(p store.Policy) *store.Policy { return &p }

// TestConsoleConfirm: "Roll back unless I confirm within 60 s" leaves the
// group pending: its page shows the countdown and Confirm, every page
// mentions it, other changes are refused, the panel's poll reloads the
// page once it is confirmed or rolled back.
func TestConsoleConfirm(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	overview := url.Values{"name": {"web"}, "inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"}, "confirm_within": {"60"}}
	p := b.post(groupPath(g, ""), overview, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	p = b.get(groupPath(g, ""), false)
	panel := p.doc.Find(`[data-testid=pending-panel]`)
	if !strings.Contains(panel.Text(), "Version 2 awaits confirmation") || panel.Find(`button:contains("Confirm version 2")`).Length() != 1 {
		t.Fatalf("pending panel: %q", panel.Text())
	}
	if s, _ := panel.Find("[data-remaining]").Attr("data-remaining"); s != "60" && s != "59" {
		t.Errorf("countdown starts at %q", s)
	}
	if !strings.Contains(p.doc.Find("#flash").Text(), "Confirm it within 60 s") {
		t.Errorf("flash: %q", p.doc.Find("#flash").Text())
	}
	for _, path := range []string{"/servers", "/tokens", "/security-groups"} {
		if n := b.get(path, false).doc.Find(`[data-testid=pending-notices]`); !strings.Contains(n.Text(), "Version 2 of") || !strings.Contains(n.Text(), "web") {
			t.Errorf("%s: notice %q", path, n.Text())
		}
	}
	// Another change while pending is refused, naming the version.
	p = b.post(groupPath(g, "/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"0.0.0.0/0"}}, true, false)
	wantStatus(t, p, http.StatusConflict)
	if !strings.Contains(p.body, "version 2 of this security group awaits confirmation") {
		t.Errorf("refused rule: %s", p.body)
	}
	// The panel's poll: 204 while pending.
	if p := b.get(groupPath(g, "/pending")+"&version=2", true); p.status != http.StatusNoContent {
		t.Errorf("poll while pending: %d", p.status)
	}
	p = b.post(groupPath(g, "/confirm"), url.Values{"version": {"2"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	if got, _ := env.db.Group(ctx, env.org.ID, "fr-par-1", g.ID); got.Pending != nil || got.InboundDefaultPolicy != store.Drop {
		t.Fatalf("after confirming: %+v", got)
	}
	p = b.get(groupPath(g, "/pending")+"&version=2", true)
	if p.header.Get("HX-Refresh") != "true" {
		t.Errorf("poll after confirming: %d %v", p.status, p.header)
	}
	if p = b.get(groupPath(g, ""), false); p.doc.Find(`[data-testid=pending-panel]`).Length() != 0 ||
		!strings.Contains(p.doc.Find("#flash").Text(), "Version 2 was confirmed.") {
		t.Errorf("after confirming: flash %q", p.doc.Find("#flash").Text())
	}

	// Left to roll back.
	cctx, pending := store.WithConfirmation(ctx, g.ID, time.Millisecond)
	if _, err := env.db.UpdateGroup(cctx, env.org.ID, "fr-par-1", g.ID, store.GroupPatch{Name: ptrString("locked")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if n, err := env.db.RollBackDue(ctx); n != 1 || err != nil {
		t.Fatalf("roll back: %d %v", n, err)
	}
	p = b.get(groupPath(g, "/pending")+"&version="+strconv.Itoa(pending.Version), true)
	if p.header.Get("HX-Refresh") != "true" {
		t.Fatalf("poll after the roll-back: %d %v", p.status, p.header)
	}
	p = b.get(groupPath(g, ""), false)
	if flash := p.doc.Find("#flash").Text(); !strings.Contains(flash, "was not confirmed in time") || !strings.Contains(p.doc.Find("h1").Text(), "web") {
		t.Errorf("after the roll-back: flash %q, title %q", flash, p.doc.Find("h1").Text())
	}
}

func ptrString(s string) *string { return &s }

// TestConsoleDraft: a draft is staged (rules added, edited, moved,
// deleted), reviewed with its changes and its nftables text while the
// group is untouched, then applied as one change; a draft whose group's
// rules moved on says what changed and is not applied.
func TestConsoleDraft(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web", InboundDefaultPolicy: store.Drop})
	ssh := env.mustRule(t, g, store.Inbound, 22)
	http80 := env.mustRule(t, g, store.Inbound, 80)

	if p := b.get(groupPath(g, "/draft"), false); p.status != http.StatusNotFound {
		t.Fatalf("draft before one began: %d", p.status)
	}
	p := b.post(groupPath(g, "/draft"), nil, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); !strings.HasPrefix(loc, "/security-groups/"+g.ID+"/draft?") {
		t.Fatalf("Location = %q", loc)
	}
	p = b.get(groupPath(g, "/draft"), false)
	wantStatus(t, p, http.StatusOK)
	if !strings.Contains(p.doc.Find("#changes").Text(), "No change yet") || p.doc.Find(`[data-testid=inbound-rules] tbody tr:not(.findings-row)`).Length() != 2 {
		t.Fatalf("new draft: %q", p.doc.Find("#changes").Text())
	}
	gen, _ := env.db.Generation(ctx)
	add := url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"0.0.0.0/0"}, "dest_port_from": {"443"}, "description": {"HTTPS"}}
	wantStatus(t, b.post(groupPath(g, "/draft/rules"), add, false, false), http.StatusSeeOther)
	wantStatus(t, b.post(groupPath(g, "/draft/rules/"+http80.ID+"/delete"), nil, false, false), http.StatusSeeOther)
	p = b.get(groupPath(g, "/draft/rules/"+ssh.ID+"/edit"), false)
	if v, _ := p.doc.Find("#edit-dest_port_from").Attr("value"); v != "22" {
		t.Fatalf("draft edit form: port %q", v)
	}
	wantStatus(t, b.post(groupPath(g, "/draft/rules/"+ssh.ID), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"},
		"ip_range": {"192.0.2.0/24"}, "dest_port_from": {"22"}, "description": {"admins"}}, false, false), http.StatusSeeOther)
	// A refused edit shows beside its field on the review, nothing saved.
	p = b.post(groupPath(g, "/draft/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"10.0.0.300/8"}}, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if fieldError(p, "r-ip_range") == "" {
		t.Error("no error beside the draft's IP range")
	}
	if after, _ := env.db.Generation(ctx); after != gen {
		t.Fatalf("editing a draft moved the generation %d → %d", gen, after)
	}
	p = b.get(groupPath(g, "/draft"), false)
	var lines []string
	p.doc.Find(`#changes [data-testid=diff-lines] li`).Each(func(_ int, s *goquery.Selection) { lines = append(lines, strings.Join(strings.Fields(s.Text()), " ")) })
	want := []string{"-Removed: inbound accept TCP port 22 from 0.0.0.0/0", "-Removed: inbound accept TCP port 80 from 0.0.0.0/0",
		"+Added: inbound accept TCP port 22 from 192.0.2.0/24 # admins", "+Added: inbound accept TCP port 443 from 0.0.0.0/0 # HTTPS"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("pending changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	nft := p.doc.Find(`[data-testid=draft-nft]`).Text()
	if !strings.Contains(nft, "tcp dport 443 counter name ") || !strings.Contains(nft, "ip saddr 192.0.2.0/24") || strings.Contains(nft, "dport 80 ") {
		t.Errorf("draft's nftables text:\n%s", nft)
	}
	if rules, _ := env.db.Rules(ctx, env.org.ID, "fr-par-1", g.ID); len(rules) != 2 || rules[1].DestPortFrom != 80 {
		t.Fatalf("the group changed before the draft was applied: %v", rules)
	}
	// Applied, to be confirmed.
	p = b.post(groupPath(g, "/draft/apply"), url.Values{"confirm_within": {"60"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	got, rules, _ := env.db.GroupRules(ctx, env.org.ID, "fr-par-1", g.ID)
	if got.Pending == nil || store.FormatRules(rules) != "inbound accept TCP port 22 from 192.0.2.0/24 # admins\ninbound accept TCP port 443 from 0.0.0.0/0 # HTTPS\n" {
		t.Fatalf("applied: pending %+v, rules\n%s", got.Pending, store.FormatRules(rules))
	}
	if _, err := env.db.ConfirmGroup(ctx, env.org.ID, "fr-par-1", g.ID, 0); err != nil {
		t.Fatal(err)
	}
	if p := b.get(groupPath(g, "/draft"), false); p.status != http.StatusNotFound {
		t.Errorf("the draft is still there after applying: %d", p.status)
	}

	// Moved on: the draft says what changed and is not applied.
	wantStatus(t, b.post(groupPath(g, "/draft"), nil, false, false), http.StatusSeeOther)
	wantStatus(t, b.post(groupPath(g, "/draft/rules"), add, false, false), http.StatusSeeOther)
	env.mustRule(t, g, store.Outbound, 53)
	p = b.get(groupPath(g, "/draft"), false)
	if !strings.Contains(p.doc.Find(`[data-testid=moved-on]`).Text(), "changed since you began this draft") ||
		p.doc.Find(`[data-testid=apply-draft]`).Length() != 0 || !strings.Contains(p.body, "outbound accept TCP port 53") {
		t.Fatalf("moved-on review: %q", p.doc.Find(`[data-testid=moved-on]`).Text())
	}
	p = b.post(groupPath(g, "/draft/apply"), nil, false, false)
	wantStatus(t, p, http.StatusConflict)
	if !strings.Contains(p.doc.Find(`[data-testid=draft-message]`).Text(), "changed since your draft began") {
		t.Errorf("refused apply: %q", p.doc.Find(`[data-testid=draft-message]`).Text())
	}
	wantStatus(t, b.post(groupPath(g, "/draft"), url.Values{"restart": {"1"}}, false, false), http.StatusSeeOther)
	if p := b.get(groupPath(g, "/draft"), false); p.doc.Find(`[data-testid=moved-on]`).Length() != 0 || !strings.Contains(p.doc.Find("#changes").Text(), "No change yet") {
		t.Errorf("after starting over: %q", p.doc.Find("#changes").Text())
	}
	wantStatus(t, b.post(groupPath(g, "/draft/discard"), nil, false, false), http.StatusSeeOther)
	if p := b.get(groupPath(g, "/draft"), false); p.status != http.StatusNotFound {
		t.Errorf("after discarding: %d", p.status)
	}
}

// TestConsoleDraftText: "Edit as text" edits the draft; a refused text
// comes back as typed with each bad line named, the textarea marked and
// described by the errors.
func TestConsoleDraftText(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	env.mustRule(t, g, store.Inbound, 22)
	p := b.post(groupPath(g, "/draft"), url.Values{"then": {"text"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); !strings.HasPrefix(loc, "/security-groups/"+g.ID+"/draft/text?") {
		t.Fatalf("Location = %q", loc)
	}
	p = b.get(groupPath(g, "/draft/text"), false)
	wantStatus(t, p, http.StatusOK)
	if got := p.doc.Find("#rules-text").Text(); got != "inbound accept TCP port 22 from 0.0.0.0/0\n" {
		t.Fatalf("textarea = %q", got)
	}
	if p.doc.Find(`label[for=rules-text]`).Length() != 1 {
		t.Error("the textarea has no label")
	}
	bad := "inbound accept TCP port 22 from 0.0.0.0/0\r\ninbound accept UDP port 99999 from 0.0.0.0/0\r\n"
	p = b.post(groupPath(g, "/draft/text"), url.Values{"rules": {bad}}, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	errs := p.doc.Find(`[data-testid=text-errors] li`)
	if errs.Length() != 1 || !strings.Contains(errs.Text(), "Line 2: dest_port_from: a port is from 1 to 65535") {
		t.Fatalf("errors: %q", errs.Text())
	}
	ta := p.doc.Find("#rules-text")
	if inv, _ := ta.Attr("aria-invalid"); inv != "true" {
		t.Error("the textarea is not marked invalid")
	}
	if d, _ := ta.Attr("aria-describedby"); !strings.Contains(d, "rules-text-errors") {
		t.Errorf("textarea described by %q", d)
	}
	if !strings.Contains(ta.Text(), "port 99999") {
		t.Errorf("the text did not come back as typed: %q", ta.Text())
	}
	p = b.post(groupPath(g, "/draft/text"), url.Values{"rules": {"inbound accept TCP port 22 from 0.0.0.0/0\ninbound drop ANY from 10.0.0.0/8 # no\n"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	p = b.get(groupPath(g, "/draft"), false)
	if !strings.Contains(p.doc.Find("#changes").Text(), "inbound drop ANY from 10.0.0.0/8 # no") {
		t.Errorf("review after the text: %q", p.doc.Find("#changes").Text())
	}
}
