package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// TestConsoleRemoteRules: the add form offers the organization's IP sets
// and groups of the zone; a rule added with one shows it by name, linked;
// the edit form keeps it; the set's page lists the groups that use it,
// and refuses its deletion while they do.
func TestConsoleRemoteRules(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	lb := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "load balancers"})
	set, err := env.db.CreateIPSet(ctx, env.org.ID, "fr-par-1", store.IPSetInput{Name: "office", Entries: []string{"192.0.2.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := env.db.EnsureOrganization(ctx, "globex")
	if _, err := env.db.CreateIPSet(ctx, other.ID, "fr-par-1", store.IPSetInput{Name: "theirs"}); err != nil {
		t.Fatal(err)
	}

	p := b.get(groupPath(g, ""), false)
	options := p.doc.Find(`#r-ip_set_id option`).Text()
	if !strings.Contains(options, "office") || strings.Contains(options, "theirs") {
		t.Fatalf("IP set choices: %q", options)
	}
	if !strings.Contains(p.doc.Find(`#r-remote_security_group_id option`).Text(), "load balancers") {
		t.Fatal("no group to choose")
	}
	// The range field keeps its default: a set chosen is the remote side.
	add := func(field, id string) page {
		return b.post(groupPath(g, "/rules"), url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"},
			"ip_range": {"0.0.0.0/0"}, field: {id}, "dest_port_from": {"443"}}, true, false)
	}
	wantStatus(t, add("ip_set_id", set.ID), http.StatusOK)
	p = add("remote_security_group_id", lb.ID)
	wantStatus(t, p, http.StatusOK)
	links := p.doc.Find(`[data-testid=inbound-rules] [data-testid=rule-remote]`)
	if links.Length() != 2 || links.Eq(0).Text() != "IP set office" || links.Eq(1).Text() != "group load balancers" {
		t.Fatalf("remote cells: %q", links.Text())
	}
	if href, _ := links.Eq(0).Attr("href"); href != "/ip-sets/"+set.ID+"?zone=fr-par-1" {
		t.Errorf("link to the set: %q", href)
	}
	rules, _ := env.db.Rules(ctx, env.org.ID, "fr-par-1", g.ID)
	if len(rules) != 2 || rules[0].IPSetID != set.ID || rules[1].RemoteGroupID != lb.ID || rules[0].IPRange.IsValid() {
		t.Fatalf("stored: %+v", rules)
	}
	p = b.get(groupPath(g, "/rules/"+rules[0].ID+"/edit"), true)
	if v, _ := p.doc.Find(`#edit-ip_set_id option[selected]`).Attr("value"); v != set.ID {
		t.Fatalf("edit form: set %q", v)
	}
	// Editing it back to a range: the set unchosen.
	p = b.post(groupPath(g, "/rules/"+rules[0].ID), url.Values{"action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"198.51.100.0/24"},
		"ip_set_id": {""}, "remote_security_group_id": {""}, "dest_port_from": {"443"}}, true, false)
	wantStatus(t, p, http.StatusOK)
	if r, _ := env.db.Rule(ctx, env.org.ID, "fr-par-1", g.ID, rules[0].ID); r.Remote() || r.IPRange.String() != "198.51.100.0/24" {
		t.Fatalf("after edit: %+v", r)
	}
	// Back to the set, then its page.
	p = b.post(groupPath(g, "/rules/"+rules[0].ID), url.Values{"action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"198.51.100.0/24"},
		"ip_set_id": {set.ID}, "remote_security_group_id": {""}, "dest_port_from": {"443"}}, true, false)
	wantStatus(t, p, http.StatusOK)
	p = b.get("/ip-sets/"+set.ID+"?zone=fr-par-1", false)
	if used := p.doc.Find(`[data-testid=used-by] a`); used.Length() != 1 || used.Text() != "web" {
		t.Fatalf("used by: %q", used.Text())
	}
	p = b.post("/ip-sets/"+set.ID+"/delete?zone=fr-par-1", nil, false, false)
	if p.status != http.StatusConflict || !strings.Contains(p.doc.Find(`[data-testid=form-message]`).Text(), "web (") {
		t.Fatalf("delete a set in use: %d %q", p.status, p.doc.Find(`[data-testid=form-message]`).Text())
	}
}
