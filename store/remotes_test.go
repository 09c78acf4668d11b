package store

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func mustCreateIPSet(tb testing.TB, db *DB, org, zone, name string, entries ...string) IPSet {
	tb.Helper()
	s, err := db.CreateIPSet(context.Background(), org, zone, IPSetInput{Name: name, Entries: entries})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestRemoteRulesRefused: a rule names exactly one remote side, and only
// a set or a group of its own organization and zone; a refusal names the
// field and writes nothing. Another organization's set gets the answer of
// a set that does not exist.
func TestRemoteRulesRefused(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		in        func(f *fixture, mine, theirs, otherZone IPSet, theirGroup Group) RuleInput
		wantField string
		wantText  string
	}{
		{"set and range", func(f *fixture, mine, _, _ IPSet, _ Group) RuleInput {
			return RuleInput{IPRange: "10.0.0.0/8", IPSetID: &mine.ID}
		}, "ip_range", "one of ip_range, ip_set_id and remote_security_group_id"},
		{"set and group", func(f *fixture, mine, _, _ IPSet, _ Group) RuleInput {
			return RuleInput{IPSetID: &mine.ID, RemoteGroupID: &f.stateful.ID}
		}, "remote_security_group_id", "one of ip_range"},
		{"none", func(f *fixture, _, _, _ IPSet, _ Group) RuleInput {
			empty := ""
			return RuleInput{IPSetID: &empty}
		}, "ip_range", "is required"},
		{"another organization's set", func(f *fixture, _, theirs, _ IPSet, _ Group) RuleInput {
			return RuleInput{IPSetID: &theirs.ID}
		}, "ip_set_id", "no IP set " + "%s in this organization and zone"},
		{"a set that does not exist", func(f *fixture, _, _, _ IPSet, _ Group) RuleInput {
			id := "00000000-0000-0000-0000-000000000000"
			return RuleInput{IPSetID: &id}
		}, "ip_set_id", "no IP set 00000000-0000-0000-0000-000000000000 in this organization and zone"},
		{"a set of another zone", func(f *fixture, _, _, otherZone IPSet, _ Group) RuleInput {
			return RuleInput{IPSetID: &otherZone.ID}
		}, "ip_set_id", "in this organization and zone"},
		{"another organization's group", func(f *fixture, _, _, _ IPSet, theirGroup Group) RuleInput {
			return RuleInput{RemoteGroupID: &theirGroup.ID}
		}, "remote_security_group_id", "no security group " + "%s in this organization and zone"},
		{"not an ID", func(f *fixture, _, _, _ IPSet, _ Group) RuleInput {
			id := "office; DROP TABLE rules"
			return RuleInput{IPSetID: &id}
		}, "ip_set_id", "is not an IP set ID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			mine := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24")
			theirs := mustCreateIPSet(t, f.db, f.other, "fr-par-1", "theirs", "198.51.100.0/24")
			otherZone := mustCreateIPSet(t, f.db, f.org, "nl-ams-1", "amsterdam", "203.0.113.0/24")
			theirGroup := mustCreateGroup(t, f.db, f.other, "fr-par-1", GroupInput{Name: "theirs"})
			in := tt.in(f, mine, theirs, otherZone, theirGroup)
			before := dump(t, f.db)
			_, err := f.db.CreateRule(ctx, f.org, "fr-par-1", f.stateless.ID, in)
			msg := FieldMessage(err, tt.wantField)
			want := tt.wantText
			if strings.Contains(want, "%s") {
				want = strings.Replace(want, "%s", deref(in.IPSetID)+deref(in.RemoteGroupID), 1)
			}
			if ErrorCode(err) != CodeInvalid || !strings.Contains(msg, want) {
				t.Fatalf("err = %v; %s: %q, want %q", err, tt.wantField, msg, want)
			}
			if dump(t, f.db) != before {
				t.Fatal("refused rule wrote to the database")
			}
		})
	}
}

