package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// openTestDB opens an empty store on the engine under test (see
// internal/testdb).
func openTestDB(tb testing.TB, opts ...Option) *DB {
	tb.Helper()
	return openTestDSN(tb, testdb.DSN(tb), opts...)
}

// openTestDSN opens a store on dsn, closed when the test ends.
func openTestDSN(tb testing.TB, dsn string, opts ...Option) *DB {
	tb.Helper()
	db, err := Open(context.Background(), dsn, []string{"fr-par-1", "nl-ams-1"}, opts...)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func mustOrg(tb testing.TB, db *DB, name string) Organization {
	tb.Helper()
	org, err := db.EnsureOrganization(context.Background(), name)
	if err != nil {
		tb.Fatalf("ensure organization: %v", err)
	}
	return org
}

func mustCreateGroup(tb testing.TB, db *DB, org, zone string, in GroupInput) Group {
	tb.Helper()
	if in.Name == "" {
		in.Name = "web"
	}
	g, err := db.CreateGroup(context.Background(), org, zone, in)
	if err != nil {
		tb.Fatalf("create group: %v", err)
	}
	return g
}

func mustCreateServer(tb testing.TB, db *DB, org, zone string, in ServerInput) Server {
	tb.Helper()
	if in.Name == "" {
		in.Name = "srv"
	}
	s, err := db.CreateServer(context.Background(), org, zone, in)
	if err != nil {
		tb.Fatalf("create server: %v", err)
	}
	return s
}

func mustCreateRule(tb testing.TB, db *DB, org, zone, gid string, in RuleInput) Rule {
	tb.Helper()
	if in.IPRange == "" && in.IPSetID == nil && in.RemoteGroupID == nil {
		in.IPRange = "0.0.0.0/0"
	}
	r, err := db.CreateRule(context.Background(), org, zone, gid, in)
	if err != nil {
		tb.Fatalf("create rule: %v", err)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// dump returns every row of every domain table, so that a refused change
// can be shown to have written nothing (the generation included).
func dump(tb testing.TB, db *DB) string {
	tb.Helper()
	var b strings.Builder
	for _, table := range []string{"generation", "organizations", "users", "tokens", "security_groups", "rules", "servers", "events",
		"group_versions", "pending_confirmations", "rule_drafts", "ip_sets"} {
		rows, err := db.query(context.Background(), `SELECT * FROM `+table+` ORDER BY 1`)
		if err != nil {
			tb.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatalf("dump %s: %v", table, err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		rows.Close()
	}
	return b.String()
}

func positions(rules []Rule) string {
	var parts []string
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%d:%s", r.Position, r.IPRange))
	}
	return strings.Join(parts, " ")
}

// fixture is an organization with groups and servers in fr-par-1.
type fixture struct {
	db                  *DB
	org, other          string
	stateful, stateless Group
	def                 Group
	instance, bare      Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := openTestDB(t)
	f := &fixture{db: db, org: mustOrg(t, db, "acme").ID, other: mustOrg(t, db, "globex").ID}
	var err error
	f.def, err = db.DefaultGroup(context.Background(), f.org, "fr-par-1")
	if err != nil {
		t.Fatal(err)
	}
	f.stateful = mustCreateGroup(t, db, f.org, "fr-par-1", GroupInput{Name: "stateful", Stateful: true})
	f.stateless = mustCreateGroup(t, db, f.org, "fr-par-1", GroupInput{Name: "stateless"})
	f.instance = mustCreateServer(t, db, f.org, "fr-par-1", ServerInput{Name: "vm", Interface: "vnet1", SecurityGroupID: f.stateful.ID})
	f.bare = mustCreateServer(t, db, f.org, "fr-par-1", ServerInput{Name: "metal", Type: BareMetal, Interface: "vnet2", SecurityGroupID: f.stateless.ID})
	return f
}

// TestDomainRules runs each rule of the domain once accepted and once
// refused; a refused change must leave every table as it was.
func TestDomainRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		setup     func(f *fixture) // before the dump
		change    func(f *fixture) error
		wantCode  Code   // "" for accepted
		wantField string // field named by the refusal
	}{
		{"stateful group to an instance", nil, func(f *fixture) error {
			_, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{SecurityGroupID: &f.stateful.ID})
			return err
		}, "", ""},
		{"stateful group to a BareMetal server", nil, func(f *fixture) error {
			_, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.bare.ID, ServerPatch{SecurityGroupID: &f.stateful.ID})
			return err
		}, CodeInvalid, "security_group"},
		{"BareMetal server registered in a stateful group", nil, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "m2", Type: BareMetal, SecurityGroupID: f.stateful.ID})
			return err
		}, CodeInvalid, "security_group"},
		{"BareMetal server registered in a stateless group", nil, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "m2", Type: BareMetal, SecurityGroupID: f.stateless.ID})
			return err
		}, "", ""},
		{"instance in a stateful group turned BareMetal", nil, func(f *fixture) error {
			_, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{Type: ptr(BareMetal)})
			return err
		}, CodeInvalid, "type"},
		{"switching a group holding BareMetal to stateful", nil, func(f *fixture) error {
			_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", f.stateless.ID, GroupPatch{Stateful: ptr(true)})
			return err
		}, CodeInvalid, "stateful"},
		{"switching a group without BareMetal to stateful", nil, func(f *fixture) error {
			g := mustCreateGroup(t, f.db, f.org, "fr-par-1", GroupInput{Name: "x"})
			_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", g.ID, GroupPatch{Stateful: ptr(true)})
			return err
		}, "", ""},
		{"create group with a BareMetal server, stateful", nil, func(f *fixture) error {
			_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: "x", Stateful: true, ServerIDs: []string{f.instance.ID, f.bare.ID}})
			return err
		}, CodeInvalid, "servers[1]"},
		{"unlink from a group", nil, func(f *fixture) error {
			s, err := f.db.UnlinkServer(ctx, f.org, "fr-par-1", f.stateful.ID, f.instance.ID)
			if err == nil && s.SecurityGroup.ID != f.def.ID {
				return fmt.Errorf("unlinked server is in %s, want default %s", s.SecurityGroup.ID, f.def.ID)
			}
			return err
		}, "", ""},
		{"unlink from the default", nil, func(f *fixture) error {
			if _, err := f.db.UnlinkServer(ctx, f.org, "fr-par-1", f.stateful.ID, f.instance.ID); err != nil {
				return fmt.Errorf("first unlink: %w", err)
			}
			before := dump(t, f.db)
			_, err := f.db.UnlinkServer(ctx, f.org, "fr-par-1", f.def.ID, f.instance.ID)
			if dump(t, f.db) != before {
				return fmt.Errorf("refused unlink wrote")
			}
			return err
		}, CodeConflict, ""},
		{"unlink a BareMetal server to a stateful default", nil, func(f *fixture) error {
			_, err := f.db.UnlinkServer(ctx, f.org, "fr-par-1", f.stateless.ID, f.bare.ID)
			return err
		}, CodeInvalid, "security_group"},
		{"unlink from a group the server is not in", nil, func(f *fixture) error {
			_, err := f.db.UnlinkServer(ctx, f.org, "fr-par-1", f.stateless.ID, f.instance.ID)
			return err
		}, CodeConflict, ""},
		{"group of another zone", func(f *fixture) {
			f.stateless = mustCreateGroup(t, f.db, f.org, "nl-ams-1", GroupInput{Name: "ams"})
		}, func(f *fixture) error {
			_, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{SecurityGroupID: &f.stateless.ID})
			return err
		}, CodeInvalid, "security_group"},
		{"group of another organization", func(f *fixture) {
			f.stateless = mustCreateGroup(t, f.db, f.other, "fr-par-1", GroupInput{Name: "theirs"})
		}, func(f *fixture) error {
			_, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{SecurityGroupID: &f.stateless.ID})
			return err
		}, CodeInvalid, "security_group"},
		{"delete a group with servers", nil, func(f *fixture) error {
			_, err := f.db.DeleteGroup(ctx, f.org, "fr-par-1", f.stateful.ID)
			return err
		}, CodeConflict, ""},
		{"delete the default group", nil, func(f *fixture) error {
			_, err := f.db.DeleteGroup(ctx, f.org, "fr-par-1", f.def.ID)
			return err
		}, CodeConflict, ""},
		{"delete an empty group with rules", nil, func(f *fixture) error {
			g := mustCreateGroup(t, f.db, f.org, "fr-par-1", GroupInput{Name: "empty"})
			mustCreateRule(t, f.db, f.org, "fr-par-1", g.ID, RuleInput{})
			_, err := f.db.DeleteGroup(ctx, f.org, "fr-par-1", g.ID)
			return err
		}, "", ""},
		{"another organization's group is not found", nil, func(f *fixture) error {
			_, err := f.db.UpdateGroup(ctx, f.other, "fr-par-1", f.stateful.ID, GroupPatch{Name: ptr("mine")})
			return err
		}, CodeNotFound, ""},
		{"group in an unknown zone", nil, func(f *fixture) error {
			_, err := f.db.CreateGroup(ctx, f.org, "xx-nowhere-1", GroupInput{Name: "x"})
			return err
		}, CodeNotFound, ""},
		{"unsetting the default", nil, func(f *fixture) error {
			_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", f.def.ID, GroupPatch{OrganizationDefault: ptr(false)})
			return err
		}, CodeInvalid, "organization_default"},
		{"name of 129 characters", nil, func(f *fixture) error {
			_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: strings.Repeat("n", 129)})
			return err
		}, CodeInvalid, "name"},
		{"name of 128 characters", nil, func(f *fixture) error {
			_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: strings.Repeat("n", 128)})
			return err
		}, "", ""},
		{"empty name", nil, func(f *fixture) error {
			_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", f.stateful.ID, GroupPatch{Name: ptr(" ")})
			return err
		}, CodeInvalid, "name"},
		{"description of 256 characters", nil, func(f *fixture) error {
			_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: "x", Description: strings.Repeat("d", 256)})
			return err
		}, CodeInvalid, "description"},
		{"unknown policy", nil, func(f *fixture) error {
			_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", f.stateful.ID, GroupPatch{InboundDefaultPolicy: ptr(Policy("reject"))})
			return err
		}, CodeInvalid, "inbound_default_policy"},
		{"interface already used", nil, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "dup", Interface: "vnet1"})
			return err
		}, CodeInvalid, "interface"},
		{"bad interface name", nil, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "x", Interface: "a/b"})
			return err
		}, CodeInvalid, "interface"},
		{"bad address", nil, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "x", Addresses: []string{"10.0.0.300"}})
			return err
		}, CodeInvalid, "addresses"},
		{"two local servers", func(f *fixture) {
			mustCreateServer(t, f.db, f.org, "fr-par-1", ServerInput{Name: "host", Local: true})
		}, func(f *fixture) error {
			_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "host2", Local: true})
			return err
		}, CodeInvalid, "local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if tt.setup != nil {
				tt.setup(f)
			}
			before := dump(t, f.db)
			err := tt.change(f)
			if got := ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q (err %v), want %q", got, err, tt.wantCode)
			}
			if tt.wantCode == "" {
				if dump(t, f.db) == before {
					t.Fatal("accepted change wrote nothing")
				}
				return
			}
			if tt.wantField != "" && FieldMessage(err, tt.wantField) == "" {
				t.Fatalf("error %v does not name field %q", err, tt.wantField)
			}
			if tt.name != "unlink from the default" && dump(t, f.db) != before {
				t.Fatal("refused change wrote to the database")
			}
		})
	}
}

