package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// testerValues is a valid packet of the tester form, changed by set.
func testerValues(set map[string]string) url.Values {
	v := url.Values{"direction": {"inbound"}, "protocol": {"TCP"}, "ip": {"203.0.113.7"}, "port": {"22"}, "state": {"new"}, "local_ip": {""}}
	for k, x := range set {
		v.Set(k, x)
	}
	return v
}

// TestConsoleGroupTester: the Test a packet form of a group's page answers
// inline (htmx) or with the page, naming and marking the deciding rule,
// and puts every refusal beside its field.
func TestConsoleGroupTester(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	path := groupPath(f.g, "/evaluate")

	t.Run("answers", func(t *testing.T) {
		cases := []struct {
			name    string
			set     map[string]string
			summary string
			decided string // the rule whose row is marked, "" for none
		}{
			{"first match", nil, "Accepted by rule 1.", f.rules[0].ID},
			{"no rule matches", map[string]string{"port": "23"}, "Dropped by the default policy.", ""},
			{"a reply", map[string]string{"port": "23", "state": "established"}, "Accepted by the stateful rule", ""},
			{"an SMTP rule", map[string]string{"direction": "outbound", "port": "25"}, "Dropped by SMTP rule 1.", store.SMTPRules(f.g.ID)[0].ID},
			{"the local address decides", map[string]string{"ip": "10.1.2.3", "port": "80", "local_ip": "192.0.2.9"}, "Accepted by rule 3.", f.rules[2].ID},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p := b.post(path, testerValues(tc.set), true, false)
				wantStatus(t, p, http.StatusOK)
				if p.doc.Find("html body > section#tester").Length() != 1 || p.doc.Find(".sidebar").Length() != 0 {
					t.Fatal("htmx answer is not the tester section alone")
				}
				answer := p.doc.Find(`[data-testid=tester-answer]`)
				if got := answer.Find(".verdict").Text(); !strings.Contains(got, tc.summary) {
					t.Errorf("verdict = %q, want %q", got, tc.summary)
				}
				if got := answer.AttrOr("data-decided-rule", "?"); got != tc.decided {
					t.Errorf("data-decided-rule = %q, want %q", got, tc.decided)
				}
				// The trace marks the deciding rule in words, not colour alone.
				deciding := answer.Find("tr.decides")
				if deciding.Length() != 1 || !strings.Contains(deciding.Text(), "Matches: decides") {
					t.Errorf("trace marks %d rows: %q", deciding.Length(), deciding.Text())
				}
				if tc.decided != "" {
					if href := p.doc.Find(`[data-testid=decided-by]`).AttrOr("href", ""); href != "#rule-"+tc.decided {
						t.Errorf("decided-by links to %q", href)
					}
				}
				if got := p.doc.Find("#t-ip").AttrOr("value", ""); got != testerValues(tc.set).Get("ip") {
					t.Errorf("ip kept = %q", got)
				}
				// Answered, the form tests the packet again after each
				// change of the rules, which moves their positions.
				if got := p.doc.Find(`[data-testid=tester]`).AttrOr("hx-trigger", ""); !strings.Contains(got, "rules-changed from:body") {
					t.Errorf("hx-trigger = %q", got)
				}
			})
		}
	})

	t.Run("errors beside their fields", func(t *testing.T) {
		cases := []struct {
			name   string
			set    map[string]string
			fields []string // ids of the controls that show an error
		}{
			{"bad address", map[string]string{"ip": "203.0.113.300"}, []string{"t-ip"}},
			{"no address", map[string]string{"ip": ""}, []string{"t-ip"}},
			{"port not a number, and a bad address", map[string]string{"port": "ssh", "ip": "nope"}, []string{"t-ip", "t-port"}},
			{"port out of range", map[string]string{"port": "70000"}, []string{"t-port"}},
			{"port of ICMP", map[string]string{"protocol": "ICMP"}, []string{"t-port"}},
			{"TCP without a port", map[string]string{"port": ""}, []string{"t-port"}},
			{"bad direction and state", map[string]string{"direction": "sideways", "state": "half"}, []string{"t-direction", "t-state"}},
			{"bad protocol", map[string]string{"protocol": "SCTP"}, []string{"t-protocol"}},
			{"families apart", map[string]string{"local_ip": "2001:db8::1"}, []string{"t-local_ip"}},
			{"a rule needs the local address", map[string]string{"ip": "10.1.2.3", "port": "80"}, []string{"t-local_ip"}},
		}
		for _, tc := range cases {
			for _, hx := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s (htmx %v)", tc.name, hx), func(t *testing.T) {
					p := b.post(path, testerValues(tc.set), hx, false)
					wantStatus(t, p, http.StatusUnprocessableEntity)
					for _, id := range tc.fields {
						if fieldError(p, id) == "" {
							t.Errorf("no error beside #%s", id)
						}
						if got := p.doc.Find("#"+id).AttrOr("aria-invalid", ""); got != "true" {
							t.Errorf("#%s aria-invalid = %q", id, got)
						}
					}
					if n := p.doc.Find("#tester p.error").Length(); n != len(tc.fields) {
						t.Errorf("%d errors shown, want %d", n, len(tc.fields))
					}
					if p.doc.Find(`[data-testid=tester-answer]`).Length() != 0 {
						t.Error("an answer shown with the errors")
					}
					if got := p.doc.Find(`[data-testid=tester]`).AttrOr("hx-trigger", ""); got != "submit" {
						t.Errorf("hx-trigger of a refused form = %q, want submit only", got)
					}
					if !hx && p.doc.Find(".sidebar").Length() != 1 {
						t.Error("without JavaScript, the answer is not the page")
					}
				})
			}
		}
	})

	t.Run("without JavaScript", func(t *testing.T) {
		p := b.post(path, testerValues(nil), false, false)
		wantStatus(t, p, http.StatusOK)
		if p.doc.Find(`[data-testid=tester-answer]`).Length() != 1 {
			t.Fatal("no answer on the page")
		}
		// The page marks the deciding rule's row in the Rules section.
		if row := p.doc.Find("#rules tr.decides"); row.Length() != 1 || row.AttrOr("data-rule", "") != f.rules[0].ID {
			t.Errorf("rows marked: %d (%s)", row.Length(), row.AttrOr("data-rule", ""))
		}
	})

	t.Run("refused without the CSRF token", func(t *testing.T) {
		p := b.post(path, testerValues(nil), true, true)
		wantStatus(t, p, http.StatusForbidden)
	})
}