// TestSetAllKeepsRemoteRules: a client that does not know IP sets and
// group references (the SDK's set-all, Terraform's inline rules) neither
// erases nor changes such rules, whatever it sends back: they stay where
// they are, and the others fill the remaining positions. A client that
// speaks of them (the text form, an element with ip_set_id) changes them.
func TestSetAllKeepsRemoteRules(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24", "2001:db8::/48")
	g := f.stateless.ID
	a := mustCreateRule(t, f.db, f.org, "fr-par-1", g, RuleInput{IPRange: "10.0.0.1"})
	s := mustCreateRule(t, f.db, f.org, "fr-par-1", g, RuleInput{IPSetID: &set.ID, Action: Drop})
	b := mustCreateRule(t, f.db, f.org, "fr-par-1", g, RuleInput{IPRange: "10.0.0.2"})
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", g, RuleInput{RemoteGroupID: &f.stateful.ID})
	if s.Position != 2 || r.Position != 4 || s.IPRange.IsValid() {
		t.Fatalf("created %+v %+v", s, r)
	}
	check := func(label string, want ...string) {
		t.Helper()
		rules, err := f.db.Rules(ctx, f.org, "fr-par-1", g)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range rules {
			got = append(got, FormatRule(x))
			if x.Position != len(got) {
				t.Errorf("%s: positions %v", label, rules)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", label, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	setLine := "inbound drop TCP from set:" + set.ID
	groupLine := "inbound accept TCP from group:" + f.stateful.ID

	// What the SDK sends: the editable rules reordered, the others as it
	// was shown them (a placeholder range, editable false), one with its
	// ID but editable true, as a careless client may.
	shown := "255.255.255.255/32"
	_, err := f.db.SetRules(ctx, f.org, "fr-par-1", g, []RuleInput{
		{ID: b.ID, IPRange: "10.0.0.2"},
		{ID: s.ID, IPRange: shown, NotEditable: true},
		{ID: r.ID, IPRange: shown, Action: Drop},
		{ID: a.ID, IPRange: "10.0.0.1"},
		{IPRange: "10.0.0.3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	check("reordered by a client that does not know them",
		"inbound accept TCP from 10.0.0.2", setLine, "inbound accept TCP from 10.0.0.1", groupLine, "inbound accept TCP from 10.0.0.3")

	// Left out entirely, they stay, in order, at the end when the list is
	// shorter than their positions.
	if _, err := f.db.SetRules(ctx, f.org, "fr-par-1", g, []RuleInput{{IPRange: "10.0.0.9"}}); err != nil {
		t.Fatal(err)
	}
	check("left out", "inbound accept TCP from 10.0.0.9", setLine, groupLine)

	// An element that speaks of their kinds changes them: here the set
	// rule becomes a range rule.
	empty := ""
	if _, err := f.db.SetRules(ctx, f.org, "fr-par-1", g, []RuleInput{
		{IPRange: "10.0.0.9"}, {ID: s.ID, IPRange: "192.0.2.7", IPSetID: &empty, Action: Drop},
	}); err != nil {
		t.Fatal(err)
	}
	check("changed by a client that knows", "inbound accept TCP from 10.0.0.9", "inbound drop TCP from 192.0.2.7", groupLine)

	// The text form replaces every rule: what it leaves out is gone.
	if _, err := f.db.SetRulesText(ctx, f.org, "fr-par-1", g, setLine+"\n"); err != nil {
		t.Fatal(err)
	}
	check("text form", setLine)
}

// TestPatchRemoteSide: a PATCH may switch a rule to a set or group; a
// range alone does not turn a set rule into a range rule (a client that
// does not know sets would widen it without meaning to).
func TestPatchRemoteSide(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24")
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{IPRange: "10.0.0.0/8"})
	got, err := f.db.UpdateRule(ctx, f.org, "fr-par-1", f.stateless.ID, r.ID, RulePatch{IPSetID: &set.ID})
	if err != nil || got.IPSetID != set.ID || got.IPRange.IsValid() {
		t.Fatalf("to a set: %+v, %v", got, err)
	}
	rng := "0.0.0.0/0"
	before := dump(t, f.db)
	_, err = f.db.UpdateRule(ctx, f.org, "fr-par-1", f.stateless.ID, r.ID, RulePatch{IPRange: &rng})
	if msg := FieldMessage(err, "ip_range"); !strings.Contains(msg, "one of ip_range, ip_set_id") {
		t.Fatalf("range on a set rule: %v", err)
	}
	if dump(t, f.db) != before {
		t.Fatal("refused patch wrote")
	}
	got, err = f.db.UpdateRule(ctx, f.org, "fr-par-1", f.stateless.ID, r.ID, RulePatch{RemoteGroupID: &f.stateful.ID})
	if err != nil || got.RemoteGroupID != f.stateful.ID || got.IPSetID != "" {
		t.Fatalf("to a group: %+v, %v", got, err)
	}
	empty := ""
	got, err = f.db.UpdateRule(ctx, f.org, "fr-par-1", f.stateless.ID, r.ID, RulePatch{IPRange: &rng, RemoteGroupID: &empty})
	if err != nil || got.Remote() || got.IPRange.String() != rng {
		t.Fatalf("back to a range: %+v, %v", got, err)
	}
}

// TestRemoteInUse: a set or group that rules of other groups name cannot
// be deleted (409 naming them); a group that only names itself can.
func TestRemoteInUse(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24")
	self := mustCreateGroup(t, f.db, f.org, "fr-par-1", GroupInput{Name: "cluster"})
	mustCreateRule(t, f.db, f.org, "fr-par-1", self.ID, RuleInput{RemoteGroupID: &self.ID})
	rule := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{IPSetID: &set.ID})
	mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{RemoteGroupID: &f.stateful.ID})

	got, err := f.db.IPSet(ctx, f.org, "fr-par-1", set.ID)
	if err != nil || len(got.UsedBy) != 1 || got.UsedBy[0].ID != f.stateless.ID {
		t.Fatalf("used by = %+v, %v", got.UsedBy, err)
	}
	before := dump(t, f.db)
	err = f.db.DeleteIPSet(ctx, f.org, "fr-par-1", set.ID)
	if ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "stateless ("+f.stateless.ID+")") {
		t.Fatalf("delete set in use: %v", err)
	}
	// The stateful group has servers; move them so that only the rule holds it.
	if _, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{SecurityGroupID: &f.def.ID}); err != nil {
		t.Fatal(err)
	}
	before = dump(t, f.db)
	_, err = f.db.DeleteGroup(ctx, f.org, "fr-par-1", f.stateful.ID)
	if ErrorCode(err) != CodeConflict || !strings.Contains(err.Error(), "stateless ("+f.stateless.ID+")") {
		t.Fatalf("delete group in use: %v", err)
	}
	if dump(t, f.db) != before {
		t.Fatal("refused deletion wrote")
	}
	if _, err := f.db.DeleteGroup(ctx, f.org, "fr-par-1", self.ID); err != nil {
		t.Fatalf("a group naming itself: %v", err)
	}
	if err := f.db.DeleteRule(ctx, f.org, "fr-par-1", f.stateless.ID, rule.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteIPSet(ctx, f.org, "fr-par-1", set.ID); err != nil {
		t.Fatalf("delete set no longer used: %v", err)
	}
}

// TestSnapshotRemotes: snapshots carry the entries of the sets and the
// members of the groups that rules name; a change to either moves the
// generation of the groups that name them (their state must show it until
// applied) and SnapshotSince reads again only what moved.
func TestSnapshotRemotes(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "2001:db8::/48", "192.0.2.0/24", "198.51.100.7")
	unused := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "unused", "203.0.113.0/24")
	web := mustCreateGroup(t, f.db, f.org, "fr-par-1", GroupInput{Name: "web"})
	mustCreateRule(t, f.db, f.org, "fr-par-1", web.ID, RuleInput{IPSetID: &set.ID})
	mustCreateRule(t, f.db, f.org, "fr-par-1", web.ID, RuleInput{RemoteGroupID: &f.stateful.ID})
	if _, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", f.instance.ID, ServerPatch{Addresses: &[]string{"2001:db8::5", "10.1.0.5"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSet := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8::/48")}
	if !slices.Equal(snap.IPSets[set.ID], wantSet) || len(snap.IPSets) != 1 || snap.IPSets[unused.ID] != nil {
		t.Fatalf("IPSets = %v", snap.IPSets)
	}
	wantMembers := []netip.Addr{netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("2001:db8::5")}
	if !slices.Equal(snap.Members[f.stateful.ID], wantMembers) {
		t.Fatalf("Members = %v", snap.Members)
	}
	webGen := func(s Snapshot) int64 {
		for _, g := range s.Groups {
			if g.ID == web.ID {
				return g.Generation
			}
		}
		t.Fatal("web is not in the snapshot")
		return 0
	}

	// Nothing moved: the same slices.
	same, err := f.db.SnapshotSince(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if &same.IPSets[set.ID][0] != &snap.IPSets[set.ID][0] || &same.Members[f.stateful.ID][0] != &snap.Members[f.stateful.ID][0] {
		t.Error("unchanged set or members read again")
	}

	// A new entry: the set read again, web's generation moved.
	if _, err := f.db.UpdateIPSet(ctx, f.org, "fr-par-1", set.ID, IPSetPatch{Add: []string{"203.0.113.9"}}); err != nil {
		t.Fatal(err)
	}
	next, err := f.db.SnapshotSince(ctx, same)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.IPSets[set.ID]) != 4 || webGen(next) <= webGen(same) {
		t.Fatalf("after adding an entry: %v, generation %d -> %d", next.IPSets[set.ID], webGen(same), webGen(next))
	}
	// The name alone: nothing to enforce, web stays.
	name := "office v4"
	if _, err := f.db.UpdateIPSet(ctx, f.org, "fr-par-1", set.ID, IPSetPatch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	renamed, err := f.db.SnapshotSince(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if webGen(renamed) != webGen(next) {
		t.Error("renaming a set moved the generation of the groups using it")
	}

	// A server joins the referenced group: members change, web moves.
	joined := mustCreateServer(t, f.db, f.org, "fr-par-1", ServerInput{Name: "vm2", Interface: "vnet7", SecurityGroupID: f.stateful.ID, Addresses: []string{"10.1.0.6"}})
	after, err := f.db.SnapshotSince(ctx, renamed)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Members[f.stateful.ID]) != 3 || webGen(after) <= webGen(renamed) {
		t.Fatalf("after a server joined: %v", after.Members[f.stateful.ID])
	}
	full, err := f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(full.Members[f.stateful.ID], after.Members[f.stateful.ID]) || !slices.Equal(full.IPSets[set.ID], after.IPSets[set.ID]) {
		t.Error("SnapshotSince differs from Snapshot")
	}

	// Only the host's groups' sets go to a host, but a referenced group's
	// members on every host.
	if _, err := f.db.UpdateServer(ctx, f.org, "fr-par-1", joined.ID, ServerPatch{SecurityGroupID: &web.ID}); err != nil {
		t.Fatal(err)
	}
	full, err = f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host := ""
	for _, s := range full.Servers {
		if s.ID == joined.ID {
			host = s.HostID
		}
	}
	fh := full.ForHost(host)
	if len(fh.IPSets) != 1 || len(fh.Members[f.stateful.ID]) != 2 {
		t.Errorf("ForHost: sets %v members %v", fh.IPSets, fh.Members)
	}
}