func TestDefaultGroupCreatedOnFirstNeedAndUnique(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	s := mustCreateServer(t, db, org, "fr-par-1", ServerInput{Name: "vm"})
	groups, total, err := db.Groups(ctx, org, "fr-par-1", GroupFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || !groups[0].OrganizationDefault || groups[0].Name != DefaultGroupName {
		t.Fatalf("groups = %+v, want one default group", groups)
	}
	def := groups[0]
	if !def.Stateful || def.InboundDefaultPolicy != Accept || def.OutboundDefaultPolicy != Accept || def.SMTPEnabled {
		t.Fatalf("default group = %+v, want stateful, accept/accept, SMTP blocked", def)
	}
	if s.SecurityGroup.ID != def.ID {
		t.Fatalf("server group = %s, want default %s", s.SecurityGroup.ID, def.ID)
	}
	// Setting another group as default moves the badge.
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "new default"})
	if _, err := db.UpdateGroup(ctx, org, "fr-par-1", g.ID, GroupPatch{OrganizationDefault: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	yes := true
	defaults, _, err := db.Groups(ctx, org, "fr-par-1", GroupFilter{ProjectDefault: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if len(defaults) != 1 || defaults[0].ID != g.ID {
		t.Fatalf("defaults = %+v, want only %s", defaults, g.ID)
	}
	// Creating a default in the other zone leaves this one alone.
	mustCreateGroup(t, db, org, "nl-ams-1", GroupInput{Name: "ams default", OrganizationDefault: true})
	defaults, _, _ = db.Groups(ctx, org, "fr-par-1", GroupFilter{ProjectDefault: &yes})
	if len(defaults) != 1 || defaults[0].ID != g.ID {
		t.Fatalf("after other zone: defaults = %+v", defaults)
	}
}

func TestRulePositions(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{SMTPEnabled: true})
	add := func(ip string, pos int) Rule {
		return mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{IPRange: ip, Position: pos})
	}
	check := func(want string) {
		t.Helper()
		rules, err := db.Rules(ctx, org, "fr-par-1", g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := positions(rules); got != want {
			t.Fatalf("positions = %q, want %q", got, want)
		}
	}
	a := add("10.0.0.1", 0)
	add("10.0.0.2", 0)
	c := add("10.0.0.3", 1) // insert at the top shifts the rest
	check("1:10.0.0.3/32 2:10.0.0.1/32 3:10.0.0.2/32")
	add("10.0.0.4", 2)
	check("1:10.0.0.3/32 2:10.0.0.4/32 3:10.0.0.1/32 4:10.0.0.2/32")
	add("10.0.0.5", 99) // past the end appends
	check("1:10.0.0.3/32 2:10.0.0.4/32 3:10.0.0.1/32 4:10.0.0.2/32 5:10.0.0.5/32")
	if _, err := db.MoveRule(ctx, org, "fr-par-1", g.ID, c.ID, 4); err != nil {
		t.Fatal(err)
	}
	check("1:10.0.0.4/32 2:10.0.0.1/32 3:10.0.0.2/32 4:10.0.0.3/32 5:10.0.0.5/32")
	if err := db.DeleteRule(ctx, org, "fr-par-1", g.ID, a.ID); err != nil {
		t.Fatal(err)
	}
	check("1:10.0.0.4/32 2:10.0.0.2/32 3:10.0.0.3/32 4:10.0.0.5/32")

	// Set-all: an update, a creation, the rest deleted; positions order.
	rules, _ := db.Rules(ctx, org, "fr-par-1", g.ID)
	got, err := db.SetRules(ctx, org, "fr-par-1", g.ID, []RuleInput{
		{IPRange: "192.0.2.0/24", Position: 2},
		{ID: rules[3].ID, IPRange: "10.0.0.55", Position: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := positions(got); p != "1:10.0.0.55/32 2:192.0.2.0/24" {
		t.Fatalf("set-all answer = %q", p)
	}
	if got[0].ID != rules[3].ID {
		t.Fatalf("updated rule got a new ID")
	}
	check("1:10.0.0.55/32 2:192.0.2.0/24")
	// Position 0 everywhere keeps the array's order.
	got, err = db.SetRules(ctx, org, "fr-par-1", g.ID, []RuleInput{{IPRange: "10.9.0.1"}, {IPRange: "10.9.0.2"}, {IPRange: "10.9.0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	check("1:10.9.0.1/32 2:10.9.0.2/32 3:10.9.0.3/32")
	_ = got
}

func TestRuleValidation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		in        RuleInput
		wantField string // "" when accepted
		wantRange string
	}{
		{"bare address", RuleInput{IPRange: "8.8.8.8"}, "", "8.8.8.8/32"},
		{"host bits normalised", RuleInput{IPRange: "10.1.2.3/8"}, "", "10.0.0.0/8"},
		{"IPv6", RuleInput{IPRange: "2001:db8::1/64"}, "", "2001:db8::/64"},
		{"bad CIDR", RuleInput{IPRange: "10.0.0.0/33"}, "ip_range", ""},
		{"garbage range", RuleInput{IPRange: "everywhere"}, "ip_range", ""},
		{"missing range", RuleInput{IPRange: ""}, "ip_range", ""},
		{"ports on ICMP", RuleInput{IPRange: "0.0.0.0/0", Protocol: ICMP, DestPortFrom: ptr(22)}, "dest_port_from", ""},
		{"ports on ANY", RuleInput{IPRange: "0.0.0.0/0", Protocol: ANY, DestPortFrom: ptr(1), DestPortTo: ptr(2)}, "dest_port_from", ""},
		{"from above to", RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(100), DestPortTo: ptr(90)}, "dest_port_to", ""},
		{"port 65536", RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(65536)}, "dest_port_from", ""},
		{"negative port", RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(-1)}, "dest_port_from", ""},
		{"to without from", RuleInput{IPRange: "0.0.0.0/0", DestPortTo: ptr(80)}, "dest_port_from", ""},
		{"unknown protocol", RuleInput{IPRange: "0.0.0.0/0", Protocol: "SCTP"}, "protocol", ""},
		{"unknown action", RuleInput{IPRange: "0.0.0.0/0", Action: "reject"}, "action", ""},
		{"unknown direction", RuleInput{IPRange: "0.0.0.0/0", Direction: "sideways"}, "direction", ""},
		{"port range", RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(1), DestPortTo: ptr(65535)}, "", "0.0.0.0/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t)
			org := mustOrg(t, db, "acme").ID
			g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{})
			before := dump(t, db)
			r, err := db.CreateRule(ctx, org, "fr-par-1", g.ID, tt.in)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				if got := r.IPRange.String(); got != tt.wantRange {
					t.Fatalf("ip_range = %s, want %s", got, tt.wantRange)
				}
				return
			}
			if FieldMessage(err, tt.wantField) == "" {
				t.Fatalf("err = %v, want a message for %s", err, tt.wantField)
			}
			if dump(t, db) != before {
				t.Fatal("refused rule wrote to the database")
			}
		})
	}
}

