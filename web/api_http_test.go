package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call sends a request with the given headers ("" values skipped) and
// decodes the JSON answer.
func call(t *testing.T, method, url, body string, headers map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, url, raw)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: Content-Type = %q", method, url, ct)
		}
	}
	return a
}

func (env *testEnv) auth() map[string]string {
	return map[string]string{"X-Auth-Token": env.secret, "Content-Type": "application/json"}
}

func field(body map[string]any, path ...string) any {
	var v any = body
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestDocumentationCurlSteps replays steps 3 to 10 of the documentation
// with their exact headers and bodies; only the host (and the group ID the
// documentation could not know) change.
func TestDocumentationCurlSteps(t *testing.T) {
	env := newTestEnv(t)
	if _, err := env.db.CreateUser(context.Background(), env.org.ID, "jsnow@got.wint", "winter is coming"); err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"X-Auth-Token": env.secret}
	hJSON := map[string]string{"x-auth-token": env.secret, "Content-Type": "application/json;charset=utf-8"}

	// 3. Retrieve your organization ID.
	a := call(t, "GET", env.url+"/organizations", "", h)
	orgs, _ := a.body["organizations"].([]any)
	if a.status != 200 || len(orgs) != 1 || field(orgs[0].(map[string]any), "id") != env.org.ID {
		t.Fatalf("step 3: %d %s", a.status, a.raw)
	}
	if users, _ := orgs[0].(map[string]any)["users"].([]any); len(users) != 1 {
		t.Fatalf("step 3: users = %v", orgs[0])
	}
	// 5. Retrieve your security groups.
	a = call(t, "GET", env.url+"/security_groups", "", map[string]string{"x-auth-token": env.secret})
	if a.status != 200 || a.body["security_groups"] == nil {
		t.Fatalf("step 5: %d %s", a.status, a.raw)
	}
	// 6. Create a new security group (the organization in the body is the
	// documentation's; the token decides where the group goes).
	a = call(t, "POST", env.url+"/security_groups",
		`{"organization":"717ff161-41a6-4458-b4f8-e6d07d7d9562","name":"New group","description":"new"}`, hJSON)
	if a.status != 201 || field(a.body, "security_group", "name") != "New group" || field(a.body, "security_group", "organization") != env.org.ID {
		t.Fatalf("step 6: %d %s", a.status, a.raw)
	}
	id := field(a.body, "security_group", "id").(string)
	if field(a.body, "security_group", "stateful") != false || field(a.body, "security_group", "inbound_default_policy") != "accept" {
		t.Fatalf("step 6 defaults: %s", a.raw)
	}
	steps := []struct {
		step  string
		body  string
		field string
		want  any
	}{
		{"7", `{"stateful":true}`, "stateful", true},
		{"8", `{"inbound_default_policy":"drop"}`, "inbound_default_policy", "drop"},
		{"9", `{"outbound_default_policy":"drop"}`, "outbound_default_policy", "drop"},
		{"10", `{"outbound_default_policy":"accept"}`, "outbound_default_policy", "accept"},
	}
	for _, s := range steps {
		a = call(t, "PUT", env.url+"/security_groups/"+id, s.body, hJSON)
		if a.status != 200 || field(a.body, "security_group", s.field) != s.want {
			t.Fatalf("step %s: %d %s", s.step, a.status, a.raw)
		}
		// Each partial PUT keeps what the previous ones set.
		if field(a.body, "security_group", "stateful") != true || field(a.body, "security_group", "name") != "New group" {
			t.Fatalf("step %s lost earlier fields: %s", s.step, a.raw)
		}
	}
	a = call(t, "GET", env.url+"/security_groups/"+id, "", h)
	if field(a.body, "security_group", "inbound_default_policy") != "drop" {
		t.Fatalf("final state: %s", a.raw)
	}
	a = call(t, "DELETE", env.url+"/security_groups/"+id, "", h)
	if a.status != 204 || a.raw != "" {
		t.Fatalf("delete: %d %q", a.status, a.raw)
	}
}

