package store

import (
	"fmt"
	"slices"
	"strings"
)

// VersionDiff is what changed from one version of a group to another.
type VersionDiff struct {
	From, To int
	Settings []SettingChange
	Added    []Rule       // rules of To that From does not have
	Removed  []Rule       // rules of From that To does not have
	Changed  []RuleChange // rules of both whose fields differ
	// Moved are rules of both that changed places among the rules they
	// both hold: a rule inserted above others moves none of them.
	Moved  []RuleMove
	Joined []ServerRef // servers of To that From does not hold
	Left   []ServerRef
	// Lines compares the rules' text forms (FormatRules) line by line.
	Lines []DiffLine
}

// Empty reports whether the two versions hold the same settings, rules
// and servers.
func (d VersionDiff) Empty() bool {
	return len(d.Settings)+len(d.Added)+len(d.Removed)+len(d.Changed)+len(d.Moved)+len(d.Joined)+len(d.Left) == 0
}

// SettingChange is one setting that differs, by its store name.
type SettingChange struct {
	Field         string // name, description, tags, stateful, inbound_default_policy, outbound_default_policy, smtp_enabled, organization_default, log_default_drops
	Before, After any    // string, bool or []string
}

// RuleChange is a rule whose fields differ, with their names.
type RuleChange struct {
	Before, After Rule
	Fields        []string // direction, action, protocol, ip_range, dest_ip_range, dest_port_from, dest_port_to, description, log
}

// RuleMove is a rule that changed places.
type RuleMove struct {
	Rule     Rule // as in To
	From, To int  // positions
}

// DiffLine is a line of a line-by-line comparison: Op is ' ' (in both),
// '-' (only before) or '+' (only after).
type DiffLine struct {
	Op   byte
	Text string
}

// DiffVersions compares version a with version b.
func DiffVersions(a, b GroupVersion) VersionDiff {
	d := VersionDiff{From: a.Version, To: b.Version}
	d.Settings = diffSettings(a.Settings, b.Settings)
	d.Added, d.Removed, d.Changed, d.Moved = diffRules(a.Rules, b.Rules)
	d.Joined, d.Left = diffServers(a.Servers, b.Servers)
	d.Lines = DiffLines(ruleLines(a.Rules), ruleLines(b.Rules))
	return d
}

func diffSettings(a, b GroupSettings) []SettingChange {
	var out []SettingChange
	add := func(field string, before, after any, same bool) {
		if !same {
			out = append(out, SettingChange{Field: field, Before: before, After: after})
		}
	}
	add("name", a.Name, b.Name, a.Name == b.Name)
	add("description", a.Description, b.Description, a.Description == b.Description)
	add("tags", a.Tags, b.Tags, slices.Equal(a.Tags, b.Tags))
	add("stateful", a.Stateful, b.Stateful, a.Stateful == b.Stateful)
	add("inbound_default_policy", string(a.InboundDefaultPolicy), string(b.InboundDefaultPolicy), a.InboundDefaultPolicy == b.InboundDefaultPolicy)
	add("outbound_default_policy", string(a.OutboundDefaultPolicy), string(b.OutboundDefaultPolicy), a.OutboundDefaultPolicy == b.OutboundDefaultPolicy)
	add("smtp_enabled", a.SMTPEnabled, b.SMTPEnabled, a.SMTPEnabled == b.SMTPEnabled)
	add("organization_default", a.OrganizationDefault, b.OrganizationDefault, a.OrganizationDefault == b.OrganizationDefault)
	add("log_default_drops", a.LogDefaultDrops, b.LogDefaultDrops, a.LogDefaultDrops == b.LogDefaultDrops)
	return out
}

// ruleFields names the fields of r and s that differ, position aside.
func ruleFields(r, s Rule) []string {
	var f []string
	if r.Direction != s.Direction {
		f = append(f, "direction")
	}
	if r.Action != s.Action {
		f = append(f, "action")
	}
	if r.Protocol != s.Protocol {
		f = append(f, "protocol")
	}
	if r.IPRange != s.IPRange {
		f = append(f, "ip_range")
	}
	if r.DestIPRange != s.DestIPRange {
		f = append(f, "dest_ip_range")
	}
	if r.DestPortFrom != s.DestPortFrom {
		f = append(f, "dest_port_from")
	}
	if r.DestPortTo != s.DestPortTo {
		f = append(f, "dest_port_to")
	}
	if r.Description != s.Description {
		f = append(f, "description")
	}
	if r.Log != s.Log {
		f = append(f, "log")
	}
	return f
}