// TestUnreadableSetFailsClosed: a set whose stored entries do not parse is
// absent from the snapshot and its groups are marked, once, in Snapshot and
// SnapshotSince alike; the mark goes when the set is readable again.
func TestUnreadableSetFailsClosed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24")
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{IPSetID: &set.ID, Action: Drop})
	first, err := f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.exec(ctx, `UPDATE ip_sets SET entries = '192.0.2.0/33', generation = generation + 1 WHERE id = ?`, set.ID); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // twice: the mark must not repeat
		snap, err := f.db.SnapshotSince(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.IPSets[set.ID]; ok {
			t.Fatal("an unreadable set is in the snapshot")
		}
		marks := snap.Unreadable[f.stateless.ID]
		if len(marks) != 1 || !strings.Contains(marks[0], "rule "+r.ID+": IP set "+set.ID) {
			t.Fatalf("marks = %q", marks)
		}
		first = snap
	}
	if _, err := f.db.UpdateIPSet(ctx, f.org, "fr-par-1", set.ID, IPSetPatch{Entries: &[]string{"192.0.2.0/24"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := f.db.SnapshotSince(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Unreadable[f.stateless.ID]) != 0 || len(snap.IPSets[set.ID]) != 1 {
		t.Fatalf("after repair: marks %q, set %v", snap.Unreadable[f.stateless.ID], snap.IPSets[set.ID])
	}
}

// TestRemoteRulesTextAndRevert: the text form carries set:ID and group:ID
// and reads back to the same rules; a revert to a version whose set is
// gone is refused by today's rules.
func TestRemoteRulesTextAndRevert(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	set := mustCreateIPSet(t, f.db, f.org, "fr-par-1", "office", "192.0.2.0/24")
	g := f.stateless.ID
	text := "inbound accept TCP port 22 from set:" + set.ID + " # admins\n" +
		"outbound drop UDP to group:" + f.stateful.ID + " from 10.0.0.1\n"
	if _, err := f.db.SetRulesText(ctx, f.org, "fr-par-1", g, text); err != nil {
		t.Fatal(err)
	}
	rules, err := f.db.Rules(ctx, f.org, "fr-par-1", g)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatRules(rules); got != text {
		t.Fatalf("text = %q, want %q", got, text)
	}
	parsed, err := f.db.ParseRulesText(strings.ToUpper(text[:20]) + text[20:])
	if err != nil || parsed[0].IPSetID != set.ID || parsed[1].RemoteGroupID != f.stateful.ID {
		t.Fatalf("parsed %+v, %v", parsed, err)
	}
	if _, err := f.db.ParseRulesText("inbound accept TCP port 22\n"); FieldMessage(err, "line 1") == "" {
		t.Fatalf("a line without its remote side: %v", err)
	}
	versions, _, err := f.db.Versions(ctx, f.org, "fr-par-1", g, Page{})
	if err != nil {
		t.Fatal(err)
	}
	withSet := versions[0].Version
	if _, err := f.db.SetRulesText(ctx, f.org, "fr-par-1", g, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteIPSet(ctx, f.org, "fr-par-1", set.ID); err != nil {
		t.Fatal(err)
	}
	before := dump(t, f.db)
	_, _, err = f.db.RevertGroup(ctx, f.org, "fr-par-1", g, withSet)
	if FieldMessage(err, "ip_set_id") == "" && !strings.Contains(err.Error(), "no IP set") {
		t.Fatalf("revert to a version naming a deleted set: %v", err)
	}
	if dump(t, f.db) != before {
		t.Fatal("refused revert wrote")
	}
}
