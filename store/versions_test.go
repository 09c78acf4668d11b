package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// versionCheck compares the latest version of a group with the group as
// it is, and checks that versions run 1..N without gaps.
func versionCheck(t *testing.T, db *DB, org, zone, gid string) GroupVersion {
	t.Helper()
	ctx := context.Background()
	g, rules, err := db.GroupRules(ctx, org, zone, gid)
	if err != nil {
		t.Fatal(err)
	}
	infos, total, err := db.Versions(ctx, org, zone, gid, Page{PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	if total != g.Version || len(infos) != min(total, 100) {
		t.Fatalf("versions: total %d, listed %d, group at version %d", total, len(infos), g.Version)
	}
	for i, v := range infos {
		if v.Version != total-i {
			t.Fatalf("versions listed %v: not %d down to 1 without gaps", infos, total)
		}
	}
	v, err := db.Version(ctx, org, zone, gid, g.Version)
	if err != nil {
		t.Fatal(err)
	}
	var editable []Rule
	for _, r := range rules {
		if r.Editable {
			editable = append(editable, r)
		}
	}
	if !slices.Equal(v.Rules, editable) && !(len(v.Rules) == 0 && len(editable) == 0) {
		t.Fatalf("latest version's rules differ from the group's:\n%v\n%v", v.Rules, editable)
	}
	if !sameSettings(v.Settings, SettingsOf(g)) {
		t.Fatalf("latest version's settings %+v differ from the group's %+v", v.Settings, SettingsOf(g))
	}
	if !slices.Equal(v.Servers, g.Servers) {
		t.Fatalf("latest version's servers %v differ from the group's %v", v.Servers, g.Servers)
	}
	return v
}

// TestVersionsForEveryKindOfChange: each kind of change makes exactly one
// version of each group it concerns, numbered without gaps, holding the
// group as it is, with a summary saying what changed.
func TestVersionsForEveryKindOfChange(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web"})
	other := mustCreateGroup(t, db, org, z, GroupInput{Name: "other"})
	var r1, r2 Rule
	var vm Server
	steps := []struct {
		name    string
		change  func() error
		summary string // in the summary of the new version of g
		others  int    // versions the change adds to group other
	}{
		{"settings", func() error {
			_, err := db.UpdateGroup(ctx, org, z, g.ID, GroupPatch{Stateful: ptr(true), InboundDefaultPolicy: ptr(Drop)})
			return err
		}, "settings: stateful, inbound policy", 0},
		{"rule created", func() (err error) {
			r1, err = db.CreateRule(ctx, org, z, g.ID, RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(22), Description: ptr("SSH")})
			return err
		}, "rules: 1 added", 0},
		{"second rule created", func() (err error) {
			r2, err = db.CreateRule(ctx, org, z, g.ID, RuleInput{IPRange: "10.0.0.0/8", Protocol: UDP, DestPortFrom: ptr(53)})
			return err
		}, "rules: 1 added", 0},
		{"rule updated", func() error {
			_, err := db.UpdateRule(ctx, org, z, g.ID, r1.ID, RulePatch{Action: ptr(Drop)})
			return err
		}, "rules: 1 changed", 0},
		{"rule described", func() error {
			_, err := db.UpdateRule(ctx, org, z, g.ID, r1.ID, RulePatch{Description: ptr("no SSH")})
			return err
		}, "rules: 1 changed", 0},
		{"rule moved", func() error {
			_, err := db.MoveRule(ctx, org, z, g.ID, r2.ID, 1)
			return err
		}, "rules: 1 moved", 0},
		{"set-all", func() error {
			_, err := db.SetRules(ctx, org, z, g.ID, []RuleInput{{ID: r1.ID, IPRange: "0.0.0.0/0", DestPortFrom: ptr(22)},
				{IPRange: "::/0", Protocol: ICMP}})
			return err
		}, "rules: 1 added, 1 removed, 1 changed", 0},
		{"rules as text", func() error {
			_, err := db.SetRulesText(ctx, org, z, g.ID, "inbound accept TCP port 443 from 0.0.0.0/0 # HTTPS\n")
			return err
		}, "rules: 1 added, 2 removed", 0},
		{"rule deleted", func() error {
			rules, _ := db.Rules(ctx, org, z, g.ID)
			return db.DeleteRule(ctx, org, z, g.ID, rules[0].ID)
		}, "rules: 1 removed", 0},
		{"server registered into it", func() (err error) {
			vm, err = db.CreateServer(ctx, org, z, ServerInput{Name: "vm-1", Interface: "vnet1", SecurityGroupID: g.ID})
			return err
		}, `server "vm-1" joined`, 0},
		{"server renamed", func() error {
			_, err := db.UpdateServer(ctx, org, z, vm.ID, ServerPatch{Name: ptr("vm-2")})
			return err
		}, `server "vm-2" changed`, 0},
		{"server moved to another group", func() error {
			_, err := db.UpdateServer(ctx, org, z, vm.ID, ServerPatch{SecurityGroupID: &other.ID})
			return err
		}, `server "vm-2" left`, 1},
		{"server added back", func() error {
			_, err := db.AddServer(ctx, org, z, g.ID, vm.ID)
			return err
		}, `server "vm-2" joined`, 1},
		{"server unlinked", func() error {
			_, err := db.UnlinkServer(ctx, org, z, g.ID, vm.ID)
			return err
		}, `server "vm-2" left`, 0},
		{"server added and deleted", func() error {
			if _, err := db.AddServer(ctx, org, z, g.ID, vm.ID); err != nil {
				return err
			}
			_, err := db.DeleteServer(ctx, org, z, vm.ID)
			return err
		}, `server "vm-2" left`, 0},
	}
	versionCheck(t, db, org, z, g.ID)
	for _, s := range steps {
		before := versionCheck(t, db, org, z, g.ID).Version
		otherBefore := versionCheck(t, db, org, z, other.ID).Version
		if err := s.change(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		v := versionCheck(t, db, org, z, g.ID)
		want := before + 1
		if s.name == "server added and deleted" {
			want = before + 2
		}
		if v.Version != want {
			t.Errorf("%s: group at version %d, want %d", s.name, v.Version, want)
		}
		if !strings.Contains(v.Summary, s.summary) {
			t.Errorf("%s: summary %q, want it to say %q", s.name, v.Summary, s.summary)
		}
		if v.Actor != "system" || v.CreatedAt.IsZero() {
			t.Errorf("%s: version by %q at %v", s.name, v.Actor, v.CreatedAt)
		}
		if got := versionCheck(t, db, org, z, other.ID).Version; got != otherBefore+s.others {
			t.Errorf("%s: other group at version %d, want %d", s.name, got, otherBefore+s.others)
		}
	}
	// A change that changes nothing makes no version.
	before := versionCheck(t, db, org, z, g.ID).Version
	rules, _ := db.Rules(ctx, org, z, g.ID)
	if _, err := db.SetRulesText(ctx, org, z, g.ID, FormatRules(rules)); err != nil {
		t.Fatal(err)
	}
	if after := versionCheck(t, db, org, z, g.ID).Version; after != before {
		t.Errorf("rewriting the same text made version %d (was %d)", after, before)
	}
	// The actor is whoever made the change.
	if _, err := db.UpdateGroup(WithActor(ctx, "user ops@acme.test"), org, z, g.ID, GroupPatch{Description: ptr("front")}); err != nil {
		t.Fatal(err)
	}
	if v := versionCheck(t, db, org, z, g.ID); v.Actor != "user ops@acme.test" || v.Summary != "settings: description" {
		t.Errorf("version by %q: %q", v.Actor, v.Summary)
	}
	first, err := db.Version(ctx, org, z, g.ID, 1)
	if err != nil || first.Summary != "created" || first.Settings.Name != "web" || len(first.Rules) != 0 {
		t.Errorf("version 1 = %+v, %v", first, err)
	}
	if _, err := db.Version(ctx, org, z, g.ID, 999); ErrorCode(err) != CodeNotFound {
		t.Errorf("version 999: %v, want not found", err)
	}
	theirs := mustOrg(t, db, "globex").ID
	if _, err := db.Version(ctx, theirs, z, g.ID, 1); ErrorCode(err) != CodeNotFound {
		t.Errorf("another organization's version: %v, want not found", err)
	}
}

// TestVersionDiff: what changed between two versions, rule by rule and as
// text lines.
func TestVersionDiff(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web"})
	a := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(22), Description: ptr("SSH")})
	b := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(80)})
	c := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(443)})
	from := versionCheck(t, db, org, z, g.ID).Version
	if _, err := db.UpdateGroup(ctx, org, z, g.ID, GroupPatch{Name: ptr("web2"), SMTPEnabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRule(ctx, org, z, g.ID, a.ID, RulePatch{Action: ptr(Drop), Description: ptr("no SSH")}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRule(ctx, org, z, g.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	d := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(8080), Position: 1})
	if _, err := db.MoveRule(ctx, org, z, g.ID, c.ID, 2); err != nil {
		t.Fatal(err)
	}
	vm := mustCreateServer(t, db, org, z, ServerInput{Name: "vm", SecurityGroupID: g.ID})
	to := versionCheck(t, db, org, z, g.ID).Version

	cmp, err := db.CompareVersions(ctx, org, z, g.ID, to, from)
	if err != nil {
		t.Fatal(err)
	}
	diff := cmp.Diff
	var settings []string
	for _, s := range diff.Settings {
		settings = append(settings, fmt.Sprintf("%s:%v>%v", s.Field, s.Before, s.After))
	}
	if got := strings.Join(settings, " "); got != "name:web>web2 smtp_enabled:false>true" {
		t.Errorf("settings = %s", got)
	}
	if len(diff.Added) != 1 || diff.Added[0].ID != d.ID || len(diff.Removed) != 1 || diff.Removed[0].ID != b.ID {
		t.Errorf("added %v, removed %v", diff.Added, diff.Removed)
	}
	if len(diff.Changed) != 1 || diff.Changed[0].After.ID != a.ID || strings.Join(diff.Changed[0].Fields, ",") != "action,description" {
		t.Errorf("changed %+v", diff.Changed)
	}
	// c went above a; d was inserted at the top, which moves nothing.
	if len(diff.Moved) != 1 || (diff.Moved[0].Rule.ID != c.ID && diff.Moved[0].Rule.ID != a.ID) {
		t.Errorf("moved %+v", diff.Moved)
	}
	if len(diff.Joined) != 1 || diff.Joined[0].ID != vm.ID || len(diff.Left) != 0 {
		t.Errorf("joined %v, left %v", diff.Joined, diff.Left)
	}
	var lines []string
	for _, l := range diff.Lines {
		lines = append(lines, string(l.Op)+l.Text)
	}
	want := []string{
		"-inbound accept TCP port 22 from 0.0.0.0/0 # SSH",
		"-inbound accept TCP port 80 from 0.0.0.0/0",
		"+inbound accept TCP port 8080 from 0.0.0.0/0",
		" inbound accept TCP port 443 from 0.0.0.0/0",
		"+inbound drop TCP port 22 from 0.0.0.0/0 # no SSH",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Against 0: the version before.
	prev, err := db.CompareVersions(ctx, org, z, g.ID, to, 0)
	if err != nil || prev.From.Version != to-1 || len(prev.Diff.Joined) != 1 || len(prev.Diff.Settings) != 0 {
		t.Errorf("against the previous version: %+v, %v", prev.Diff, err)
	}
	if _, err := db.CompareVersions(ctx, org, z, g.ID, to, -1); FieldMessage(err, "against") == "" {
		t.Errorf("against -1: %v", err)
	}
}

// TestRevertRestoresExactly: a revert restores settings and rules (IDs,
// positions, every field, descriptions) as they were, leaves servers, and
// is itself a new, audited version.
func TestRevertRestoresExactly(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web", Description: "front", Tags: []string{"a"}, Stateful: true,
		InboundDefaultPolicy: Drop})
	mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(22), Description: ptr("SSH"), DestIPRange: ptr("192.0.2.10")})
	mustCreateRule(t, db, org, z, g.ID, RuleInput{Direction: Outbound, Action: Drop, Protocol: ANY, IPRange: "2001:db8::/32"})
	mustCreateRule(t, db, org, z, g.ID, RuleInput{Protocol: UDP, DestPortFrom: ptr(1000), DestPortTo: ptr(2000), IPRange: "10.0.0.0/8"})
	target := versionCheck(t, db, org, z, g.ID)

	rules, _ := db.Rules(ctx, org, z, g.ID)
	if _, err := db.UpdateGroup(ctx, org, z, g.ID, GroupPatch{Name: ptr("renamed"), Stateful: ptr(false), Tags: &[]string{},
		InboundDefaultPolicy: ptr(Accept), SMTPEnabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteRule(ctx, org, z, g.ID, rules[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MoveRule(ctx, org, z, g.ID, rules[2].ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRule(ctx, org, z, g.ID, rules[1].ID, RulePatch{Description: ptr("changed"), Action: ptr(Accept)}); err != nil {
		t.Fatal(err)
	}
	mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(9999)})
	vm := mustCreateServer(t, db, org, z, ServerInput{Name: "vm", SecurityGroupID: g.ID})
	before := versionCheck(t, db, org, z, g.ID)

	restored, listed, err := db.RevertGroup(WithActor(ctx, "user ops@acme.test"), org, z, g.ID, target.Version)
	if err != nil {
		t.Fatal(err)
	}
	after := versionCheck(t, db, org, z, g.ID)
	if !slices.Equal(after.Rules, target.Rules) {
		t.Errorf("rules after the revert:\n%v\nwant:\n%v", after.Rules, target.Rules)
	}
	if !sameSettings(after.Settings, target.Settings) {
		t.Errorf("settings after the revert %+v, want %+v", after.Settings, target.Settings)
	}
	if len(after.Servers) != 1 || after.Servers[0].ID != vm.ID || len(restored.Servers) != 1 {
		t.Errorf("servers after the revert %v: a revert never moves servers", after.Servers)
	}
	if after.Version != before.Version+1 || after.Summary != fmt.Sprintf("reverted to version %d; settings: name, tags, stateful, inbound policy, SMTP; rules: 1 added, 1 removed, 1 changed, 1 moved", target.Version) {
		t.Errorf("version %d: %q", after.Version, after.Summary)
	}
	if restored.Name != "web" || len(listed) != 6+3 {
		t.Errorf("answer: %s with %d rules listed", restored.Name, len(listed))
	}
	events, _ := db.Events(ctx, org, z, g.ID, 1)
	if events[0].Action != "revert" || events[0].Actor != "user ops@acme.test" {
		t.Errorf("last event %+v", events[0])
	}
	// Reverting to what the group already is changes nothing.
	gen, _ := db.Generation(ctx)
	if _, _, err := db.RevertGroup(ctx, org, z, g.ID, target.Version); err != nil {
		t.Fatal(err)
	}
	if g2, _ := db.Generation(ctx); g2 != gen {
		t.Errorf("a revert to the current state moved the generation")
	}
	if _, _, err := db.RevertGroup(ctx, org, z, g.ID, 999); ErrorCode(err) != CodeNotFound {
		t.Errorf("revert to version 999: %v", err)
	}
}

// TestRevertRefusedByTodaysRules: a revert goes through the rules of the
// domain as they stand now, names why it is refused, and writes nothing.
func TestRevertRefusedByTodaysRules(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web", Stateful: true})
	stateful := versionCheck(t, db, org, z, g.ID).Version
	if _, err := db.UpdateGroup(ctx, org, z, g.ID, GroupPatch{Stateful: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	mustCreateServer(t, db, org, z, ServerInput{Name: "metal-1", Type: BareMetal, SecurityGroupID: g.ID})
	for i := 0; i < 3; i++ {
		mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(1000 + i)})
	}
	many := versionCheck(t, db, org, z, g.ID).Version
	if err := db.DeleteRule(ctx, org, z, g.ID, versionCheck(t, db, org, z, g.ID).Rules[0].ID); err != nil {
		t.Fatal(err)
	}

	before := dump(t, db)
	_, _, err := db.RevertGroup(ctx, org, z, g.ID, stateful)
	msg := FieldMessage(err, "stateful")
	if ErrorCode(err) != CodeInvalid || !strings.Contains(msg, `BareMetal server "metal-1"`) || !strings.Contains(msg, "stateless") {
		t.Errorf("revert to a stateful version with a BareMetal server: %v", err)
	}
	db.MaxRules = 2
	_, _, err = db.RevertGroup(ctx, org, z, g.ID, many)
	if msg := FieldMessage(err, "rules"); !strings.Contains(msg, "at most 2") {
		t.Errorf("revert to a version with more rules than today's limit: %v", err)
	}
	if dump(t, db) != before {
		t.Error("a refused revert wrote")
	}
}

// TestConfirmOrRollBack: a change with a deadline leaves the group
// pending; other changes are refused naming the pending version until it
// is confirmed, or rolled back (audited, a version) once the deadline
// passes; a confirmation after the deadline is refused.
func TestConfirmOrRollBack(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web"})
	mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(22)})
	base := versionCheck(t, db, org, z, g.ID)

	cctx, pending := WithConfirmation(WithActor(ctx, "user ops@acme.test"), g.ID, 30*time.Second)
	if _, err := db.UpdateGroup(cctx, org, z, g.ID, GroupPatch{InboundDefaultPolicy: ptr(Drop)}); err != nil {
		t.Fatal(err)
	}
	if pending.Version != base.Version+1 || pending.Base != base.Version || !pending.Deadline.Equal(now.Add(30*time.Second)) {
		t.Fatalf("pending = %+v", pending)
	}
	got, _ := db.Group(ctx, org, z, g.ID)
	if got.Pending == nil || got.Pending.Version != pending.Version || got.Pending.Actor != "user ops@acme.test" {
		t.Fatalf("group's pending = %+v", got.Pending)
	}
	// Any other change to the group, of any kind, is refused.
	vm := mustCreateServer(t, db, org, z, ServerInput{Name: "vm"})
	before := dump(t, db)
	for name, change := range map[string]func() error{
		"rule": func() error {
			_, err := db.CreateRule(ctx, org, z, g.ID, RuleInput{IPRange: "0.0.0.0/0"})
			return err
		},
		"settings": func() error { _, err := db.UpdateGroup(ctx, org, z, g.ID, GroupPatch{Name: ptr("x")}); return err },
		"server":   func() error { _, err := db.AddServer(ctx, org, z, g.ID, vm.ID); return err },
		"revert":   func() error { _, _, err := db.RevertGroup(ctx, org, z, g.ID, 1); return err },
		"delete":   func() error { _, err := db.DeleteGroup(ctx, org, z, g.ID); return err },
		"another confirmation": func() error {
			c2, _ := WithConfirmation(ctx, g.ID, time.Second)
			_, err := db.UpdateGroup(c2, org, z, g.ID, GroupPatch{Name: ptr("y")})
			return err
		},
	} {
		err := change()
		if ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), fmt.Sprintf("version %d of this security group awaits confirmation", pending.Version)) {
			t.Errorf("%s while pending: %v, want a conflict naming version %d", name, err, pending.Version)
		}
	}
	if dump(t, db) != before {
		t.Error("a refused change wrote")
	}

	// Confirmed: the change stays, and other changes are allowed again.
	if _, err := db.ConfirmGroup(ctx, org, z, g.ID, pending.Version+1); ErrorCode(err) != CodeConflict {
		t.Errorf("confirming another version: %v", err)
	}
	confirmed, err := db.ConfirmGroup(ctx, org, z, g.ID, pending.Version)
	if err != nil || confirmed.Pending != nil {
		t.Fatalf("confirm: %+v %v", confirmed.Pending, err)
	}
	if _, err := db.ConfirmGroup(ctx, org, z, g.ID, 0); ErrorCode(err) != CodeConflict {
		t.Errorf("confirming twice: %v", err)
	}
	now = now.Add(time.Minute)
	if n, err := db.RollBackDue(ctx); n != 0 || err != nil {
		t.Errorf("a confirmed change was rolled back: %d %v", n, err)
	}
	kept := versionCheck(t, db, org, z, g.ID)
	if kept.Version != pending.Version || kept.Settings.InboundDefaultPolicy != Drop {
		t.Errorf("after confirming: version %d, inbound %s", kept.Version, kept.Settings.InboundDefaultPolicy)
	}

	// Left unconfirmed: rolled back once the deadline passes, and only then.
	cctx, pending = WithConfirmation(ctx, g.ID, 10*time.Second)
	if _, err := db.SetRulesText(cctx, org, z, g.ID, "inbound drop ANY from 0.0.0.0/0 # lock-out\n"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(9 * time.Second)
	if n, _ := db.RollBackDue(ctx); n != 0 {
		t.Fatal("rolled back before the deadline")
	}
	now = now.Add(time.Second)
	if _, err := db.ConfirmGroup(ctx, org, z, g.ID, 0); ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "too late") {
		t.Errorf("confirming at the deadline: %v", err)
	}
	if n, err := db.RollBackDue(ctx); n != 1 || err != nil {
		t.Fatalf("roll back: %d %v", n, err)
	}
	after := versionCheck(t, db, org, z, g.ID)
	if !slices.Equal(after.Rules, kept.Rules) || !sameSettings(after.Settings, kept.Settings) {
		t.Errorf("rolled back to %v, want %v", after.Rules, kept.Rules)
	}
	if after.Version != pending.Version+1 || after.Actor != "system" ||
		!strings.HasPrefix(after.Summary, fmt.Sprintf("rolled back to version %d: version %d was not confirmed by", kept.Version, pending.Version)) {
		t.Errorf("roll-back version %d by %s: %q", after.Version, after.Actor, after.Summary)
	}
	events, _ := db.Events(ctx, org, z, g.ID, 1)
	if events[0].Action != "rollback" || events[0].Actor != "system" {
		t.Errorf("last event %+v, want a rollback by system", events[0])
	}
	if g2, _ := db.Group(ctx, org, z, g.ID); g2.Pending != nil {
		t.Errorf("still pending after the roll-back: %+v", g2.Pending)
	}
	if n, _ := db.RollBackDue(ctx); n != 0 {
		t.Error("rolled back twice")
	}
	if _, err := ParseConfirmWithin("0"); FieldMessage(err, "confirm_within") == "" {
		t.Errorf("0 s: %v", err)
	}
	if d, err := ParseConfirmWithin(" 60 "); err != nil || d != time.Minute {
		t.Errorf("60: %v %v", d, err)
	}
}

