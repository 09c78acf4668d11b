package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	instance "github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rampart-fw/rampart/store"
)

// raw is an answer whose body may not be JSON.
type raw struct {
	status int
	header http.Header
	body   string
}

func callRaw(t *testing.T, method, url, body string, headers map[string]string) raw {
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
	b, _ := io.ReadAll(resp.Body)
	return raw{resp.StatusCode, resp.Header, string(b)}
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// TestAPIVersions: versions listed (X-Total-Count), one read back, a diff
// in the API's names, and a revert, through HTTP.
func TestAPIVersions(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1/security_groups"
	a := call(t, "POST", base, `{"name":"web","stateful":false}`, env.auth())
	id := field(a.body, "security_group", "id").(string)
	g := base + "/" + id
	call(t, "POST", g+"/rules", `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","dest_port_from":22,"description":"SSH"}`, env.auth())
	call(t, "PATCH", g, `{"inbound_default_policy":"drop","enable_default_security":false}`, env.auth())
	call(t, "PUT", g+"/rules", `{"rules":[{"protocol":"UDP","direction":"outbound","action":"drop","ip_range":"10.0.0.0/8","dest_port_from":53}]}`, env.auth())

	a = call(t, "GET", g+"/versions?per_page=2", "", env.auth())
	versions, _ := a.body["versions"].([]any)
	if a.status != 200 || a.header.Get("X-Total-Count") != "4" || len(versions) != 2 ||
		field(versions[0].(map[string]any), "version") != 4.0 || field(versions[1].(map[string]any), "summary") != "settings: inbound policy, SMTP" {
		t.Fatalf("versions: %d %v %s", a.status, a.header.Get("X-Total-Count"), a.raw)
	}
	if v := versions[0].(map[string]any); v["actor"] != "token "+env.access || v["created_at"] == "" {
		t.Errorf("version 4 = %v", v)
	}
	a = call(t, "GET", g+"/versions/2", "", env.auth())
	rules, _ := a.body["rules"].([]any)
	if a.status != 200 || field(a.body, "version", "version") != 2.0 || field(a.body, "security_group", "inbound_default_policy") != "accept" ||
		field(a.body, "security_group", "enable_default_security") != true || len(rules) != 1 || field(rules[0].(map[string]any), "description") != "SSH" {
		t.Fatalf("version 2: %s", a.raw)
	}
	a = call(t, "GET", g+"/versions/4/diff?against=2", "", env.auth())
	if a.status != 200 || field(a.body, "diff", "from") != 2.0 || field(a.body, "diff", "to") != 4.0 {
		t.Fatalf("diff: %s", a.raw)
	}
	settings, _ := field(a.body, "diff", "settings").([]any)
	added, _ := field(a.body, "diff", "rules", "added").([]any)
	removed, _ := field(a.body, "diff", "rules", "removed").([]any)
	lines, _ := field(a.body, "diff", "lines").([]any)
	if len(settings) != 2 || field(settings[1].(map[string]any), "field") != "enable_default_security" ||
		field(settings[1].(map[string]any), "before") != true || len(added) != 1 || len(removed) != 1 || len(lines) != 2 ||
		field(lines[0].(map[string]any), "text") != "inbound accept TCP port 22 from 0.0.0.0/0 # SSH" || field(lines[0].(map[string]any), "op") != "-" {
		t.Fatalf("diff: %s", a.raw)
	}
	a = call(t, "POST", g+"/versions/2/revert", "", env.auth())
	rules, _ = a.body["rules"].([]any)
	if a.status != 200 || field(a.body, "security_group", "inbound_default_policy") != "accept" || len(rules) != 6+1 {
		t.Fatalf("revert: %d %s", a.status, a.raw)
	}
	a = call(t, "GET", g+"/versions/5", "", env.auth())
	if a.status != 200 || !strings.HasPrefix(field(a.body, "version", "summary").(string), "reverted to version 2") {
		t.Fatalf("version 5 after the revert: %s", a.raw)
	}
	for _, path := range []string{"/versions/99", "/versions/x", "/versions/0/diff", "/versions/99/diff"} {
		if a := call(t, "GET", g+path, "", env.auth()); a.status != 404 || a.body["resource"] != store.ResourceVersion {
			t.Errorf("GET %s: %d %s", path, a.status, a.raw)
		}
	}
	if a := call(t, "GET", g+"/versions/4/diff?against=-3", "", env.auth()); a.status != 400 || !strings.Contains(a.raw, `"argument_name":"against"`) {
		t.Errorf("against=-3: %d %s", a.status, a.raw)
	}
	// Refused by today's rules: a BareMetal server in the group makes a
	// stateful version impossible to restore, and the answer says why.
	call(t, "PATCH", g, `{"stateful":true}`, env.auth())
	call(t, "PATCH", g, `{"stateful":false}`, env.auth())
	call(t, "POST", env.url+"/instance/v1/zones/fr-par-1/servers", `{"name":"metal","type":"baremetal","security_group":"`+id+`"}`, env.auth())
	a = call(t, "GET", g+"/versions?per_page=1", "", env.auth())
	latest := int(field(a.body["versions"].([]any)[0].(map[string]any), "version").(float64))
	a = call(t, "POST", g+"/versions/"+strconv.Itoa(latest-2)+"/revert", "", env.auth())
	if a.status != 400 || !strings.Contains(a.raw, `"argument_name":"stateful"`) || !strings.Contains(a.raw, `BareMetal server \"metal\"`) {
		t.Errorf("revert to stateful with a BareMetal server: %d %s", a.status, a.raw)
	}
}

// TestAPIConfirmOrRollBack: X-Rampart-Confirm-Within leaves the group
// pending; other changes answer 409 naming the version; POST …/confirm
// keeps it; left alone, the server rolls it back.
func TestAPIConfirmOrRollBack(t *testing.T) {
	env := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { env.db.RunRollBacks(ctx, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	base := env.url + "/instance/v1/zones/fr-par-1/security_groups"
	a := call(t, "POST", base, `{"name":"web"}`, env.auth())
	id := field(a.body, "security_group", "id").(string)
	g := base + "/" + id

	a = call(t, "PATCH", g, `{"inbound_default_policy":"drop"}`, with(env.auth(), "X-Rampart-Confirm-Within", "30"))
	if a.status != 200 || field(a.body, "security_group", "pending_confirmation", "version") != 2.0 ||
		a.header.Get("X-Rampart-Pending-Version") != "2" || a.header.Get("X-Rampart-Confirm-Deadline") == "" {
		t.Fatalf("PATCH with a confirmation: %d %v %s", a.status, a.header, a.raw)
	}
	if a := call(t, "GET", g, "", env.auth()); field(a.body, "security_group", "pending_confirmation", "version") != 2.0 {
		t.Fatalf("GET while pending: %s", a.raw)
	}
	a = call(t, "POST", g+"/rules", `{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0"}`, env.auth())
	if a.status != 409 || a.body["type"] != "conflict" || !strings.Contains(a.raw, "version 2 of this security group awaits confirmation") {
		t.Fatalf("second change while pending: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", g+"/confirm", `{"version":3}`, env.auth()); a.status != 409 {
		t.Errorf("confirming version 3: %d %s", a.status, a.raw)
	}
	a = call(t, "POST", g+"/confirm", ``, env.auth())
	if a.status != 200 || field(a.body, "security_group", "pending_confirmation") != nil || field(a.body, "security_group", "inbound_default_policy") != "drop" {
		t.Fatalf("confirm: %d %s", a.status, a.raw)
	}

	// Left unconfirmed, a rules change made as text rolls back by itself.
	a = call(t, "PUT", g+"/rules", `{"rules":[{"protocol":"TCP","direction":"inbound","action":"drop","ip_range":"0.0.0.0/0"}]}`,
		with(env.auth(), "X-Rampart-Confirm-Within", "1"))
	if a.status != 200 {
		t.Fatalf("set-all with a confirmation: %d %s", a.status, a.raw)
	}
	r := callRaw(t, "PUT", g+"/rules", "inbound drop ANY from 0.0.0.0/0 # everything\n",
		with(env.auth(), "Content-Type", "text/plain", "X-Rampart-Confirm-Within", "1"))
	if r.status != 409 || !strings.Contains(r.body, "version 3 of this security group awaits confirmation") {
		t.Fatalf("text while pending: %d %s", r.status, r.body)
	}
	time.Sleep(1200 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for {
		a = call(t, "GET", g, "", env.auth())
		if field(a.body, "security_group", "pending_confirmation") == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not rolled back 5 s after the deadline: %s", a.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a = call(t, "GET", g+"/events?per_page=1", "", env.auth())
	if ev := a.body["events"].([]any)[0].(map[string]any); ev["action"] != "rollback" || ev["actor"] != "system" {
		t.Errorf("last event = %v", ev)
	}
	a = call(t, "GET", g+"/versions?per_page=1", "", env.auth())
	if v := a.body["versions"].([]any)[0].(map[string]any); !strings.HasPrefix(v["summary"].(string), "rolled back to version 2: version 3 was not confirmed") {
		t.Errorf("latest version = %v", v)
	}
	if a := call(t, "POST", g+"/confirm", ``, env.auth()); a.status != 409 {
		t.Errorf("confirming after the roll-back: %d %s", a.status, a.raw)
	}

	// The header is checked, and refused where nothing could roll back.
	for _, tc := range []struct{ method, path, value string }{
		{"PATCH", g, "0"}, {"PATCH", g, "3601"}, {"PATCH", g, "soon"},
		{"POST", base, "30"}, {"DELETE", g, "30"}, {"POST", g + "/confirm", "30"},
		{"PATCH", env.url + "/instance/v1/zones/fr-par-1/servers/x", "30"},
	} {
		a := call(t, tc.method, tc.path, `{"name":"x"}`, with(env.auth(), "X-Rampart-Confirm-Within", tc.value))
		if a.status != 400 || !strings.Contains(a.raw, `"argument_name":"X-Rampart-Confirm-Within"`) {
			t.Errorf("%s %s with %q: %d %s", tc.method, tc.path, tc.value, a.status, a.raw)
		}
	}
	if a := call(t, "GET", g, "", env.auth()); field(a.body, "security_group", "name") != "web" {
		t.Errorf("a refused header changed the group: %s", a.raw)
	}
}

// TestAPIRulesText: the rules as text (Accept: text/plain), replaced as
// text (Content-Type: text/plain) in one change, byte for byte; per-line
// errors; any other Accept gets JSON.
func TestAPIRulesText(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1/security_groups"
	a := call(t, "POST", base, `{"name":"web"}`, env.auth())
	g := base + "/" + field(a.body, "security_group", "id").(string)
	text := "inbound accept TCP port 22 from 0.0.0.0/0 # SSH\n" +
		"inbound accept TCP ports 8000-8080 from 10.0.0.0/8 to 10.1.2.3 # app\n" +
		"outbound drop ANY to 192.0.2.0/24\n" +
		"inbound accept ICMP from ::/0\n"
	r := callRaw(t, "PUT", g+"/rules", text, with(env.auth(), "Content-Type", "text/plain; charset=utf-8"))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !strings.Contains(r.body, `"description":"app"`) {
		t.Fatalf("PUT text: %d %s", r.status, r.body)
	}
	got := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", "text/plain"))
	if got.status != 200 || got.header.Get("Content-Type") != "text/plain; charset=utf-8" || got.body != text {
		t.Fatalf("GET as text: %d %q\n%s", got.status, got.header.Get("Content-Type"), got.body)
	}
	// Round trip: the text put back changes nothing, not even the version.
	before := env.generation(t)
	r = callRaw(t, "PUT", g+"/rules", got.body, with(env.auth(), "Content-Type", "text/plain", "Accept", "text/plain"))
	if r.status != 200 || r.body != text || env.generation(t) != before {
		t.Fatalf("PUT of what GET answered: %d, generation %d → %d\n%s", r.status, before, env.generation(t), r.body)
	}
	for _, accept := range []string{"", "*/*", "application/json", "text/*", "application/json, text/plain", "text/plain;q=0.5, */*", "text/plain;q=0"} {
		r := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", accept))
		if !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("Accept %q: %s", accept, r.header.Get("Content-Type"))
		}
	}
	for _, accept := range []string{"text/plain, */*", "text/plain, application/json;q=0.9", "TEXT/PLAIN"} {
		if r := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", accept)); r.body != text {
			t.Errorf("Accept %q answered %s", accept, r.header.Get("Content-Type"))
		}
	}
	// Per-line errors, and nothing changes.
	bad := "inbound accept TCP port 22 from 0.0.0.0/0\ninbound accept TCP port 99999 from 0.0.0.0/0\n\ninbound acept TCP from 0.0.0.0/0\n"
	a = call(t, "PUT", g+"/rules", bad, with(env.auth(), "Content-Type", "text/plain"))
	details, _ := a.body["details"].([]any)
	if a.status != 400 || a.body["type"] != "invalid_arguments" || len(details) != 2 ||
		field(details[0].(map[string]any), "argument_name") != "line 2" || field(details[1].(map[string]any), "argument_name") != "line 4" ||
		!strings.Contains(field(details[1].(map[string]any), "help_message").(string), "action: must be accept or drop") {
		t.Fatalf("bad text: %d %s", a.status, a.raw)
	}
	if r := callRaw(t, "PUT", g+"/rules", "inbound accept TCP from \xff\n", with(env.auth(), "Content-Type", "text/plain")); r.status != 400 {
		t.Errorf("text that is not UTF-8: %d %s", r.status, r.body)
	}
	if got := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", "text/plain")); got.body != text || env.generation(t) != before {
		t.Errorf("refused texts changed the rules:\n%s", got.body)
	}
	// An unchanged line keeps its rule (and its counters); JSON clients
	// see the same rules.
	j1 := call(t, "GET", g+"/rules", "", env.auth())
	callRaw(t, "PUT", g+"/rules", strings.Replace(text, "port 22", "port 2222", 1), with(env.auth(), "Content-Type", "text/plain"))
	j2 := call(t, "GET", g+"/rules", "", env.auth())
	id := func(a answer, i int) any { return field(a.body["rules"].([]any)[6+i].(map[string]any), "id") }
	if id(j1, 0) == id(j2, 0) || id(j1, 1) != id(j2, 1) || id(j1, 3) != id(j2, 3) {
		t.Errorf("rule IDs after editing line 1: %v %v", j1.raw, j2.raw)
	}
}

// TestSDKKeepsDescriptions: SDK clients, which know nothing of
// descriptions, keep them: a set-all rewriting every rule, a PATCH of one.
func TestSDKKeepsDescriptions(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "described", EnableDefaultSecurity: scw.BoolPtr(false)})
	if err != nil {
		t.Fatal(err)
	}
	g := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + sg.SecurityGroup.ID
	r := callRaw(t, "PUT", g+"/rules", "inbound accept TCP port 22 from 0.0.0.0/0 # SSH\ninbound accept TCP port 80 from 0.0.0.0/0 # web\noutbound accept UDP port 53 to 9.9.9.9 # DNS\n",
		with(env.auth(), "Content-Type", "text/plain"))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	list, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID})
	if err != nil {
		t.Fatal(err)
	}
	// The SDK's own way of changing a rule: send every rule back.
	var rules []*instance.SetSecurityGroupRulesRequestRule
	for _, x := range list.Rules {
		if !x.Editable {
			continue
		}
		rr := &instance.SetSecurityGroupRulesRequestRule{ID: scw.StringPtr(x.ID), Action: x.Action, Protocol: x.Protocol,
			Direction: x.Direction, IPRange: x.IPRange, DestPortFrom: x.DestPortFrom, DestPortTo: x.DestPortTo,
			Position: x.Position, Editable: scw.BoolPtr(true), Zone: &x.Zone}
		if x.DestPortFrom != nil && *x.DestPortFrom == 80 {
			rr.DestPortFrom = scw.Uint32Ptr(8080)
		}
		rules = append(rules, rr)
	}
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	rules = append(rules, &instance.SetSecurityGroupRulesRequestRule{Action: instance.SecurityGroupRuleActionAccept,
		Protocol: instance.SecurityGroupRuleProtocolTCP, Direction: instance.SecurityGroupRuleDirectionInbound,
		IPRange: scw.IPNet{IPNet: *all}, DestPortFrom: scw.Uint32Ptr(443)})
	if _, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	want := "inbound accept TCP port 22 from 0.0.0.0/0 # SSH\ninbound accept TCP port 8080 from 0.0.0.0/0 # web\noutbound accept UDP port 53 to 9.9.9.9 # DNS\ninbound accept TCP port 443 from 0.0.0.0/0\n"
	if got := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", "text/plain")); got.body != want {
		t.Fatalf("after the SDK's set-all:\n%s\nwant:\n%s", got.body, want)
	}
	if _, err := api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{SecurityGroupID: sg.SecurityGroup.ID,
		SecurityGroupRuleID: list.Rules[0].ID, Action: instance.SecurityGroupRuleActionDrop}); err != nil {
		t.Fatal(err)
	}
	if got := callRaw(t, "GET", g+"/rules", "", with(env.auth(), "Accept", "text/plain")); !strings.HasPrefix(got.body, "inbound drop TCP port 22 from 0.0.0.0/0 # SSH\n") {
		t.Fatalf("after the SDK's PATCH:\n%s", got.body)
	}
	// And what the SDK decodes is unchanged by the extra field.
	after, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: sg.SecurityGroup.ID})
	if err != nil || len(after.Rules) != 4 || after.Rules[0].Action != instance.SecurityGroupRuleActionDrop {
		t.Fatalf("SDK list: %v %v", after, err)
	}
}