func diffRules(a, b []Rule) (added, removed []Rule, changed []RuleChange, moved []RuleMove) {
	inA := make(map[string]Rule, len(a))
	for _, r := range a {
		inA[r.ID] = r
	}
	inB := make(map[string]bool, len(b))
	for _, r := range b {
		inB[r.ID] = true
	}
	var commonA, commonB []string
	for _, r := range a {
		if !inB[r.ID] {
			removed = append(removed, r)
		} else {
			commonA = append(commonA, r.ID)
		}
	}
	for _, r := range b {
		old, ok := inA[r.ID]
		if !ok {
			added = append(added, r)
			continue
		}
		commonB = append(commonB, r.ID)
		if f := ruleFields(old, r); len(f) > 0 {
			changed = append(changed, RuleChange{Before: old, After: r, Fields: f})
		}
	}
	// The rules outside a longest common order are the ones that moved.
	stay := map[string]bool{}
	for _, l := range DiffLines(commonA, commonB) {
		if l.Op == ' ' {
			stay[l.Text] = true
		}
	}
	for _, r := range b {
		if old, ok := inA[r.ID]; ok && !stay[r.ID] {
			moved = append(moved, RuleMove{Rule: r, From: old.Position, To: r.Position})
		}
	}
	return added, removed, changed, moved
}

func diffServers(a, b []ServerRef) (joined, left []ServerRef) {
	in := func(list []ServerRef, id string) bool {
		return slices.ContainsFunc(list, func(s ServerRef) bool { return s.ID == id })
	}
	for _, s := range b {
		if !in(a, s.ID) {
			joined = append(joined, s)
		}
	}
	for _, s := range a {
		if !in(b, s.ID) {
			left = append(left, s)
		}
	}
	return joined, left
}

func ruleLines(rules []Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = FormatRule(r)
	}
	return out
}

// DiffLines compares two lists of lines through a longest common
// subsequence: the lines of both in order, with those only in a marked
// '-' and those only in b marked '+' (removals first at each place).
// Rule lists are at most a few hundred lines, so the quadratic table is
// small.
func DiffLines(a, b []string) []DiffLine {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []DiffLine
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, DiffLine{' ', a[i]})
			i, j = i+1, j+1
		case j == m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, DiffLine{'-', a[i]})
			i++
		default:
			out = append(out, DiffLine{'+', b[j]})
			j++
		}
	}
	return out
}

// settingLabels name the settings as the console and summaries do.
var settingLabels = map[string]string{
	"name": "name", "description": "description", "tags": "tags", "stateful": "stateful",
	"inbound_default_policy": "inbound policy", "outbound_default_policy": "outbound policy",
	"smtp_enabled": "SMTP", "organization_default": "organization default",
	"log_default_drops": "logging of default drops",
}

// SettingLabel is how a person reads a setting's name.
func SettingLabel(field string) string {
	if l, ok := settingLabels[field]; ok {
		return l
	}
	return field
}

// summarize says in a line what a version changed: note (what the change
// says of itself), then the differences from the previous version; for a
// change that moved nothing a version shows (a server renamed, say), what
// its audit entries were about.
func summarize(note string, prev *GroupVersion, v GroupVersion, actions, servers []string) string {
	var parts []string
	if note != "" {
		parts = append(parts, note)
	}
	if prev == nil {
		if note == "" {
			parts = append(parts, "created")
		}
		prev = &GroupVersion{Settings: GroupSettings{Name: v.Settings.Name, Tags: v.Settings.Tags,
			InboundDefaultPolicy: v.Settings.InboundDefaultPolicy, OutboundDefaultPolicy: v.Settings.OutboundDefaultPolicy,
			Stateful: v.Settings.Stateful, SMTPEnabled: v.Settings.SMTPEnabled, Description: v.Settings.Description,
			OrganizationDefault: v.Settings.OrganizationDefault, LogDefaultDrops: v.Settings.LogDefaultDrops}}
	}
	d := DiffVersions(*prev, v)
	if len(d.Settings) > 0 {
		names := make([]string, len(d.Settings))
		for i, s := range d.Settings {
			names[i] = SettingLabel(s.Field)
		}
		parts = append(parts, "settings: "+strings.Join(names, ", "))
	}
	var rules []string
	for _, c := range []struct {
		n    int
		what string
	}{{len(d.Added), "added"}, {len(d.Removed), "removed"}, {len(d.Changed), "changed"}, {len(d.Moved), "moved"}} {
		if c.n > 0 {
			rules = append(rules, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(rules) > 0 {
		parts = append(parts, "rules: "+strings.Join(rules, ", "))
	}
	for _, s := range d.Joined {
		parts = append(parts, fmt.Sprintf("server %q joined", s.Name))
	}
	for _, s := range d.Left {
		parts = append(parts, fmt.Sprintf("server %q left", s.Name))
	}
	if len(parts) == 0 {
		var seen []string
		for _, s := range servers {
			if s != "" && !slices.Contains(seen, s) {
				seen = append(seen, s)
				parts = append(parts, fmt.Sprintf("server %q changed", s))
			}
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no visible change ("+strings.Join(slices.Compact(slices.Sorted(slices.Values(actions))), ", ")+")")
	}
	s := strings.Join(parts, "; ")
	if len([]rune(s)) > 500 {
		s = string([]rune(s)[:499]) + "…"
	}
	return s
}
