package web_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// explainFixture is a stateful group (inbound drop, outbound accept, SMTP
// blocked) with these inbound rules:
//
//	1 accept TCP 0.0.0.0/0 port 22
//	2 drop   TCP 203.0.113.0/24 port 22        (shadowed by 1)
//	3 accept TCP 10.0.0.0/8 to 192.0.2.0/24 port 80 (needs the local address)
//	4 accept ANY 198.51.100.0/24
//
// and two servers in it (vm with addresses, ghost bound to nothing), and a
// server peer in an accept-all group.
type explainFixture struct {
	g, open         store.Group
	rules           []store.Rule
	vm, ghost, peer store.Server
}

func newExplainFixture(t *testing.T, db *store.DB, org string) explainFixture {
	t.Helper()
	ctx := context.Background()
	var f explainFixture
	var err error
	if f.g, err = db.CreateGroup(ctx, org, "fr-par-1", store.GroupInput{Name: "web", Stateful: true,
		InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept}); err != nil {
		t.Fatal(err)
	}
	if f.open, err = db.CreateGroup(ctx, org, "fr-par-1", store.GroupInput{Name: "open", SMTPEnabled: true}); err != nil {
		t.Fatal(err)
	}
	p22, p80 := 22, 80
	for _, in := range []store.RuleInput{
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept, IPRange: "0.0.0.0/0", DestPortFrom: &p22},
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Drop, IPRange: "203.0.113.0/24", DestPortFrom: &p22},
		{Direction: store.Inbound, Protocol: store.TCP, Action: store.Accept, IPRange: "10.0.0.0/8", DestIPRange: ptrString("192.0.2.0/24"), DestPortFrom: &p80},
		{Direction: store.Inbound, Protocol: store.ANY, Action: store.Accept, IPRange: "198.51.100.0/24"},
	} {
		r, err := db.CreateRule(ctx, org, "fr-par-1", f.g.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		f.rules = append(f.rules, r)
	}
	for _, s := range []struct {
		into *store.Server
		in   store.ServerInput
	}{
		{&f.vm, store.ServerInput{Name: "vm", Interface: "vnet1", Addresses: []string{"192.0.2.5", "2001:db8::5"}, SecurityGroupID: f.g.ID}},
		{&f.ghost, store.ServerInput{Name: "ghost", SecurityGroupID: f.g.ID}},
		{&f.peer, store.ServerInput{Name: "peer", Interface: "vnet2", Addresses: []string{"10.1.2.3"}, SecurityGroupID: f.open.ID}},
	} {
		if *s.into, err = db.CreateServer(ctx, org, "fr-par-1", s.in); err != nil {
			t.Fatal(err)
		}
	}
	// Servers joining moved the groups' generations.
	if f.g, err = db.Group(ctx, org, "fr-par-1", f.g.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

// decided returns "verdict kind position" of a decision in an answer.
func decided(body any) string {
	m, _ := body.(map[string]any)
	verdict, _ := m["verdict"].(string)
	kind, _ := field(m, "decided_by", "kind").(string)
	s := verdict + " " + kind
	if pos, _ := field(m, "decided_by", "position").(float64); pos != 0 {
		s += " " + strconv.Itoa(int(pos))
	}
	return s
}

// argumentNames returns the argument names of an invalid_arguments answer.
func argumentNames(a answer) []string {
	details, _ := a.body["details"].([]any)
	var names []string
	for _, d := range details {
		names = append(names, d.(map[string]any)["argument_name"].(string))
	}
	return names
}

// TestGroupEvaluate: what a group does with a packet, and which rule,
// SMTP row, stateful rule or default policy decides it.
func TestGroupEvaluate(t *testing.T) {
	env := newTestEnv(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	url := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + f.g.ID + "/evaluate"
	tests := []struct {
		name, body string
		want       string // verdict, kind and position
		ruleID     string
	}{
		{"first match", `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","port":22,"state":"new"}`, "accept rule 1", f.rules[0].ID},
		{"new by default", `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","port":22}`, "accept rule 1", f.rules[0].ID},
		{"no rule matches", `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","port":23}`, "drop default_policy", ""},
		{"a reply", `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","port":23,"state":"established"}`, "accept stateful", ""},
		{"SMTP row", `{"direction":"outbound","protocol":"TCP","ip":"198.51.100.25","port":25}`, "drop smtp 1", store.SMTPRules(f.g.ID)[0].ID},
		{"SMTP row over IPv6", `{"direction":"outbound","protocol":"TCP","ip":"2001:db8::25","port":587}`, "drop smtp 6", store.SMTPRules(f.g.ID)[5].ID},
		{"ANY matches ICMP", `{"direction":"inbound","protocol":"ICMP","ip":"198.51.100.1"}`, "accept rule 4", f.rules[3].ID},
		{"ANY matches UDP", `{"direction":"inbound","protocol":"UDP","ip":"198.51.100.1","port":53}`, "accept rule 4", f.rules[3].ID},
		{"ICMPv6", `{"direction":"inbound","protocol":"ICMP","ip":"2001:db8::1"}`, "drop default_policy", ""},
		{"local address in range", `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","local_ip":"192.0.2.9","port":80}`, "accept rule 3", f.rules[2].ID},
		{"local address out of range", `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","local_ip":"198.18.0.1","port":80}`, "drop default_policy", ""},
		{"outbound by default", `{"direction":"outbound","protocol":"UDP","ip":"9.9.9.9","port":53}`, "accept default_policy", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, "POST", url, tt.body, env.auth())
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			if got := decided(a.body); got != tt.want {
				t.Fatalf("decided = %q, want %q: %s", got, tt.want, a.raw)
			}
			if got, _ := field(a.body, "decided_by", "rule_id").(string); got != tt.ruleID {
				t.Errorf("rule_id = %q, want %q", got, tt.ruleID)
			}
			// The trace ends with the step that decided, which matched,
			// and every step before it says why it did not.
			trace, _ := a.body["trace"].([]any)
			if len(trace) == 0 {
				t.Fatalf("no trace: %s", a.raw)
			}
			for i, st := range trace {
				m := st.(map[string]any)
				last := i == len(trace)-1
				if m["matched"] != last || !last && (m["mismatch"] == nil || m["reason"] == nil) {
					t.Errorf("step %d = %v", i, m)
				}
				if m["mismatch"] == "remote_ip" || m["mismatch"] == "dest_port" {
					t.Errorf("step %d names the explain package's field %v", i, m["mismatch"])
				}
			}
			if got := field(a.body, "security_group", "id"); got != f.g.ID {
				t.Errorf("security_group = %v", got)
			}
			if got := field(a.body, "generation"); got != float64(f.g.Generation) {
				t.Errorf("generation = %v, want %d", got, f.g.Generation)
			}
			if got := field(a.body, "packet", "ip"); got == nil {
				t.Errorf("packet without ip: %v", a.body["packet"])
			}
		})
	}
}

// TestEvaluateBadInput: every bad field is named as the client sent it,
// with the usual 400, and nothing is written.
func TestEvaluateBadInput(t *testing.T) {
	env := newTestEnv(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	base := env.url + "/instance/v1/zones/fr-par-1"
	group := base + "/security_groups/" + f.g.ID + "/evaluate"
	vm := base + "/servers/" + f.vm.ID + "/evaluate"
	other, _, _ := env.newOrg(t, "globex")
	if _, err := env.db.CreateGrant(context.Background(), other.ID, "", []string{"vnet*"}, false); err != nil {
		t.Fatal(err)
	}
	theirs, err := env.db.CreateServer(context.Background(), other.ID, "fr-par-1", store.ServerInput{Name: "their vm", Interface: "vnet9"})
	if err != nil {
		t.Fatal(err)
	}
	missing := "00000000-0000-4000-8000-000000000000"
	tests := []struct {
		name, url, body string
		fields          []string
	}{
		{"empty", group, `{}`, []string{"direction", "protocol", "ip"}},
		{"every field", group, `{"direction":"sideways","protocol":"SCTP","ip":"nope","local_ip":"also nope","port":70000,"state":"half"}`,
			[]string{"direction", "protocol", "ip", "local_ip", "port", "state"}},
		{"port of ICMP", group, `{"direction":"inbound","protocol":"ICMP","ip":"203.0.113.7","port":22}`, []string{"port"}},
		{"TCP without a port", group, `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7"}`, []string{"port"}},
		{"port as a string", group, `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","port":"22"}`, []string{"port"}},
		{"families apart", group, `{"direction":"inbound","protocol":"TCP","ip":"203.0.113.7","local_ip":"2001:db8::1","port":1}`, []string{"local_ip"}},
		{"ANY is no packet protocol", group, `{"direction":"inbound","protocol":"ANY","ip":"203.0.113.7"}`, []string{"protocol"}},
		{"a rule needs the local address", group, `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","port":80}`, []string{"local_ip"}},
		{"server: every field", vm, `{"direction":"up","protocol":"TCP","ip":"::ffff:10.0.0.1","port":-1,"state":"?"}`,
			[]string{"direction", "ip", "port", "state"}},
		{"server: families apart", vm, `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","local_ip":"2001:db8::5","port":80}`, []string{"local_ip"}},
		{"between: from nowhere", vm, `{"from_server":"` + missing + `","protocol":"TCP","port":22}`, []string{"from_server"}},
		{"between: from another organization", vm, `{"from_server":"` + theirs.ID + `","protocol":"TCP","port":22}`, []string{"from_server"}},
		{"between: every field", vm, `{"from_server":"","direction":"inbound","protocol":"TCP","ip":"x","local_ip":"y","port":65536,"state":"z"}`,
			[]string{"from_server", "direction", "ip", "local_ip", "port", "state"}},
		{"between: fields with a sender", vm, `{"from_server":"` + f.peer.ID + `","direction":"inbound","protocol":"GRE","ip":"x","local_ip":"y","state":"z"}`,
			[]string{"direction", "protocol", "ip", "local_ip", "state"}},
		{"between: ports of ICMP", vm, `{"from_server":"` + f.peer.ID + `","protocol":"ICMP","port":1}`, []string{"port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.generation(t)
			a := call(t, "POST", tt.url, tt.body, env.auth())
			if a.status != 400 || a.body["type"] != "invalid_arguments" {
				t.Fatalf("status %d type %v, want 400 invalid_arguments: %s", a.status, a.body["type"], a.raw)
			}
			got := argumentNames(a)
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields = %q, want %q: %s", got, tt.fields, a.raw)
			}
			for _, name := range []string{"remote_ip", "dest_port", "source_ip", "dest_ip"} {
				if strings.Contains(a.raw, name) {
					t.Errorf("the answer names the explain package's %s: %s", name, a.raw)
				}
			}
			if after := env.generation(t); after != before {
				t.Errorf("generation moved from %d to %d", before, after)
			}
		})
	}
	// Another organization's sender is refused exactly as a missing one.
	a := call(t, "POST", vm, `{"from_server":"`+theirs.ID+`","protocol":"TCP","port":22}`, env.auth())
	b := call(t, "POST", vm, `{"from_server":"`+missing+`","protocol":"TCP","port":22}`, env.auth())
	if strings.ReplaceAll(a.raw, theirs.ID, missing) != b.raw {
		t.Errorf("their server: %s\nmissing server: %s", a.raw, b.raw)
	}
}

// TestServerEvaluate: a server's packets take the server's addresses as
// the local address; a server bound to nothing is not enforced; a packet
// between two servers crosses the sender's outbound group and the
// receiver's inbound group.
func TestServerEvaluate(t *testing.T) {
	env := newTestEnv(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	base := env.url + "/instance/v1/zones/fr-par-1/servers/"
	t.Run("the server's address decides", func(t *testing.T) {
		a := call(t, "POST", base+f.vm.ID+"/evaluate", `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","port":80}`, env.auth())
		if a.status != 200 || decided(a.body) != "accept rule 3" || field(a.body, "packet", "local_ip") != "192.0.2.5" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("not enforced", func(t *testing.T) {
		a := call(t, "POST", base+f.ghost.ID+"/evaluate", `{"direction":"inbound","protocol":"TCP","ip":"10.1.2.3","port":22}`, env.auth())
		if a.status != 200 || decided(a.body) != "accept not_enforced" || a.body["note"] == nil {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("between two servers", func(t *testing.T) {
		a := call(t, "POST", base+f.vm.ID+"/evaluate", `{"from_server":"`+f.peer.ID+`","protocol":"TCP","port":80}`, env.auth())
		if a.status != 200 || a.body["verdict"] != "accept" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		if got := decided(a.body["outbound"]); got != "accept default_policy" {
			t.Errorf("outbound = %q, want the peer's group's default", got)
		}
		if got := decided(a.body["inbound"]); got != "accept rule 3" {
			t.Errorf("inbound = %q, want rule 3 (10.1.2.3 to 192.0.2.5)", got)
		}
		if field(a.body, "outbound", "security_group", "id") != f.open.ID || field(a.body, "inbound", "security_group", "id") != f.g.ID {
			t.Errorf("groups: %s", a.raw)
		}
		if field(a.body, "inbound", "packet", "ip") != "10.1.2.3" || field(a.body, "inbound", "packet", "local_ip") != "192.0.2.5" {
			t.Errorf("inbound packet = %v", field(a.body, "inbound", "packet"))
		}
	})
	t.Run("between: dropped by the receiver", func(t *testing.T) {
		a := call(t, "POST", base+f.vm.ID+"/evaluate", `{"from_server":"`+f.peer.ID+`","protocol":"UDP","port":53}`, env.auth())
		if a.status != 200 || a.body["verdict"] != "drop" || decided(a.body["inbound"]) != "drop default_policy" {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
	t.Run("missing server", func(t *testing.T) {
		a := call(t, "POST", base+"00000000-0000-4000-8000-000000000000/evaluate", `{"from_server":"`+f.peer.ID+`","protocol":"TCP","port":80}`, env.auth())
		if a.status != 404 || a.body["resource"] != store.ResourceServer {
			t.Fatalf("%d %s", a.status, a.raw)
		}
	})
}

// TestGroupAnalysis: the findings about a group's rules, each naming its
// rule and the rules involved.
func TestGroupAnalysis(t *testing.T) {
	env := newTestEnv(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	url := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + f.g.ID + "/analysis"
	a := call(t, "GET", url, "", env.auth())
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	var got []string
	findings, _ := a.body["findings"].([]any)
	for _, x := range findings {
		m := x.(map[string]any)
		by := []string{}
		for _, id := range m["by"].([]any) {
			by = append(by, id.(string))
		}
		if m["message"] == "" {
			t.Errorf("finding without a message: %v", m)
		}
		got = append(got, m["rule_id"].(string)+" "+m["kind"].(string)+" by "+strings.Join(by, ","))
	}
	want := []string{
		f.rules[0].ID + " broad by ",
		f.rules[1].ID + " shadowed by " + f.rules[0].ID,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings =\n%q\nwant\n%q", got, want)
	}
	if field(a.body, "generation") != float64(f.g.Generation) {
		t.Errorf("generation = %v, want %d", field(a.body, "generation"), f.g.Generation)
	}
	// A rule added after is analysed at the group's new generation.
	p := 443
	r, err := env.db.CreateRule(context.Background(), env.org.ID, "fr-par-1", f.g.ID, store.RuleInput{Direction: store.Inbound,
		Protocol: store.TCP, Action: store.Drop, IPRange: "198.51.100.0/24", DestPortFrom: &p})
	if err != nil {
		t.Fatal(err)
	}
	a = call(t, "GET", url, "", env.auth())
	if !strings.Contains(a.raw, `"rule_id":"`+r.ID+`","kind":"shadowed"`) {
		t.Errorf("the new rule, shadowed by rule 4, is not reported: %s", a.raw)
	}
}

// TestGroupAnalysisTooComplex: a group too complex to analyse answers a
// clear message with 409, never a 500, and the tester still answers.
func TestGroupAnalysisTooComplex(t *testing.T) {
	env := newTestEnv(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	web.SetAnalyze(env.srv, func(g *explain.Group) (explain.Analysis, error) {
		return explain.Analysis{}, fmt.Errorf("analyse group %s: %w", g.ID(), explain.ErrTooComplex)
	})
	base := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + f.g.ID
	a := call(t, "GET", base+"/analysis", "", env.auth())
	if a.status != 409 || a.body["type"] != "conflict" || !strings.Contains(a.raw, "too much to be analysed") {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	if strings.Contains(a.raw, f.g.ID) {
		t.Errorf("the message carries the error's internals: %s", a.raw)
	}
	a = call(t, "POST", base+"/evaluate", `{"direction":"inbound","protocol":"TCP","ip":"192.0.2.1","port":22}`, env.auth())
	if a.status != 200 {
		t.Errorf("tester: %d %s", a.status, a.raw)
	}
}
