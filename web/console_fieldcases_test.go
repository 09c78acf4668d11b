package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// TestConsoleShowsEveryStoreFieldError posts, for every case of
// store.FieldCases that a console form can send, the form with that one
// value changed, and checks that the store's message is shown beside the
// field it names (the control is marked invalid and described by it), and
// that nothing was written. The cases come from the store: a new check is
// covered here as soon as its case exists there.
func TestConsoleShowsEveryStoreFieldError(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t)
	g := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "web"})
	vm := env.mustServer(t, "fr-par-1", store.ServerInput{Name: "vm-1", Interface: "vnet1", SecurityGroupID: g.ID})
	env.mustRule(t, g, store.Inbound, 22)

	// The forms, as a person fills them in validly, by the store input
	// they make.
	forms := map[string]struct {
		path  func(store.FieldCase) string
		valid url.Values
	}{
		"group": {func(store.FieldCase) string { return "/security-groups/new" }, url.Values{
			"name": {"api"}, "description": {"front"}, "zone": {"fr-par-1"}, "inbound_default_policy": {"drop"},
			"outbound_default_policy": {"accept"}, "stateful": {"on"}, "smtp_enabled": {""}, "servers": {""}}},
		"group-update": {func(c store.FieldCase) string { return groupPath(caseGroup(t, env, c, g), "") }, url.Values{
			"name": {"web"}, "description": {""}, "inbound_default_policy": {"drop"}, "outbound_default_policy": {"accept"},
			"stateful": {""}, "smtp_enabled": {""}}},
		"rule": {func(store.FieldCase) string { return groupPath(g, "/rules") }, url.Values{
			"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"10.0.0.0/8"},
			"dest_port_from": {""}, "dest_port_to": {""}, "description": {""}, "ip_set_id": {""}, "remote_security_group_id": {""}}},
		"add-server": {func(store.FieldCase) string { return groupPath(g, "/servers") }, url.Values{"server_id": {vm.ID}}},
		"server": {func(c store.FieldCase) string {
			if c.Setup == "local" {
				env.mustServer(t, "fr-par-1", store.ServerInput{Name: "host", Local: true})
			}
			return "/servers"
		}, url.Values{
			"name": {"vm-2"}, "zone": {"fr-par-1"}, "type": {"instance"}, "interface": {"vnet2"},
			"addresses": {"192.0.2.2"}, "local": {""}, "security_group": {g.ID}}},
		"token": {func(store.FieldCase) string { return "/tokens" }, url.Values{"description": {"ci"}}},
		"ip-set": {func(store.FieldCase) string { return "/ip-sets?zone=fr-par-1" }, url.Values{
			"name": {"office"}, "description": {""}, "entries": {"192.0.2.0/24"}}},
	}
	tested := 0
	for _, tc := range store.FieldCases {
		f, ok := forms[tc.Input]
		if !ok {
			continue // not a console form (the CLI's users, the API's paging)
		}
		form := url.Values{}
		for k, v := range f.valid {
			form[k] = v
		}
		onForm := true
		for k, v := range tc.Values {
			if _, ok := f.valid[k]; !ok {
				onForm = false // a field only the API sends (tags, dest_ip_range, …)
			}
			form.Set(k, v)
		}
		if !onForm {
			t.Logf("%s %s: not a field of the console's form", tc.Input, tc.Field)
			continue
		}
		tested++
		t.Run(tc.Input+"/"+tc.Field+"/"+strings.Join(mapKeys(tc.Values), ","), func(t *testing.T) {
			path := f.path(tc)
			before, _ := env.db.Generation(ctx)
			p := b.post(path, form, false, false)
			if p.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", p.status)
			}
			msg := p.doc.Find(`.error[data-field="` + tc.Field + `"]`)
			if strings.TrimSpace(msg.Text()) == "" {
				t.Fatalf("no message beside %s; page says: %s", tc.Field, strings.TrimSpace(p.doc.Find("#main .alert, #main .error").Text()))
			}
			id, _ := msg.Attr("id")
			ctrl := p.doc.Find(`[name="` + tc.Field + `"][aria-describedby*="` + id + `"]`)
			if tc.Field != "servers" && ctrl.Length() == 0 {
				t.Errorf("no control named %s described by the message #%s", tc.Field, id)
			}
			if after, _ := env.db.Generation(ctx); after != before {
				t.Errorf("generation moved from %d to %d: a refused form wrote", before, after)
			}
		})
	}
	if tested < 20 {
		t.Fatalf("only %d cases reached a console form", tested)
	}
}

// caseGroup returns the group a group-update case edits: for the
// "baremetal" setup, a stateless group protecting a BareMetal server.
func caseGroup(t *testing.T, env *consoleEnv, c store.FieldCase, g store.Group) store.Group {
	if c.Setup != "baremetal" {
		return g
	}
	bare := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "metal"})
	env.mustServer(t, "fr-par-1", store.ServerInput{Name: "metal-1", Type: store.BareMetal, SecurityGroupID: bare.ID})
	return bare
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
