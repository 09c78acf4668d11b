package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// TestChangesReadOnce: a change answers with one write transaction and at
// most one read, on the console and the API alike (authentication aside:
// sessions and tokens are not counted). Adding a rule in the console once
// went to the store five times.
func TestChangesReadOnce(t *testing.T) {
	env := newConsoleEnvRun(t, false, func(*web.Config) {})
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	r1 := env.mustRule(t, g, store.Inbound, 22)
	r2 := env.mustRule(t, g, store.Inbound, 80)
	vm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm", Interface: "vnet1"})
	token := b.csrf()
	rule := url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"10.0.0.0/8"}, "dest_port_from": {"443"}}
	for _, tc := range []struct {
		name string
		path string
		form url.Values
		hx   bool
		want int
	}{
		{"add a rule (htmx)", groupPath(g, "/rules"), rule, true, http.StatusOK},
		{"add a rule (form)", groupPath(g, "/rules"), rule, false, http.StatusSeeOther},
		{"edit a rule", groupPath(g, "/rules/"+r1.ID), url.Values{"action": {"drop"}, "protocol": {"TCP"}, "ip_range": {"10.0.0.0/8"}, "dest_port_from": {"22"}}, true, http.StatusOK},
		{"move a rule down", groupPath(g, "/rules/"+r1.ID+"/move"), url.Values{"direction": {"down"}}, true, http.StatusOK},
		{"move a rule to a position", groupPath(g, "/rules/"+r2.ID+"/move"), url.Values{"position": {"1"}}, true, http.StatusOK},
		{"delete a rule", groupPath(g, "/rules/"+r2.ID+"/delete"), nil, true, http.StatusOK},
		{"save the overview", groupPath(g, ""), url.Values{"name": {"web2"}, "inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"}}, false, http.StatusSeeOther},
		{"add a server", groupPath(g, "/servers"), url.Values{"server_id": {vm.ID}}, false, http.StatusSeeOther},
		{"unlink a server", groupPath(g, "/servers/"+vm.ID+"/unlink"), nil, false, http.StatusSeeOther},
		{"save the overview, to confirm", groupPath(g, ""), url.Values{"name": {"web3"}, "inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"}, "confirm_within": {"60"}}, false, http.StatusSeeOther},
		{"confirm", groupPath(g, "/confirm"), nil, false, http.StatusSeeOther},
		{"revert to a version", groupPath(g, "/versions/2/revert"), nil, false, http.StatusSeeOther},
		{"start a draft", groupPath(g, "/draft"), nil, false, http.StatusSeeOther},
		{"add a rule to the draft", groupPath(g, "/draft/rules"), rule, false, http.StatusSeeOther},
		{"edit the draft as text", groupPath(g, "/draft/text"), url.Values{"rules": {"inbound accept TCP port 22 from 0.0.0.0/0 # SSH\n"}}, false, http.StatusSeeOther},
		{"apply the draft", groupPath(g, "/draft/apply"), nil, false, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"_csrf": {token}}
			for k, v := range tc.form {
				form[k] = v
			}
			r0, w0 := env.db.Transactions()
			p := b.post(tc.path, form, tc.hx, true)
			r1, w1 := env.db.Transactions()
			wantStatus(t, p, tc.want)
			if w1-w0 != 1 || r1-r0 > 1 {
				t.Errorf("%d writes and %d reads, want 1 write and at most 1 read", w1-w0, r1-r0)
			}
		})
	}

	_, secret, err := env.db.CreateToken(context.Background(), env.org.ID, "api")
	if err != nil {
		t.Fatal(err)
	}
	base := env.ts.URL + "/instance/v1/zones/fr-par-1"
	auth := map[string]string{"X-Auth-Token": secret, "Content-Type": "application/json"}
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"API: create a rule", "POST", "/security_groups/" + g.ID + "/rules", `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":8080}`},
		{"API: set all rules", "PUT", "/security_groups/" + g.ID + "/rules", `{"rules":[{"id":null,"protocol":"UDP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":53,"dest_port_to":null,"position":0,"editable":true,"zone":"fr-par-1"}]}`},
		{"API: patch the group", "PATCH", "/security_groups/" + g.ID, `{"description":"api"}`},
		{"API: create a group", "POST", "/security_groups", `{"name":"api-made"}`},
		{"API: patch a server", "PATCH", "/servers/" + vm.ID, `{"name":"vm2"}`},
		{"API: rules as text", "PUT", "/security_groups/" + g.ID + "/rules", "inbound accept TCP port 22 from 0.0.0.0/0\n"},
		{"API: revert", "POST", "/security_groups/" + g.ID + "/versions/3/revert", ``},
		{"API: change to confirm", "PATCH", "/security_groups/" + g.ID, `{"description":"to confirm"}`},
		{"API: confirm", "POST", "/security_groups/" + g.ID + "/confirm", ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := auth
			switch {
			case strings.HasPrefix(tc.body, "inbound"):
				h = map[string]string{"X-Auth-Token": secret, "Content-Type": "text/plain"}
			case strings.Contains(tc.body, "to confirm"):
				h = map[string]string{"X-Auth-Token": secret, "Content-Type": "application/json", "X-Rampart-Confirm-Within": "60"}
			}
			r0, w0 := env.db.Transactions()
			a := call(t, tc.method, base+tc.path, tc.body, h)
			r1, w1 := env.db.Transactions()
			if a.status >= 300 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			if w1-w0 != 1 || r1-r0 > 1 {
				t.Errorf("%d writes and %d reads, want 1 write and at most 1 read", w1-w0, r1-r0)
			}
		})
	}
}