// TestConsoleServerTester: a server's page tests a packet of the server,
// whose addresses are the local address, or one from another server.
func TestConsoleServerTester(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	theirOrg, err := env.db.EnsureOrganization(context.Background(), "Globex")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.db.CreateGrant(context.Background(), theirOrg.ID, "", []string{"vnet*"}, false); err != nil {
		t.Fatal(err)
	}
	theirs, err := env.db.CreateServer(context.Background(), theirOrg.ID, "fr-par-1", store.ServerInput{Name: "their vm", Interface: "vnet9"})
	if err != nil {
		t.Fatal(err)
	}
	path := "/servers/" + f.vm.ID + "/evaluate?zone=fr-par-1"

	page := b.get("/servers/"+f.vm.ID+"?zone=fr-par-1", false)
	wantStatus(t, page, http.StatusOK)
	if page.doc.Find(`[data-testid=tester]`).Length() != 1 || page.doc.Find(`[data-testid=tester-flow]`).Length() != 1 {
		t.Fatal("the server page has no tester forms")
	}
	if got := page.doc.Find(`#f-from_server option`).Length(); got != 2 {
		t.Errorf("%d servers to send from, want the two others", got)
	}

	t.Run("a packet of the server", func(t *testing.T) {
		p := b.post(path, testerValues(map[string]string{"ip": "10.1.2.3", "port": "80"}), true, false)
		wantStatus(t, p, http.StatusOK)
		answer := p.doc.Find(`[data-testid=tester-answer]`)
		if got := answer.Find(".verdict").Text(); !strings.Contains(got, "Accepted by rule 3.") {
			t.Errorf("verdict = %q", got)
		}
		if got := answer.Text(); !strings.Contains(got, "to 192.0.2.5 port 80") {
			t.Errorf("the packet is not shown with the server's address: %q", got)
		}
		if href := answer.Find(`[data-testid=decided-by]`).AttrOr("href", ""); !strings.HasSuffix(href, "#rule-"+f.rules[2].ID) ||
			!strings.HasPrefix(href, "/security-groups/"+f.g.ID) {
			t.Errorf("decided-by links to %q, want the rule on its group's page", href)
		}
	})
	t.Run("between two servers", func(t *testing.T) {
		p := b.post(path, url.Values{"from_server": {f.peer.ID}, "protocol": {"UDP"}, "port": {"53"}, "state": {"new"}}, true, false)
		wantStatus(t, p, http.StatusOK)
		answer := p.doc.Find(`[data-testid=tester-answer]`)
		if got := answer.Find(".verdict").Text(); !strings.Contains(got, "Dropped as it comes into vm, by the default policy of group “web”.") {
			t.Errorf("verdict = %q", got)
		}
		if n := answer.Find(`[data-testid=trace]`).Length(); n != 2 {
			t.Errorf("%d traces, want the sender's outbound and the receiver's inbound", n)
		}
		if got := p.doc.Find("#f-from_server option[selected]").AttrOr("value", ""); got != f.peer.ID {
			t.Errorf("from_server kept = %q", got)
		}
	})
	t.Run("errors beside their fields", func(t *testing.T) {
		cases := []struct {
			name   string
			form   url.Values
			fields []string
		}{
			{"another organization's sender", url.Values{"from_server": {theirs.ID}, "protocol": {"TCP"}, "port": {"22"}}, []string{"f-from_server"}},
			{"sender missing and a bad port", url.Values{"from_server": {""}, "protocol": {"TCP"}, "port": {"x"}}, []string{"f-from_server", "f-port"}},
			{"a bad packet", testerValues(map[string]string{"ip": "::ffff:10.0.0.1", "state": "?"}), []string{"t-ip", "t-state"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p := b.post(path, tc.form, true, false)
				wantStatus(t, p, http.StatusUnprocessableEntity)
				for _, id := range tc.fields {
					if fieldError(p, id) == "" {
						t.Errorf("no error beside #%s", id)
					}
				}
				if strings.Contains(p.body, "their vm") {
					t.Error("the answer names another organization's server")
				}
			})
		}
	})
	t.Run("without JavaScript", func(t *testing.T) {
		p := b.post(path, url.Values{"from_server": {f.peer.ID}, "protocol": {"TCP"}, "port": {"80"}}, false, false)
		wantStatus(t, p, http.StatusOK)
		if p.doc.Find(".sidebar").Length() != 1 || p.doc.Find(`[data-testid=server-form]`).Length() != 1 {
			t.Fatal("the answer is not the server's page")
		}
		if got := p.doc.Find(`[data-testid=tester-answer] .verdict`).Text(); !strings.Contains(got, "Accepted") {
			t.Errorf("verdict = %q", got)
		}
	})
}