// TestRollBackOnceAcrossProcesses: two stores on one database file (two
// consoles) race to roll back the same change many times over; it is
// rolled back exactly once.
func TestRollBackOnceAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var dbs []*DB
	for i := 0; i < 2; i++ {
		db, err := Open(ctx, path, []string{"fr-par-1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	org := mustOrg(t, dbs[0], "acme").ID
	g := mustCreateGroup(t, dbs[0], org, "fr-par-1", GroupInput{Name: "web"})
	for round := 0; round < 5; round++ {
		cctx, pending := WithConfirmation(ctx, g.ID, time.Millisecond)
		if _, err := dbs[round%2].CreateRule(cctx, org, "fr-par-1", g.ID, RuleInput{IPRange: "0.0.0.0/0", DestPortFrom: ptr(round + 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(db *DB) {
				defer wg.Done()
				n, err := db.RollBackDue(ctx)
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}(dbs[i%2])
		}
		wg.Wait()
		if total != 1 {
			t.Fatalf("round %d: %d roll-backs of version %d, want exactly 1", round, total, pending.Version)
		}
		v := versionCheck(t, dbs[1], org, "fr-par-1", g.ID)
		if v.Version != pending.Version+1 || len(v.Rules) != 0 {
			t.Fatalf("round %d: version %d with %d rules after the roll-back", round, v.Version, len(v.Rules))
		}
		events, _ := dbs[0].Events(ctx, org, "fr-par-1", g.ID, 1000)
		n := 0
		for _, e := range events {
			if e.Action == "rollback" {
				n++
			}
		}
		if n != round+1 {
			t.Fatalf("round %d: %d rollback events", round, n)
		}
	}
}

// TestPendingSurvivesReopening: the deadline is in the database; a store
// opened after a restart rolls the change back.
func TestPendingSurvivesReopening(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(ctx, path, []string{"fr-par-1"})
	if err != nil {
		t.Fatal(err)
	}
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "web"})
	cctx, _ := WithConfirmation(ctx, g.ID, 50*time.Millisecond)
	if _, err := db.UpdateGroup(cctx, org, "fr-par-1", g.ID, GroupPatch{InboundDefaultPolicy: ptr(Drop)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	time.Sleep(100 * time.Millisecond)
	db, err = Open(ctx, path, []string{"fr-par-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { db.RunRollBacks(rctx, nil); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := db.Group(ctx, org, "fr-par-1", g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Pending == nil && got.InboundDefaultPolicy == Accept {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not rolled back after reopening: %+v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
}

// TestBackfillVersions: groups from before versions get version 1 when the
// store opens, once.
func TestBackfillVersions(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := Open(ctx, path, []string{"fr-par-1"})
	if err != nil {
		t.Fatal(err)
	}
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "old"})
	mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{DestPortFrom: ptr(22)})
	// As the migration leaves a group that predates it.
	if _, err := db.exec(context.Background(), `DELETE FROM group_versions; UPDATE security_groups SET version = 0`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for i := 0; i < 2; i++ {
		db, err = Open(ctx, path, []string{"fr-par-1"})
		if err != nil {
			t.Fatal(err)
		}
		v := versionCheck(t, db, org, "fr-par-1", g.ID)
		if v.Version != 1 || len(v.Rules) != 1 || !strings.Contains(v.Summary, "began keeping versions") {
			t.Errorf("opening %d: version %d %q with %d rules", i, v.Version, v.Summary, len(v.Rules))
		}
		db.Close()
	}
}

// randomRules makes n valid rules of every shape the text form must
// carry.
func randomRules(rng *rand.Rand, n int) []Rule {
	ranges4 := []string{"0.0.0.0/0", "10.0.0.0/8", "192.0.2.10/32", "198.51.100.0/24"}
	ranges6 := []string{"::/0", "2001:db8::/32", "2001:db8::1/128", "fd00::/8"}
	descs := []string{"", "SSH", "web # public", "  spaced  ", "émoji ✓", "a#b", strings.Repeat("x", MaxDescriptionLength)}
	var rules []Rule
	for len(rules) < n {
		var in RuleInput
		in.Direction = []Direction{Inbound, Outbound}[rng.IntN(2)]
		in.Action = []Policy{Accept, Drop}[rng.IntN(2)]
		in.Protocol = []Protocol{TCP, UDP, ICMP, ANY}[rng.IntN(4)]
		set := ranges4
		if rng.IntN(2) == 0 {
			set = ranges6
		}
		in.IPRange = set[rng.IntN(len(set))]
		if rng.IntN(3) == 0 {
			d := set[rng.IntN(len(set))]
			in.DestIPRange = &d
		}
		if in.Protocol.HasPorts() && rng.IntN(3) > 0 {
			from := 1 + rng.IntN(65535)
			in.DestPortFrom = &from
			if rng.IntN(2) == 0 {
				to := from + rng.IntN(65536-from)
				in.DestPortTo = &to
			}
		}
		d := descs[rng.IntN(len(descs))]
		in.Description = &d
		logged := rng.IntN(4) == 0
		in.Log = &logged
		var fe fieldErrors
		r := buildRule(&fe, "", in)
		if len(fe) > 0 {
			panic(fe.text())
		}
		r.Position = len(rules) + 1
		rules = append(rules, r)
	}
	return rules
}

// TestRulesTextRoundTrip is a property test: for random rule sets, the
// text form reads back to the same rules, and writing those again gives
// the same bytes.
func TestRulesTextRoundTrip(t *testing.T) {
	db := openTestDB(t)
	rng := rand.New(rand.NewPCG(16, 2026))
	for i := 0; i < 500; i++ {
		rules := randomRules(rng, rng.IntN(40))
		text := FormatRules(rules)
		back, err := db.ParseRulesText(text)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", i, err, text)
		}
		if len(back) != len(rules) {
			t.Fatalf("case %d: %d rules back from %d", i, len(back), len(rules))
		}
		for j := range rules {
			if ruleFields(rules[j], back[j]) != nil || rules[j].Position != back[j].Position {
				t.Fatalf("case %d, line %d: %q read back as %+v, want %+v", i, j+1, FormatRule(rules[j]), back[j], rules[j])
			}
		}
		if again := FormatRules(back); again != text {
			t.Fatalf("case %d: text changed on the way back:\n%s\n---\n%s", i, text, again)
		}
	}
	// Written loosely, it reads the same.
	loose := "  INBOUND Accept tcp  Ports 80-90 FROM 10.0.0.1 to 192.0.2.0/24  #   web  \r\n\n# comment\n" +
		"outbound drop any LOG to ::/0\n"
	rules, err := db.ParseRulesText(loose)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatRules(rules); got != "inbound accept TCP ports 80-90 from 10.0.0.1 to 192.0.2.0/24 # web\noutbound drop ANY to ::/0 log\n" {
		t.Errorf("loose text read as:\n%s", got)
	}
	if rules, err := db.ParseRulesText(""); err != nil || len(rules) != 0 {
		t.Errorf("empty text: %v %v", rules, err)
	}
}

// TestRulesTextErrors: a refusal names each bad line and what is wrong
// with it.
func TestRulesTextErrors(t *testing.T) {
	db := openTestDB(t)
	text := strings.Join([]string{
		"inbound accept TCP port 22 from 0.0.0.0/0 # fine",
		"inbound accept TCP port 70000 from 0.0.0.0/0",
		"# comment",
		"sideways accept TCP from 0.0.0.0/0",
		"inbound accept ICMP port 22 from 0.0.0.0/0",
		"inbound accept TCP port 22",
		"outbound drop UDP to 10.0.0.300/8",
		"inbound accept TCP from 10.0.0.0/8 via eth0",
		"inbound accept TCP from 10.0.0.0/8 to 2001:db8::1",
		"inbound accept TCP port 22 from 0.0.0.0/0 # " + strings.Repeat("d", MaxDescriptionLength+1),
		"inbound accept TCP port twenty from 0.0.0.0/0",
		"inbound accept",
	}, "\n")
	_, err := db.ParseRulesText(text)
	var se *Error
	if !asError(err, &se) || se.Code != CodeInvalid {
		t.Fatalf("err = %v", err)
	}
	got := map[string]string{}
	for _, f := range se.Fields {
		got[f.Field] += f.Message + " | "
	}
	want := map[string]string{
		"line 2":  "dest_port_from: a port is from 1 to 65535",
		"line 4":  "direction: must be inbound or outbound",
		"line 5":  "ports apply to TCP and UDP only",
		"line 6":  "ip_range: the rule needs its remote side",
		"line 7":  `ip_range: "10.0.0.300/8" is not a CIDR range`,
		"line 8":  `unexpected "via"`,
		"line 9":  "dest_ip_range: must be of the same IP family",
		"line 10": "description: at most 255 characters",
		"line 11": `dest_port_from: a port is a whole number from 1 to 65535 (got "twenty")`,
		"line 12": "a rule is a direction, an action, a protocol and a range",
	}
	for field, msg := range want {
		if !strings.Contains(got[field], msg) {
			t.Errorf("%s: %q, want it to say %q", field, got[field], msg)
		}
	}
	for _, ok := range []string{"line 1", "line 3"} {
		if got[ok] != "" {
			t.Errorf("%s refused: %s", ok, got[ok])
		}
	}
	db.MaxRules = 1
	if _, err := db.ParseRulesText("inbound accept ANY from ::/0\ninbound drop ANY from 0.0.0.0/0\n"); FieldMessage(err, "rules") == "" {
		t.Errorf("more rules than the limit: %v", err)
	}
}

// TestSetAllKeepsRampartFields: a set-all element that leaves out a
// Rampart field (as every Scaleway client does) keeps its stored value; a
// new rule takes none; "" unsets.
func TestSetAllKeepsRampartFields(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "web"})
	r := mustCreateRule(t, db, org, "fr-par-1", g.ID, RuleInput{DestPortFrom: ptr(22), Description: ptr("SSH"), DestIPRange: ptr("192.0.2.1")})
	got, err := db.SetRules(ctx, org, "fr-par-1", g.ID, []RuleInput{
		{ID: r.ID, IPRange: "0.0.0.0/0", DestPortFrom: ptr(2222)},
		{IPRange: "0.0.0.0/0", DestPortFrom: ptr(80)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got = got[6:] // SMTP rules first
	if got[0].Description != "SSH" || got[0].DestIPRange != netip.MustParsePrefix("192.0.2.1/32") || got[0].DestPortFrom != 2222 {
		t.Errorf("kept rule = %+v", got[0])
	}
	if got[1].Description != "" || got[1].DestIPRange.IsValid() {
		t.Errorf("new rule = %+v", got[1])
	}
	// A kept range is checked with the rule's new fields.
	if _, err := db.SetRules(ctx, org, "fr-par-1", g.ID, []RuleInput{{ID: r.ID, IPRange: "::/0"}}); FieldMessage(err, "rules[0].dest_ip_range") == "" {
		t.Errorf("kept IPv4 dest_ip_range with an IPv6 ip_range: %v", err)
	}
	got, err = db.SetRules(ctx, org, "fr-par-1", g.ID, []RuleInput{{ID: r.ID, IPRange: "0.0.0.0/0", Description: ptr(""), DestIPRange: ptr("")}})
	if err != nil || got[6].Description != "" || got[6].DestIPRange.IsValid() {
		t.Errorf("unset: %+v %v", got, err)
	}
	// A PATCH keeps what it does not name, and trims descriptions.
	upd, err := db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{Description: ptr("  web  ")})
	if err != nil || upd.Description != "web" {
		t.Fatalf("patch description: %+v %v", upd, err)
	}
	upd, err = db.UpdateRule(ctx, org, "fr-par-1", g.ID, r.ID, RulePatch{Action: ptr(Drop)})
	if err != nil || upd.Description != "web" {
		t.Errorf("patch without description: %+v %v", upd, err)
	}
}

// TestDrafts: a draft is staged, reviewed and applied as one change; one
// whose group's rules changed meanwhile says so and is not applied.
func TestDrafts(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	const z = "fr-par-1"
	u, err := db.CreateUser(ctx, org, "ops@acme.test", "a long password")
	if err != nil {
		t.Fatal(err)
	}
	g := mustCreateGroup(t, db, org, z, GroupInput{Name: "web"})
	ssh := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(22)})
	http := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(80)})

	if _, err := db.ReviewDraft(ctx, org, z, g.ID, u.ID); ErrorCode(err) != CodeNotFound {
		t.Fatalf("no draft yet: %v", err)
	}
	gen, _ := db.Generation(ctx)
	if err := db.StartDraft(ctx, org, z, g.ID, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftAddRule(ctx, org, z, g.ID, u.ID, RuleInput{IPRange: "10.0.0.0/8", Protocol: UDP, DestPortFrom: ptr(53), Description: ptr("DNS")}); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftUpdateRule(ctx, org, z, g.ID, u.ID, ssh.ID, RuleInput{IPRange: "192.0.2.0/24", DestPortFrom: ptr(22)}); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftMoveRule(ctx, org, z, g.ID, u.ID, http.ID, -1); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftAddRule(ctx, org, z, g.ID, u.ID, RuleInput{IPRange: "nope"}); FieldMessage(err, "ip_range") == "" {
		t.Errorf("bad rule in a draft: %v", err)
	}
	if g2, _ := db.Generation(ctx); g2 != gen {
		t.Errorf("editing a draft moved the generation")
	}
	rev, err := db.ReviewDraft(ctx, org, z, g.ID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatRules(rev.Draft.Rules); got != "inbound accept TCP port 80 from 0.0.0.0/0\ninbound accept TCP port 22 from 192.0.2.0/24\ninbound accept UDP port 53 from 10.0.0.0/8 # DNS\n" {
		t.Errorf("draft:\n%s", got)
	}
	if rev.MovedOn || !rev.Since.Empty() || len(rev.Changes.Added) != 1 || len(rev.Changes.Changed) != 1 || len(rev.Changes.Moved) != 1 {
		t.Errorf("review: moved on %v, since %+v, changes %+v", rev.MovedOn, rev.Since, rev.Changes)
	}
	// Text replaces the draft; unchanged lines keep their rules.
	text := "inbound accept TCP port 80 from 0.0.0.0/0\ninbound accept UDP port 53 from 10.0.0.0/8 # DNS\n"
	if err := db.DraftSetText(ctx, org, z, g.ID, u.ID, text); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftSetText(ctx, org, z, g.ID, u.ID, "inbound sideways TCP from 0.0.0.0/0"); FieldMessage(err, "line 1") == "" {
		t.Errorf("bad text: %v", err)
	}
	rev, _ = db.ReviewDraft(ctx, org, z, g.ID, u.ID)
	if rev.Draft.Rules[0].ID != http.ID || FormatRules(rev.Draft.Rules) != text {
		t.Errorf("after text: %v", rev.Draft.Rules)
	}

	// Applied: one change, one version, the draft gone.
	before := versionCheck(t, db, org, z, g.ID).Version
	if _, err := db.ApplyDraft(ctx, org, z, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	v := versionCheck(t, db, org, z, g.ID)
	if v.Version != before+1 || FormatRules(v.Rules) != text || !strings.HasPrefix(v.Summary, "reviewed draft applied") {
		t.Errorf("applied: version %d %q:\n%s", v.Version, v.Summary, FormatRules(v.Rules))
	}
	if _, err := db.ReviewDraft(ctx, org, z, g.ID, u.ID); ErrorCode(err) != CodeNotFound {
		t.Errorf("draft still there: %v", err)
	}

	// Moved on: someone else changes the rules; the review says what, and
	// applying is refused.
	if err := db.StartDraft(ctx, org, z, g.ID, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftDeleteRule(ctx, org, z, g.ID, u.ID, http.ID); err != nil {
		t.Fatal(err)
	}
	other := mustCreateRule(t, db, org, z, g.ID, RuleInput{DestPortFrom: ptr(443), Description: ptr("theirs")})
	rev, _ = db.ReviewDraft(ctx, org, z, g.ID, u.ID)
	if !rev.MovedOn || len(rev.Since.Added) != 1 || rev.Since.Added[0].ID != other.ID {
		t.Errorf("moved on = %v, since %+v", rev.MovedOn, rev.Since)
	}
	before2 := dump(t, db)
	if _, err := db.ApplyDraft(ctx, org, z, g.ID, u.ID); ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "changed since your draft began") {
		t.Errorf("apply a draft whose group moved on: %v", err)
	}
	if dump(t, db) != before2 {
		t.Error("a refused apply wrote")
	}
	// A server joining is not a change of rules: the draft still applies.
	if err := db.StartDraft(ctx, org, z, g.ID, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := db.DraftDeleteRule(ctx, org, z, g.ID, u.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	mustCreateServer(t, db, org, z, ServerInput{Name: "vm", SecurityGroupID: g.ID})
	if rev, _ := db.ReviewDraft(ctx, org, z, g.ID, u.ID); rev.MovedOn || len(rev.Since.Joined) != 1 {
		t.Errorf("after a server joined: moved on %v, since %+v", rev.MovedOn, rev.Since)
	}
	cctx, pending := WithConfirmation(ctx, g.ID, time.Minute)
	if _, err := db.ApplyDraft(cctx, org, z, g.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if pending.Version == 0 {
		t.Error("a draft applied with a confirmation is not pending")
	}
	if err := db.DiscardDraft(ctx, org, z, g.ID, u.ID); err != nil {
		t.Errorf("discarding no draft: %v", err)
	}
}

func asError(err error, target **Error) bool {
	if err == nil {
		return false
	}
	e, ok := err.(*Error)
	if !ok {
		type unwrapper interface{ Unwrap() error }
		if u, ok := err.(unwrapper); ok {
			return asError(u.Unwrap(), target)
		}
		return false
	}
	*target = e
	return true
}