func TestRuleLimitAndPatchSemantics(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	db.MaxRules = 3
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{})
	r := mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{IPRange: "8.8.8.8", DestPortFrom: ptr(1), DestPortTo: ptr(1024)})
	mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{})
	mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{})
	before := dump(t, db)
	if _, err := db.CreateRule(ctx, org, "fr-par-1", g.ID, RuleInput{IPRange: "0.0.0.0/0"}); FieldMessage(err, "rules") == "" {
		t.Fatalf("4th rule with a limit of 3: err = %v", err)
	}
	if _, err := db.SetRules(ctx, org, "fr-par-1", g.ID, make([]RuleInput, 4)); FieldMessage(err, "rules") == "" {
		t.Fatalf("set-all of 4 with a limit of 3: err = %v", err)
	}
	if dump(t, db) != before {
		t.Fatal("refused changes wrote")
	}

	// As at Scaleway: from == to answers a single port; 0 unsets; ICMP clears.
	got, err := db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{DestPortFrom: ptr(22), DestPortTo: ptr(22)})
	if err != nil || got.DestPortFrom != 22 || got.DestPortTo != 0 {
		t.Fatalf("single port: %+v, %v", got, err)
	}
	got, err = db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{DestPortFrom: ptr(0), DestPortTo: ptr(0)})
	if err != nil || got.DestPortFrom != 0 || got.DestPortTo != 0 || got.Protocol != TCP {
		t.Fatalf("unset ports: %+v, %v", got, err)
	}
	mustPorts := func() {
		t.Helper()
		if _, err := db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{DestPortFrom: ptr(1), DestPortTo: ptr(1024)}); err != nil {
			t.Fatal(err)
		}
	}
	mustPorts()
	got, err = db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{Protocol: ptr(ICMP)})
	if err != nil || got.DestPortFrom != 0 || got.Protocol != ICMP || got.IPRange.String() != "8.8.8.8/32" || got.Direction != Inbound {
		t.Fatalf("switch to ICMP: %+v, %v", got, err)
	}
	before = dump(t, db)
	if _, err := db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{DestPortFrom: ptr(22)}); FieldMessage(err, "dest_port_from") == "" {
		t.Fatalf("port on ICMP rule: %v", err)
	}
	if dump(t, db) != before {
		t.Fatal("refused patch wrote")
	}
}