// TestConsoleFindings: what the analysis finds is shown under its rule, in
// words; adding a rule says what is found about it; the list counts the
// findings of each group; a group too complex to analyse says so.
func TestConsoleFindings(t *testing.T) {
	env := newConsoleEnv(t, false)
	b := env.signedIn(t)
	f := newExplainFixture(t, env.db, env.org.ID)
	empty := env.mustGroup(t, env.org.ID, "fr-par-1", store.GroupInput{Name: "empty", InboundDefaultPolicy: store.Drop})

	p := b.get(groupPath(f.g, ""), false)
	wantStatus(t, p, http.StatusOK)
	row := p.doc.Find("#findings-" + f.rules[1].ID)
	if got := strings.Join(strings.Fields(row.Text()), " "); !strings.HasPrefix(got, "Shadowed: never matches:") || !strings.Contains(got, "by rule 1") {
		t.Errorf("finding of rule 2 = %q", got)
	}
	if prev := row.Prev(); prev.AttrOr("data-rule", "") != f.rules[1].ID {
		t.Error("the finding is not under its rule")
	}
	edit := p.doc.Find(`#rule-` + f.rules[1].ID + ` a[aria-label="Edit rule 2"]`)
	if got := edit.AttrOr("aria-describedby", ""); got != "finding-"+f.rules[1].ID+"-0" {
		t.Errorf("Edit rule 2 aria-describedby = %q, want its findings", got)
	}
	if got := p.doc.Find("#findings-"+f.rules[0].ID+" [data-kind]").AttrOr("data-kind", ""); got != "broad" {
		t.Errorf("rule 1's finding = %q, want broad", got)
	}
	if p.doc.Find("#findings-"+f.rules[2].ID).Length() != 0 {
		t.Error("a finding shown for rule 3")
	}

	t.Run("as a rule is added", func(t *testing.T) {
		add := url.Values{"direction": {"inbound"}, "action": {"accept"}, "protocol": {"TCP"}, "ip_range": {"198.51.100.7"}, "dest_port_from": {"443"}}
		p := b.post(groupPath(f.g, "/rules"), add, true, false)
		wantStatus(t, p, http.StatusOK)
		got := strings.Join(strings.Fields(p.doc.Find("#rules-flash").Text()), " ")
		if !strings.HasPrefix(got, "Rule 5 added. It is shadowed: never matches:") {
			t.Errorf("flash = %q, want what the analysis finds about rule 5", got)
		}
		if !strings.Contains(got, "rule 4") {
			t.Errorf("flash = %q, want it to name rule 4", got)
		}
		// Without JavaScript, the message goes with the redirect.
		add.Set("dest_port_from", "8443")
		np := b.post(groupPath(f.g, "/rules"), add, false, false)
		wantStatus(t, np, http.StatusSeeOther)
		page := b.get(groupPath(f.g, ""), false)
		if got := page.doc.Find("#flash").Text(); !strings.Contains(got, "Rule 6 added. It is shadowed:") {
			t.Errorf("flash after the redirect = %q", got)
		}
	})

	t.Run("counted on the list", func(t *testing.T) {
		p := b.get("/security-groups", false)
		wantStatus(t, p, http.StatusOK)
		if got := strings.TrimSpace(p.doc.Find(`tr[data-group="` + f.g.ID + `"] td`).Last().Text()); got != "4 findings" {
			t.Errorf("findings of web = %q, want 4 findings", got)
		}
		if got := strings.TrimSpace(p.doc.Find(`tr[data-group="` + empty.ID + `"] td`).Last().Text()); got != "None" {
			t.Errorf("findings of empty = %q, want None", got)
		}
	})

	t.Run("too complex", func(t *testing.T) {
		web.SetAnalyze(env.srv, func(g *explain.Group) (explain.Analysis, error) {
			return explain.Analysis{}, fmt.Errorf("analyse group %s: %w", g.ID(), explain.ErrTooComplex)
		})
		// A new generation, which the cache has not seen.
		if _, err := env.db.UpdateGroup(context.Background(), env.org.ID, "fr-par-1", f.g.ID, store.GroupPatch{Description: new(string)}); err != nil {
			t.Fatal(err)
		}
		p := b.get(groupPath(f.g, ""), false)
		wantStatus(t, p, http.StatusOK)
		if got := p.doc.Find(`[data-testid=analysis-note]`).Text(); !strings.Contains(got, "too much to be analysed") {
			t.Errorf("analysis note = %q", got)
		}
		if p.doc.Find("tr.findings-row").Length() != 0 {
			t.Error("findings shown for a group that was not analysed")
		}
		p = b.get("/security-groups", false)
		if got := p.doc.Find(`tr[data-group="` + f.g.ID + `"] td`).Last().Text(); !strings.Contains(got, "Not analysed") {
			t.Errorf("list cell = %q", got)
		}
	})
}