// TestAPIShowsSafeFieldErrors: the store's refusals of the inputs this
// API adds (the confirmation header, a comparison, rules as text, a rule's
// description) reach the client naming their field, for every case of
// store.FieldCases of those inputs.
func TestAPIShowsSafeFieldErrors(t *testing.T) {
	env := newTestEnv(t)
	base := env.url + "/instance/v1/zones/fr-par-1/security_groups"
	a := call(t, "POST", base, `{"name":"web"}`, env.auth())
	g := base + "/" + field(a.body, "security_group", "id").(string)
	tested := 0
	for _, tc := range store.FieldCases {
		var r raw
		want := tc.Field
		switch {
		case tc.Input == "confirm":
			r = callRaw(t, "PATCH", g, `{"name":"x"}`, with(env.auth(), "X-Rampart-Confirm-Within", tc.Values["confirm_within"]))
			want = "X-Rampart-Confirm-Within"
		case tc.Input == "compare":
			r = callRaw(t, "GET", g+"/versions/1/diff?against="+tc.Values["against"], "", env.auth())
		case tc.Input == "rules-text":
			r = callRaw(t, "PUT", g+"/rules", tc.Values["rules"], with(env.auth(), "Content-Type", "text/plain"))
		case tc.Input == "rule" && tc.Field == "description":
			desc, _ := json.Marshal(tc.Values["description"])
			r = callRaw(t, "POST", g+"/rules", fmt.Sprintf(`{"protocol":"TCP","direction":"inbound","action":"accept","ip_range":"0.0.0.0/0","description":%s}`,
				desc), env.auth())
		default:
			continue
		}
		tested++
		if r.status != 400 || !strings.Contains(r.body, `"argument_name":"`+want+`"`) {
			t.Errorf("%s %s %v: %d %s", tc.Input, tc.Field, tc.Values, r.status, r.body)
		}
	}
	if tested < 7 {
		t.Fatalf("only %d cases", tested)
	}
}