func TestGenerationAndSnapshot(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	ch, cancel := db.Watch()
	defer cancel()
	g0, _ := db.Generation(ctx)
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Stateful: true})
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no wake-up after a commit")
	}
	mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{DestPortFrom: ptr(22)})
	mustCreateServer(t, db, org, "fr-par-1", ServerInput{Name: "vm", Interface: "vnet0", SecurityGroupID: g.ID})
	// A refused change does not advance the generation.
	before, _ := db.Generation(ctx)
	db.DeleteGroup(ctx, org, "fr-par-1", g.ID)
	if after, _ := db.Generation(ctx); after != before {
		t.Fatalf("refused change moved the generation from %d to %d", before, after)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Generation != g0+3 {
		t.Fatalf("generation = %d, want %d", snap.Generation, g0+3)
	}
	if len(snap.Groups) != 1 || len(snap.Rules[g.ID]) != 1 || len(snap.Servers) != 1 {
		t.Fatalf("snapshot = %+v", snap)
	}
	if snap.Groups[0].Generation != snap.Generation {
		t.Fatalf("group generation = %d, want %d (its server joined last)", snap.Groups[0].Generation, snap.Generation)
	}
	if snap.Servers[0].Interface != "vnet0" || len(snap.Groups[0].Servers) != 1 {
		t.Fatalf("server not in snapshot: %+v", snap.Servers)
	}
}