func TestAuthentication(t *testing.T) {
	env := newTestEnv(t)
	url := env.url + "/instance/v1/zones/fr-par-1/security_groups"
	for _, tt := range []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"not a UUID", "secret"},
		{"unknown token", "4b3c8e2a-1d2f-4e5a-9b6c-7d8e9f0a1b2c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, "GET", url, "", map[string]string{"X-Auth-Token": tt.token})
			if a.status != 401 || a.body["type"] != "denied_authentication" {
				t.Fatalf("%d %s", a.status, a.raw)
			}
		})
	}
	// Header names are case-insensitive.
	if a := call(t, "GET", url, "", map[string]string{"x-auth-token": env.secret}); a.status != 200 {
		t.Fatalf("lower-case header: %d", a.status)
	}
}

// TestBadInput sends one bad request per field and rule: the exact status,
// an error naming the field, and nothing written.
func TestBadInput(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	base := env.url + "/instance/v1/zones/fr-par-1"
	g, err := env.db.CreateGroup(ctx, env.org.ID, "fr-par-1", store.GroupInput{Name: "g", Stateful: true})
	if err != nil {
		t.Fatal(err)
	}
	full, err := env.db.CreateGroup(ctx, env.org.ID, "fr-par-1", store.GroupInput{Name: "full"})
	if err != nil {
		t.Fatal(err)
	}
	hundred := make([]store.RuleInput, 100)
	for i := range hundred {
		hundred[i] = store.RuleInput{IPRange: "0.0.0.0/0"}
	}
	if _, err := env.db.SetRules(ctx, env.org.ID, "fr-par-1", full.ID, hundred); err != nil {
		t.Fatal(err)
	}
	rules := base + "/security_groups/" + g.ID + "/rules"
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, method, url, body string
		status                  int
		field                   string // argument_name expected in details
		errType                 string
	}{
		{"bad CIDR", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"10.0.0.0/33"}`, 400, "ip_range", "invalid_arguments"},
		{"ports on ICMP", "POST", rules, `{"protocol":"ICMP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":22}`, 400, "dest_port_from", "invalid_arguments"},
		{"from above to", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":90,"dest_port_to":80}`, 400, "dest_port_to", "invalid_arguments"},
		{"port 65536", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":65536}`, 400, "dest_port_from", "invalid_arguments"},
		{"negative port", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":-1}`, 400, "dest_port_from", "invalid_arguments"},
		{"port as a string", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":"22"}`, 400, "dest_port_from", "invalid_arguments"},
		{"unknown protocol", "POST", rules, `{"protocol":"SCTP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0"}`, 400, "protocol", "invalid_arguments"},
		{"unknown action", "POST", rules, `{"protocol":"TCP","direction":"inbound","action":"reject","ip_range":"0.0.0.0/0"}`, 400, "action", "invalid_arguments"},
		{"unknown policy", "POST", base + "/security_groups", `{"name":"x","inbound_default_policy":"reject"}`, 400, "inbound_default_policy", "invalid_arguments"},
		{"101st rule", "POST", base + "/security_groups/" + full.ID + "/rules", `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0"}`, 400, "rules", "invalid_arguments"},
		{"name too long", "POST", base + "/security_groups", `{"name":"` + strings.Repeat("n", 129) + `"}`, 400, "name", "invalid_arguments"},
		{"missing name", "POST", base + "/security_groups", `{"description":"no name"}`, 400, "name", "invalid_arguments"},
		{"stateful group to a BareMetal server", "POST", base + "/servers", `{"name":"metal","type":"baremetal","security_group":"` + g.ID + `"}`, 400, "security_group", "invalid_arguments"},
		{"unknown zone", "GET", env.url + "/instance/v1/zones/xx-nowhere-1/security_groups/" + g.ID, "", 404, "", "not_found"},
		{"unknown zone on create", "POST", env.url + "/instance/v1/zones/xx-nowhere-1/security_groups", `{"name":"x"}`, 404, "", "not_found"},
		{"malformed JSON", "POST", base + "/security_groups", `{"name":`, 400, "", "invalid_request_error"},
		{"oversize body", "POST", base + "/security_groups", big, 413, "", "request_entity_too_large"},
		{"bad page", "GET", base + "/security_groups?page=zero", "", 400, "page", "invalid_arguments"},
		{"another project", "POST", base + "/security_groups", `{"name":"x","project":"4b3c8e2a-1d2f-4e5a-9b6c-7d8e9f0a1b2c"}`, 403, "", "permissions_denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.generation(t)
			a := call(t, tt.method, tt.url, tt.body, env.auth())
			if a.status != tt.status || a.body["type"] != tt.errType {
				t.Fatalf("status %d type %v, want %d %s: %s", a.status, a.body["type"], tt.status, tt.errType, a.raw)
			}
			if tt.field != "" {
				details, _ := a.body["details"].([]any)
				found := false
				for _, d := range details {
					if d.(map[string]any)["argument_name"] == tt.field && d.(map[string]any)["help_message"] != "" {
						found = true
					}
				}
				if !found {
					t.Fatalf("details do not name %s: %s", tt.field, a.raw)
				}
			}
			if after := env.generation(t); after != before {
				t.Fatalf("generation moved from %d to %d: something was written", before, after)
			}
		})
	}
}

