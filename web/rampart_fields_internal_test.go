package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	instance "github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rampart-fw/rampart/store"
)

// jsonNames returns the JSON names of a struct's fields.
func jsonNames(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// rampartBodies are the request bodies that update stored objects (a PATCH,
// a PUT, a set-all), with the Scaleway SDK's requests that send them: a
// field of a body the SDK never sends is Rampart's.
var rampartBodies = []struct {
	body any
	sdk  []any
}{
	{ruleBody{}, []any{instance.SetSecurityGroupRulesRequestRule{}, instance.UpdateSecurityGroupRuleRequest{}, instance.CreateSecurityGroupRuleRequest{}}},
	{groupPatchBody{}, []any{instance.UpdateSecurityGroupRequest{}, instance.SecurityGroup{}, instance.CreateSecurityGroupRequest{}}},
	{serverBody{}, []any{instance.UpdateServerRequest{}, instance.CreateServerRequest{}}},
}

// remoteFields are the rule's other remote sides: one at most per rule,
// each instead of ip_range, tested one rule each.
var remoteFields = []string{"ip_set_id", "remote_security_group_id"}

// ruleSamples are values of the Rampart fields of a rule that differ from
// a new rule's, to show that they are kept.
var ruleSamples = map[string]any{
	"description":   "kept",
	"dest_ip_range": "192.0.2.0/24",
	"log":           true,
}

// groupSamples are values of a group's Rampart fields that differ from a
// new group's.
var groupSamples = map[string]any{
	"log_default_drops": false,
}

// TestRampartFieldsKeptWhenAbsent is the rule of decoding in
// api_decode.go ("Rampart fields"), checked for every field, now and
// later. Structurally: every field of an updating body that the Scaleway
// SDK does not send is a pointer tagged rampart:"keep", and no field the
// SDK sends is tagged. In behaviour: for each Rampart field of a rule, a
// set-all and a PATCH that leave it out (as the SDK does) keep its value.
func TestRampartFieldsKeptWhenAbsent(t *testing.T) {
	var ruleFields, serverFields, groupFields []string
	for _, b := range rampartBodies {
		bt := reflect.TypeOf(b.body)
		sdk := map[string]bool{}
		for _, s := range b.sdk {
			for n := range jsonNames(reflect.TypeOf(s)) {
				sdk[n] = true
			}
		}
		for i := range bt.NumField() {
			f := bt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			kept := f.Tag.Get("rampart") == "keep"
			switch {
			case !sdk[name] && !kept:
				t.Errorf("%s.%s (%q) is not sent by the Scaleway SDK: tag it rampart:\"keep\" and keep its stored value when it is absent", bt.Name(), f.Name, name)
			case sdk[name] && kept:
				t.Errorf("%s.%s (%q) is a Scaleway field: it is not Rampart's to keep", bt.Name(), f.Name, name)
			case kept && f.Type.Kind() != reflect.Pointer:
				t.Errorf("%s.%s (%q) is a Rampart field but not a pointer: absent could not be told from empty", bt.Name(), f.Name, name)
			}
			if kept && bt == reflect.TypeOf(ruleBody{}) {
				ruleFields = append(ruleFields, name)
			}
			if kept && bt == reflect.TypeOf(serverBody{}) {
				serverFields = append(serverFields, name)
			}
			if kept && bt == reflect.TypeOf(groupPatchBody{}) {
				groupFields = append(groupFields, name)
			}
		}
	}
	slices.Sort(ruleFields)
	stored := slices.Sorted(slices.Values(store.KeptRuleFields))
	if !slices.Equal(ruleFields, stored) {
		t.Errorf("Rampart fields of a rule %v, but the store keeps %v in a set-all", ruleFields, stored)
	}

	// In behaviour, through the API, as the SDK sends its requests.
	s, db := newInternalServer(t, &bytes.Buffer{})
	ts := httptest.NewServer(s)
	defer ts.Close()
	ctx := context.Background()
	org, _ := db.EnsureOrganization(ctx, "acme")
	_, secret, _ := db.CreateToken(ctx, org.ID, "")
	g, _ := db.CreateGroup(ctx, org.ID, "fr-par-1", store.GroupInput{Name: "web", SMTPEnabled: true})
	rules := "/instance/v1/zones/fr-par-1/security_groups/" + g.ID + "/rules"
	do := func(method, path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(raw))
		req.Header.Set("X-Auth-Token", secret)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		return m
	}
	created := map[string]any{"protocol": "TCP", "direction": "inbound", "action": "accept", "ip_range": "0.0.0.0/0", "dest_port_from": 22}
	var plain []string // the fields a rule may have all at once
	for _, name := range ruleFields {
		if !slices.Contains(remoteFields, name) {
			plain = append(plain, name)
		}
	}
	for _, name := range plain {
		v, ok := ruleSamples[name]
		if !ok {
			t.Fatalf("rule field %q has no sample value in ruleSamples", name)
		}
		created[name] = v
	}
	rule := do("POST", rules, created)["rule"].(map[string]any)
	check := func(when string, r map[string]any) {
		t.Helper()
		for _, name := range plain {
			if r[name] != ruleSamples[name] {
				t.Errorf("%s: %s = %v, want %v kept", when, name, r[name], ruleSamples[name])
			}
		}
	}
	check("created", rule)
	// The SDK's set-all element and PATCH, as it marshals them.
	port := uint32(2222)
	set := do("PUT", rules, map[string]any{"rules": []instance.SetSecurityGroupRulesRequestRule{{
		ID: &[]string{rule["id"].(string)}[0], Action: "drop", Protocol: "TCP", Direction: "inbound",
		IPRange: mustIPNet(t, "0.0.0.0/0"), DestPortFrom: &port, Position: 1,
	}}})["rules"].([]any)
	check("after the SDK's set-all", set[0].(map[string]any))
	patched := do("PATCH", rules+"/"+rule["id"].(string), instance.UpdateSecurityGroupRuleRequest{Action: "accept"})["rule"].(map[string]any)
	check("after the SDK's PATCH", patched)

	// The remote sides, one rule each: the SDK's set-all element for the
	// rule (it knows nothing of them) and its PATCH keep them.
	ipSet, _ := db.CreateIPSet(ctx, org.ID, "fr-par-1", store.IPSetInput{Name: "office", Entries: []string{"192.0.2.0/24"}})
	samples := map[string]string{"ip_set_id": ipSet.ID, "remote_security_group_id": g.ID}
	for _, name := range remoteFields {
		r := do("POST", rules, map[string]any{"protocol": "TCP", "direction": "inbound", "action": "accept", name: samples[name]})["rule"].(map[string]any)
		id := r["id"].(string)
		set := do("PUT", rules, map[string]any{"rules": []instance.SetSecurityGroupRulesRequestRule{{
			ID: &id, Action: "drop", Protocol: "TCP", Direction: "inbound", IPRange: mustIPNet(t, "0.0.0.0/0"), DestPortFrom: &port, Position: 1,
		}}})["rules"].([]any)
		var kept map[string]any
		for _, x := range set {
			if x.(map[string]any)["id"] == id {
				kept = x.(map[string]any)
			}
		}
		if kept == nil || kept[name] != samples[name] || kept["action"] != "accept" || kept["ip_range"] != remotePlaceholder {
			t.Errorf("after the SDK's set-all: %s rule = %v", name, kept)
		}
		patched := do("PATCH", rules+"/"+id, instance.UpdateSecurityGroupRuleRequest{Action: "drop"})["rule"].(map[string]any)
		if patched[name] != samples[name] || patched["action"] != "drop" {
			t.Errorf("after the SDK's PATCH: %s rule = %v", name, patched)
		}
	}

	// A group's Rampart fields, kept by the SDK's PATCH and its full PUT.
	gbody := map[string]any{"name": "kept"}
	for _, name := range groupFields {
		v, ok := groupSamples[name]
		if !ok {
			t.Fatalf("group field %q has no sample value in groupSamples", name)
		}
		gbody[name] = v
	}
	sg := do("POST", "/instance/v1/zones/fr-par-1/security_groups", gbody)["security_group"].(map[string]any)
	gpath := "/instance/v1/zones/fr-par-1/security_groups/" + sg["id"].(string)
	for _, step := range []struct {
		method string
		body   any
	}{
		{"PATCH", instance.UpdateSecurityGroupRequest{Description: &[]string{"patched"}[0]}},
		{"PUT", instance.SecurityGroup{Name: "put", InboundDefaultPolicy: "drop", OutboundDefaultPolicy: "accept"}},
	} {
		got := do(step.method, gpath, step.body)["security_group"].(map[string]any)
		for _, name := range groupFields {
			if got[name] != groupSamples[name] {
				t.Errorf("after the SDK's group %s: %s = %v, want %v kept", step.method, name, got[name], groupSamples[name])
			}
		}
	}

	// A server's Rampart fields, kept by the SDK's PATCH.
	stateless, _ := db.CreateGroup(ctx, org.ID, "fr-par-1", store.GroupInput{Name: "metal"})
	body := map[string]any{"name": "m1", "security_group": stateless.ID}
	for _, name := range serverFields {
		v, ok := serverSamples[name]
		if !ok {
			t.Fatalf("server field %q has no sample value in serverSamples", name)
		}
		body[name] = v
	}
	sv := do("POST", "/instance/v1/zones/fr-par-1/servers", body)["server"].(map[string]any)
	after := do("PATCH", "/instance/v1/zones/fr-par-1/servers/"+sv["id"].(string), instance.UpdateServerRequest{Name: &[]string{"m2"}[0]})["server"].(map[string]any)
	for _, name := range serverFields {
		if got, _ := json.Marshal(after[name]); string(got) != mustJSON(serverSamples[name]) {
			t.Errorf("after the SDK's server PATCH: %s = %s, want %s kept", name, got, mustJSON(serverSamples[name]))
		}
	}
}

// serverSamples are values of a server's Rampart fields; local and host
// keep their defaults (a local server and a second host need more setup),
// which a PATCH that reset them would keep too: type, interface and
// addresses are the ones that show it.
var serverSamples = map[string]any{
	"type":      "baremetal",
	"interface": "vnet7",
	"addresses": []string{"192.0.2.7"},
	"local":     false,
	"host":      "",
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func mustIPNet(t *testing.T, s string) scw.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return scw.IPNet{IPNet: *n}
}