func TestTokensAndUsers(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	tok, secret, err := db.CreateToken(ctx, org, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if len(tok.AccessKey) != 20 || !strings.HasPrefix(tok.AccessKey, "SCW") {
		t.Fatalf("access key = %q", tok.AccessKey)
	}
	var stored string
	db.queryRow(ctx, `SELECT secret_hash FROM tokens`).Scan(&stored)
	if strings.Contains(stored, secret) || stored == "" {
		t.Fatal("the secret is stored in clear")
	}
	got, err := db.TokenBySecret(ctx, secret)
	if err != nil || got.OrganizationID != org {
		t.Fatalf("token by secret: %+v, %v", got, err)
	}
	if _, err := db.TokenBySecret(ctx, "00000000-0000-0000-0000-000000000000"); ErrorCode(err) != CodeUnauthorized {
		t.Fatalf("unknown secret: %v", err)
	}
	if err := db.DeleteToken(ctx, org, tok.AccessKey); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenBySecret(ctx, secret); ErrorCode(err) != CodeUnauthorized {
		t.Fatalf("revoked token still valid: %v", err)
	}

	if _, err := db.CreateUser(ctx, org, "ops@example.com", "short"); FieldMessage(err, "password") == "" {
		t.Fatalf("short password: %v", err)
	}
	if _, err := db.CreateUser(ctx, org, "ops@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	var hash string
	db.queryRow(ctx, `SELECT password_hash FROM users`).Scan(&hash)
	if !strings.HasPrefix(hash, "$argon2id$") {
		t.Fatalf("hash = %q, want argon2id", hash)
	}
	if _, err := db.Authenticate(ctx, "ops@example.com", "wrong password"); ErrorCode(err) != CodeUnauthorized {
		t.Fatalf("wrong password: %v", err)
	}
	if u, err := db.Authenticate(ctx, "ops@example.com", "correct horse"); err != nil || u.OrganizationID != org {
		t.Fatalf("authenticate: %+v, %v", u, err)
	}
}

func TestAuditLog(t *testing.T) {
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	ctx := WithActor(context.Background(), "user ops@example.com")
	g, err := db.CreateGroup(ctx, org, "fr-par-1", GroupInput{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	other := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "other"})
	r, err := db.CreateRule(ctx, org, "fr-par-1", g.ID, RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(22)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{Action: ptr(Drop)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateGroup(ctx, org, "fr-par-1", g.ID, GroupPatch{Name: ptr("web-2")}); err != nil {
		t.Fatal(err)
	}
	s := mustCreateServer(t, db, org, "fr-par-1", ServerInput{Name: "vm", SecurityGroupID: other.ID})
	if _, err := db.UpdateServer(ctx, org, "fr-par-1", s.ID, ServerPatch{SecurityGroupID: &g.ID}); err != nil {
		t.Fatal(err)
	}
	// A refused change leaves no entry.
	db.UpdateGroup(ctx, org, "fr-par-1", g.ID, GroupPatch{Name: ptr("")})

	events, err := db.Events(context.Background(), org, "fr-par-1", g.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.Resource+" "+e.Action)
		if e.Actor != "user ops@example.com" {
			t.Errorf("actor = %q", e.Actor)
		}
	}
	want := "instance_server update,instance_security_group update,instance_security_group_rule update,instance_security_group_rule create,instance_security_group create"
	if strings.Join(got, ",") != want {
		t.Fatalf("events = %v\nwant %s", got, want)
	}
	if !strings.Contains(string(events[1].Before), `"Name":"web"`) || !strings.Contains(string(events[1].After), `"Name":"web-2"`) {
		t.Fatalf("rename before/after = %s -> %s", events[1].Before, events[1].After)
	}
	if _, err := db.Events(context.Background(), mustOrg(t, db, "globex").ID, "fr-par-1", g.ID, 0); ErrorCode(err) != CodeNotFound {
		t.Fatalf("another organization reads the log: %v", err)
	}
}

// TestSnapshotSinceMatchesSnapshot applies random changes and checks after
// each that the incremental read equals a full one.
func TestSnapshotSinceMatchesSnapshot(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	orgs := []string{mustOrg(t, db, "a").ID, mustOrg(t, db, "b").ID}
	rng := rand.New(rand.NewPCG(1, 2))
	prev, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var groups, servers []struct{ org, id string }
	for step := 0; step < 400; step++ {
		org := orgs[rng.IntN(2)]
		pick := func(list []struct{ org, id string }) (string, string, bool) {
			if len(list) == 0 {
				return "", "", false
			}
			x := list[rng.IntN(len(list))]
			return x.org, x.id, true
		}
		switch op := rng.IntN(10); {
		case op < 2 || len(groups) == 0:
			g, err := db.CreateGroup(ctx, org, "fr-par-1", GroupInput{Name: fmt.Sprintf("g%d", step), Stateful: rng.IntN(2) == 0})
			if err == nil {
				groups = append(groups, struct{ org, id string }{org, g.ID})
			}
		case op < 5:
			o, gid, _ := pick(groups)
			db.CreateRule(ctx, o, "fr-par-1", gid, RuleInput{IPRange: fmt.Sprintf("10.0.%d.0/24", step%250), Position: rng.IntN(4)})
		case op < 6:
			o, gid, _ := pick(groups)
			rules, _ := db.Rules(ctx, o, "fr-par-1", gid)
			if len(rules) > 0 {
				db.DeleteRule(ctx, o, "fr-par-1", gid, rules[rng.IntN(len(rules))].ID)
			}
		case op < 7:
			o, gid, _ := pick(groups)
			s, err := db.CreateServer(ctx, o, "fr-par-1", ServerInput{Name: fmt.Sprintf("s%d", step), Interface: fmt.Sprintf("v%d", step), SecurityGroupID: gid})
			if err == nil {
				servers = append(servers, struct{ org, id string }{o, s.ID})
			}
		case op < 8:
			if o, sid, ok := pick(servers); ok {
				var target string
				for _, g := range groups {
					if g.org == o && rng.IntN(3) == 0 {
						target = g.id
					}
				}
				if target != "" {
					db.UpdateServer(ctx, o, "fr-par-1", sid, ServerPatch{SecurityGroupID: &target, Name: ptr(fmt.Sprintf("n%d", step))})
				} else {
					db.DeleteServer(ctx, o, "fr-par-1", sid)
				}
			}
		case op < 9:
			o, gid, _ := pick(groups)
			db.UpdateGroup(ctx, o, "fr-par-1", gid, GroupPatch{Name: ptr(fmt.Sprintf("r%d", step)), SMTPEnabled: ptr(rng.IntN(2) == 0)})
		default:
			o, gid, _ := pick(groups)
			db.DeleteGroup(ctx, o, "fr-par-1", gid)
		}
		if rng.IntN(3) > 0 {
			continue // several changes between two reads, as under load
		}
		full, err := db.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		inc, err := db.SnapshotSince(ctx, prev)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalise(full), normalise(inc)) {
			t.Fatalf("step %d: incremental snapshot differs from the full one\nfull %+v\ninc  %+v", step, full, inc)
		}
		prev = inc
	}
	if len(prev.Groups) < 10 || len(prev.Servers) < 3 {
		t.Fatalf("the walk built too little to prove anything: %d groups, %d servers", len(prev.Groups), len(prev.Servers))
	}
}

// normalise makes empty and nil slices compare equal.
func normalise(s Snapshot) Snapshot {
	rules := map[string][]Rule{}
	for id, r := range s.Rules {
		if len(r) > 0 {
			rules[id] = r
		}
	}
	s.Rules = rules
	for i := range s.Groups {
		if len(s.Groups[i].Servers) == 0 {
			s.Groups[i].Servers = nil
		}
	}
	return s
}

// TestServerGroups: each server comes with its own group and that group's
// rules as listed; another organization's server is not found, as a
// missing one is.
func TestServerGroups(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateful.ID, RuleInput{Direction: Inbound, Protocol: TCP, Action: Accept, DestPortFrom: ptr(22)})
	if _, err := f.db.CreateGrant(ctx, f.other, "", []string{"vnet*"}, false); err != nil {
		t.Fatal(err)
	}
	theirs := mustCreateServer(t, f.db, f.other, "fr-par-1", ServerInput{Name: "their vm", Interface: "vnet9"})

	got, err := f.db.ServerGroups(ctx, f.org, "fr-par-1", f.instance.ID, f.bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Server.ID != f.instance.ID || got[1].Server.ID != f.bare.ID {
		t.Fatalf("servers = %+v, want vm then metal", got)
	}
	for _, sg := range got {
		want, rules, err := f.db.GroupRules(ctx, f.org, "fr-par-1", sg.Server.SecurityGroup.ID)
		if err != nil {
			t.Fatal(err)
		}
		if sg.Group.ID != want.ID || sg.Group.Generation != want.Generation || !reflect.DeepEqual(sg.Rules, rules) {
			t.Errorf("server %s: group %s (generation %d) with %d rules, want %s (generation %d) with %d",
				sg.Server.Name, sg.Group.ID, sg.Group.Generation, len(sg.Rules), want.ID, want.Generation, len(rules))
		}
	}
	if rules := got[0].Rules; len(rules) != 7 || rules[6].ID != r.ID {
		t.Errorf("rules of vm's group = %s, want the six SMTP rules then rule %s", positions(rules), r.ID)
	}

	for _, tt := range []struct {
		name, org, zone, id string
		resource            string
	}{
		{"another organization's server", f.org, "fr-par-1", theirs.ID, ResourceServer},
		{"a missing server", f.org, "fr-par-1", "00000000-0000-4000-8000-000000000000", ResourceServer},
		{"a zone not served", f.org, "pl-waw-1", f.instance.ID, "zone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.db.ServerGroups(ctx, tt.org, tt.zone, f.instance.ID, tt.id)
			var se *Error
			if !errors.As(err, &se) || se.Code != CodeNotFound || se.Resource != tt.resource {
				t.Fatalf("err = %v, want not found (%s)", err, tt.resource)
			}
			if tt.resource == ResourceServer && se.ResourceID != tt.id {
				t.Errorf("not found names %s, want %s", se.ResourceID, tt.id)
			}
		})
	}
}