// TestTenancy tries every endpoint with another organization's IDs: each
// answers 404, exactly as for an object that does not exist, and nothing
// changes.
func TestTenancy(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	other, _, otherSecret := env.newOrg(t, "globex")
	g, err := env.db.CreateGroup(ctx, other.ID, "fr-par-1", store.GroupInput{Name: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.db.CreateRule(ctx, other.ID, "fr-par-1", g.ID, store.RuleInput{IPRange: "0.0.0.0/0"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.db.CreateServer(ctx, other.ID, "fr-par-1", store.ServerInput{Name: "their-vm", SecurityGroupID: g.ID})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := env.db.CreateGroup(ctx, env.org.ID, "fr-par-1", store.GroupInput{Name: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	mineSrv, err := env.db.CreateServer(ctx, env.org.ID, "fr-par-1", store.ServerInput{Name: "my-vm", SecurityGroupID: mine.ID})
	if err != nil {
		t.Fatal(err)
	}
	base := env.url + "/instance/v1/zones/fr-par-1"
	sg := base + "/security_groups/" + g.ID
	rule := `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0"}`
	tests := []struct{ method, url, body string }{
		{"GET", sg, ""},
		{"PATCH", sg, `{"name":"stolen"}`},
		{"PUT", sg, `{"name":"stolen"}`},
		{"DELETE", sg, ""},
		{"GET", sg + "/rules", ""},
		{"POST", sg + "/rules", rule},
		{"PUT", sg + "/rules", `{"rules":[]}`},
		{"GET", sg + "/rules/" + r.ID, ""},
		{"PATCH", sg + "/rules/" + r.ID, `{"action":"drop"}`},
		{"DELETE", sg + "/rules/" + r.ID, ""},
		{"GET", base + "/security_groups/" + mine.ID + "/rules/" + r.ID, ""},
		{"PATCH", base + "/security_groups/" + mine.ID + "/rules/" + r.ID, `{"action":"drop"}`},
		{"DELETE", base + "/security_groups/" + mine.ID + "/rules/" + r.ID, ""},
		{"GET", base + "/servers/" + s.ID, ""},
		{"PATCH", base + "/servers/" + s.ID, `{"name":"stolen"}`},
		{"PATCH", base + "/servers/" + s.ID, `{"security_group":{"id":"` + mine.ID + `"}}`},
		{"DELETE", base + "/servers/" + s.ID, ""},
		{"POST", sg + "/evaluate", `{"direction":"inbound","protocol":"TCP","ip":"192.0.2.1","port":22}`},
		{"GET", sg + "/analysis", ""},
		{"POST", base + "/servers/" + s.ID + "/evaluate", `{"direction":"inbound","protocol":"TCP","ip":"192.0.2.1","port":22}`},
		{"POST", base + "/servers/" + s.ID + "/evaluate", `{"from_server":"` + mineSrv.ID + `","protocol":"TCP","port":22}`},
		{"GET", env.url + "/security_groups/" + g.ID, ""},
		{"PUT", env.url + "/security_groups/" + g.ID, `{"stateful":true}`},
		{"DELETE", env.url + "/security_groups/" + g.ID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+strings.TrimPrefix(tt.url, env.url), func(t *testing.T) {
			before := env.generation(t)
			a := call(t, tt.method, tt.url, tt.body, env.auth())
			if a.status != 404 || a.body["type"] != "not_found" {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			if after := env.generation(t); after != before {
				t.Fatal("a request on another organization's object wrote")
			}
		})
	}
	// Moving my server into their group is refused the same way.
	before := env.generation(t)
	a := call(t, "PATCH", base+"/servers/"+mineSrv.ID, `{"security_group":{"id":"`+g.ID+`"}}`, env.auth())
	if a.status != 400 || env.generation(t) != before {
		t.Fatalf("move into their group: %d %s", a.status, a.raw)
	}
	// Lists show only one's own objects.
	a = call(t, "GET", base+"/security_groups", "", env.auth())
	for _, item := range a.body["security_groups"].([]any) {
		if item.(map[string]any)["organization"] != env.org.ID {
			t.Fatalf("list shows another organization's group: %v", item)
		}
	}
	a = call(t, "GET", base+"/servers", "", map[string]string{"X-Auth-Token": otherSecret})
	if servers := a.body["servers"].([]any); len(servers) != 1 {
		t.Fatalf("their list = %v", servers)
	}
}

func TestAnswerShapes(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1"
	a := call(t, "POST", base+"/security_groups", `{"name":"n","project":"`+env.org.ID+`"}`, env.auth())
	if a.status != 201 || a.header.Get("Location") == "" {
		t.Fatalf("create: %d, Location %q", a.status, a.header.Get("Location"))
	}
	date, _ := field(a.body, "security_group", "creation_date").(string)
	if len(date) != len("2025-09-05T15:46:04.714160+00:00") || !strings.HasSuffix(date, "+00:00") {
		t.Fatalf("creation_date = %q, want Scaleway's format", date)
	}
	id := field(a.body, "security_group", "id").(string)
	a = call(t, "POST", base+"/security_groups/"+id+"/rules",
		`{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"8.8.8.8/32","dest_port_from":1,"dest_port_to":1024,"position":1}`, env.auth())
	if a.status != 201 || field(a.body, "rule", "ip_range") != "8.8.8.8" || field(a.body, "rule", "dest_ip_range") != nil ||
		field(a.body, "rule", "zone") != "fr-par-1" || field(a.body, "rule", "editable") != true {
		t.Fatalf("rule answer: %s", a.raw)
	}
	a = call(t, "POST", base+"/security_groups/"+id+"/rules",
		`{"protocol":"ICMP","direction":"outbound","action":"drop","ip_range":"10.1.2.3/8"}`, env.auth())
	if field(a.body, "rule", "ip_range") != "10.0.0.0/8" || field(a.body, "rule", "dest_port_from") != nil {
		t.Fatalf("normalised range: %s", a.raw)
	}
	a = call(t, "GET", base+"/security_groups", "", env.auth())
	if a.header.Get("X-Total-Count") != "1" {
		t.Fatalf("X-Total-Count = %q", a.header.Get("X-Total-Count"))
	}
	a = call(t, "POST", base+"/servers", `{"name":"vm","security_group":{"id":"`+id+`"},"interface":"vnet0","addresses":["192.0.2.10","2001:db8::10"]}`, env.auth())
	if a.status != 201 || field(a.body, "server", "security_group", "id") != id || field(a.body, "server", "ipv6") != nil {
		t.Fatalf("server: %s", a.raw)
	}
	if addrs, _ := field(a.body, "server", "addresses").([]any); len(addrs) != 2 {
		t.Fatalf("addresses: %s", a.raw)
	}
	a = call(t, "DELETE", base+"/servers/"+field(a.body, "server", "id").(string), "", env.auth())
	if a.status != 204 || a.raw != "" {
		t.Fatalf("delete server: %d %q", a.status, a.raw)
	}
}

func TestGroupEvents(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1"
	a := call(t, "POST", base+"/security_groups", `{"name":"audited"}`, env.auth())
	id := field(a.body, "security_group", "id").(string)
	call(t, "PATCH", base+"/security_groups/"+id, `{"inbound_default_policy":"drop"}`, env.auth())
	a = call(t, "GET", base+"/security_groups/"+id+"/events", "", env.auth())
	events, _ := a.body["events"].([]any)
	if a.status != 200 || len(events) != 2 {
		t.Fatalf("events: %d %s", a.status, a.raw)
	}
	last := events[0].(map[string]any)
	if last["action"] != "update" || last["actor"] != "token "+env.access ||
		field(last, "before", "InboundDefaultPolicy") != "accept" || field(last, "after", "InboundDefaultPolicy") != "drop" {
		t.Fatalf("last event = %v", last)
	}
	other, _, otherSecret := env.newOrg(t, "globex")
	_ = other
	if a := call(t, "GET", base+"/security_groups/"+id+"/events", "", map[string]string{"X-Auth-Token": otherSecret}); a.status != 404 {
		t.Fatalf("another organization reads the log: %d", a.status)
	}
}
