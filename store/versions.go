package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Versions of a group. Every committed change that concerns a group (its
// settings, its rules, the servers it holds) is a version of it, numbered
// 1, 2, 3… per group without gaps, holding the group's full settings,
// rules and servers after the change: enough to show it, compare it and
// restore it. They are written by the change itself (recordVersions, at
// the end of every db.change), so that no kind of change, now or later,
// can forget to make one.

// GroupSettings are what a version keeps of a group besides its rules and
// servers.
type GroupSettings struct {
	Name                  string   `json:"name"`
	Description           string   `json:"description"`
	Tags                  []string `json:"tags"`
	Stateful              bool     `json:"stateful"`
	InboundDefaultPolicy  Policy   `json:"inbound_default_policy"`
	OutboundDefaultPolicy Policy   `json:"outbound_default_policy"`
	SMTPEnabled           bool     `json:"smtp_enabled"`
	// OrganizationDefault is kept to be shown; a revert does not restore
	// it: which group is a zone's default is a role given to a group
	// ("Set as default"), not part of what it enforces.
	OrganizationDefault bool `json:"organization_default"`
	// LogDefaultDrops is Rampart's: versions made before it existed do
	// not name it, and read as true, the value every group had then.
	LogDefaultDrops bool `json:"log_default_drops"`
}

// SettingsOf returns the settings of g.
func SettingsOf(g Group) GroupSettings {
	tags := slices.Clone(g.Tags)
	if tags == nil {
		tags = []string{}
	}
	return GroupSettings{Name: g.Name, Description: g.Description, Tags: tags, Stateful: g.Stateful,
		InboundDefaultPolicy: g.InboundDefaultPolicy, OutboundDefaultPolicy: g.OutboundDefaultPolicy,
		SMTPEnabled: g.SMTPEnabled, OrganizationDefault: g.OrganizationDefault, LogDefaultDrops: g.LogDefaultDrops}
}

// VersionInfo describes one version of a group.
type VersionInfo struct {
	GroupID    string
	Version    int
	Generation int64 // the store generation of the change
	CreatedAt  time.Time
	Actor      string
	Summary    string // what the change did, for a person
}

// GroupVersion is a group as it was after one change.
type GroupVersion struct {
	VersionInfo
	Settings GroupSettings
	Rules    []Rule // editable rules in position order
	Servers  []ServerRef
}

// ResourceVersion names a version in not-found errors.
const ResourceVersion = "instance_security_group_version"

// versionServer is how a version stores a server.
type versionServer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// actionConfirm is the audit action of a confirmation: it changes nothing
// of the group, so it makes no version.
const actionConfirm = "confirm"

// noteKey carries, per group, what a change says of itself in the summary
// of the version it makes ("reverted to version 3"). The change's
// function may write it, once it knows.
type noteKey struct{}

type versionNotes map[string]string

func withVersionNotes(ctx context.Context) (context.Context, versionNotes) {
	n := versionNotes{}
	return context.WithValue(ctx, noteKey{}, n), n
}

func versionNote(ctx context.Context, groupID string) string {
	notes, _ := ctx.Value(noteKey{}).(versionNotes)
	return notes[groupID]
}

// recordVersions makes a version of every group that the change at gen
// concerns (the groups its audit entries name), in the change's own
// transaction. A group with a change awaiting confirmation refuses any
// other change (the roll-back deletes its row before it gets here). A
// change carrying a confirmation (WithConfirmation) for one of its groups
// leaves that group pending.
func (db *DB) recordVersions(ctx context.Context, tx *txn, gen int64) error {
	type concerned struct {
		id      string
		actions []string
		servers []string // names of the servers the entries are about
	}
	var groups []*concerned
	byID := map[string]*concerned{}
	rows, err := tx.QueryContext(ctx, `SELECT group_id, resource, action, after, before FROM events
		WHERE generation = ? AND group_id <> '' ORDER BY id`, gen)
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	for rows.Next() {
		var gid, resource, action, after, before string
		if err := rows.Scan(&gid, &resource, &action, &after, &before); err != nil {
			rows.Close()
			return fmt.Errorf("versions: %w", err)
		}
		c := byID[gid]
		if c == nil {
			c = &concerned{id: gid}
			byID[gid] = c
			groups = append(groups, c)
		}
		c.actions = append(c.actions, action)
		if resource == ResourceServer {
			var s struct{ Name string }
			if json.Unmarshal([]byte(after), &s) != nil || s.Name == "" {
				_ = json.Unmarshal([]byte(before), &s)
			}
			c.servers = append(c.servers, s.Name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	req, _ := ctx.Value(confirmKey{}).(*confirmRequest)
	for _, c := range groups {
		if !slices.ContainsFunc(c.actions, func(a string) bool { return a != actionConfirm }) {
			continue
		}
		if p, ok, err := findPending(ctx, tx, c.id); err != nil {
			return err
		} else if ok {
			return pendingConflict(p)
		}
		var cur int
		var org, zone string
		err := tx.QueryRowContext(ctx, `SELECT version, organization_id, zone FROM security_groups WHERE id = ?`, c.id).
			Scan(&cur, &org, &zone)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted by this change
		}
		if err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		v, err := currentVersion(ctx, tx, org, zone, c.id)
		if err != nil {
			return err
		}
		v.Version, v.Generation, v.CreatedAt, v.Actor = cur+1, gen, db.Now().UTC(), actorOf(ctx)
		var prev *GroupVersion
		if cur > 0 {
			p, err := findVersion(ctx, tx, c.id, cur)
			if err != nil {
				return err
			}
			prev = &p
		}
		v.Summary = summarize(versionNote(ctx, c.id), prev, v, c.actions, c.servers)
		if err := insertVersion(ctx, tx, org, zone, v); err != nil {
			return err
		}
		if req != nil && req.groupID == c.id {
			if err := db.startPending(ctx, tx, req, v.Version, cur); err != nil {
				return err
			}
		}
	}
	return nil
}

// currentVersion reads what a version of the group would hold now.
func currentVersion(ctx context.Context, tx *txn, org, zone, groupID string) (GroupVersion, error) {
	g, err := findGroup(ctx, tx, org, zone, groupID)
	if err != nil {
		return GroupVersion{}, err
	}
	rules, err := findRules(ctx, tx, groupID)
	if err != nil {
		return GroupVersion{}, err
	}
	return GroupVersion{VersionInfo: VersionInfo{GroupID: groupID}, Settings: SettingsOf(g), Rules: rules, Servers: g.Servers}, nil
}

// insertVersion writes v as the group's latest version.
func insertVersion(ctx context.Context, tx *txn, org, zone string, v GroupVersion) error {
	settings, err := json.Marshal(v.Settings)
	if err != nil {
		return err
	}
	rules := v.Rules
	if rules == nil {
		rules = []Rule{}
	}
	rulesJSON, err := json.Marshal(rules)
	if err != nil {
		return err
	}
	servers := make([]versionServer, len(v.Servers))
	for i, s := range v.Servers {
		servers[i] = versionServer(s)
	}
	serversJSON, err := json.Marshal(servers)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET version = ? WHERE id = ?`, v.Version, v.GroupID); err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO group_versions (group_id, version, organization_id, zone, generation, created_at,
		actor, summary, settings, rules, servers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.GroupID, v.Version, org, zone, v.Generation, formatTime(v.CreatedAt), v.Actor, v.Summary,
		string(settings), string(rulesJSON), string(serversJSON))
	if err != nil {
		return fmt.Errorf("versions: %w", err)
	}
	return nil
}

const versionColumns = `group_id, version, generation, created_at, actor, summary, settings, rules, servers`

func scanVersion(sc scanner) (GroupVersion, error) {
	var v GroupVersion
	var created, settings, rules, servers string
	if err := sc.Scan(&v.GroupID, &v.Version, &v.Generation, &created, &v.Actor, &v.Summary, &settings, &rules, &servers); err != nil {
		return GroupVersion{}, err
	}
	v.CreatedAt = parseTime(created)
	v.Settings.LogDefaultDrops = true // versions from before the field: see GroupSettings
	if err := json.Unmarshal([]byte(settings), &v.Settings); err != nil {
		return GroupVersion{}, fmt.Errorf("version %d of group %s: settings: %w", v.Version, v.GroupID, err)
	}
	if err := json.Unmarshal([]byte(rules), &v.Rules); err != nil {
		return GroupVersion{}, fmt.Errorf("version %d of group %s: rules: %w", v.Version, v.GroupID, err)
	}
	for i := range v.Rules {
		v.Rules[i].GroupID, v.Rules[i].Editable = v.GroupID, true
	}
	var refs []versionServer
	if err := json.Unmarshal([]byte(servers), &refs); err != nil {
		return GroupVersion{}, fmt.Errorf("version %d of group %s: servers: %w", v.Version, v.GroupID, err)
	}
	v.Servers = make([]ServerRef, len(refs))
	for i, s := range refs {
		v.Servers[i] = ServerRef(s)
	}
	if v.Settings.Tags == nil {
		v.Settings.Tags = []string{}
	}
	return v, nil
}

func findVersion(ctx context.Context, tx *txn, groupID string, n int) (GroupVersion, error) {
	v, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionColumns+` FROM group_versions
		WHERE group_id = ? AND version = ?`, groupID, n))
	if errors.Is(err, sql.ErrNoRows) {
		return GroupVersion{}, notFound(ResourceVersion, itoa(n))
	}
	return v, err
}

// backfillVersions gives every group that has no version yet (one created
// before versions were kept) its version 1: the group as it is. It runs
// when the store opens; the conditional update makes two processes opening
// one database at once write it once.
func (db *DB) backfillVersions(ctx context.Context) error {
	return db.write(ctx, func(tx *txn) error {
		return backfillVersions(ctx, tx, db.Now().UTC())
	})
}

func backfillVersions(ctx context.Context, tx *txn, now time.Time) error {
	type ref struct {
		id, org, zone string
		gen           int64
	}
	refs, err := queryAll(ctx, tx, func(sc scanner) (ref, error) {
		var r ref
		return r, sc.Scan(&r.id, &r.org, &r.zone, &r.gen)
	}, `SELECT id, organization_id, zone, generation FROM security_groups WHERE version = 0 ORDER BY id`)
	if err != nil || len(refs) == 0 {
		return err
	}
	for _, r := range refs {
		res, err := tx.ExecContext(ctx, `UPDATE security_groups SET version = 1 WHERE id = ? AND version = 0`, r.id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			continue
		}
		v, err := currentVersion(ctx, tx, r.org, r.zone, r.id)
		if err != nil {
			return err
		}
		v.Version, v.Generation, v.CreatedAt, v.Actor = 1, r.gen, now, "system"
		v.Summary = "as it was when Rampart began keeping versions"
		if err := insertVersion(ctx, tx, r.org, r.zone, v); err != nil {
			return err
		}
	}
	return nil
}

// Versions lists one page of a group's versions, newest first, and how
// many it has. Without a PerPage, pages hold 50.
func (db *DB) Versions(ctx context.Context, orgID, zone, groupID string, p Page) ([]VersionInfo, int, error) {
	limit, offset, err := p.bounds(50)
	if err != nil {
		return nil, 0, err
	}
	if err := db.checkZone(zone); err != nil {
		return nil, 0, err
	}
	var out []VersionInfo
	var total int
	err = db.read(ctx, func(tx *txn) error {
		g, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		total = g.Version
		out, err = findVersionInfos(ctx, tx, groupID, limit, offset)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("versions of group %s: %w", groupID, err)
	}
	return out, total, nil
}

func findVersionInfos(ctx context.Context, tx *txn, groupID string, limit, offset int) ([]VersionInfo, error) {
	out, err := queryAll(ctx, tx, func(sc scanner) (VersionInfo, error) {
		var v VersionInfo
		var created string
		err := sc.Scan(&v.GroupID, &v.Version, &v.Generation, &created, &v.Actor, &v.Summary)
		v.CreatedAt = parseTime(created)
		return v, err
	}, `SELECT group_id, version, generation, created_at, actor, summary FROM group_versions
		WHERE group_id = ? ORDER BY version DESC LIMIT ? OFFSET ?`, groupID, limit, offset)
	if out == nil {
		out = []VersionInfo{}
	}
	return out, err
}

// Version returns version n of a group.
func (db *DB) Version(ctx context.Context, orgID, zone, groupID string, n int) (GroupVersion, error) {
	if err := db.checkZone(zone); err != nil {
		return GroupVersion{}, err
	}
	var v GroupVersion
	err := db.read(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		var err error
		v, err = findVersion(ctx, tx, groupID, n)
		return err
	})
	if err != nil {
		return GroupVersion{}, fmt.Errorf("version %d of group %s: %w", n, groupID, err)
	}
	return v, nil
}

// VersionComparison is two versions of a group and what changed from the
// first to the second, read at one generation, with the group as it is.
type VersionComparison struct {
	Group    Group
	From, To GroupVersion
	Diff     VersionDiff
}

// CompareVersions compares version against with version n of a group
// (against 0: the version before n; for version 1, an empty group).
func (db *DB) CompareVersions(ctx context.Context, orgID, zone, groupID string, n, against int) (VersionComparison, error) {
	if err := db.checkZone(zone); err != nil {
		return VersionComparison{}, err
	}
	if against < 0 {
		return VersionComparison{}, invalid("against", "constraint", "a version is a number from 1")
	}
	var c VersionComparison
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if c.Group, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		if c.To, err = findVersion(ctx, tx, groupID, n); err != nil {
			return err
		}
		if against == 0 {
			against = n - 1
		}
		if against == 0 {
			c.From = GroupVersion{VersionInfo: VersionInfo{GroupID: groupID}, Settings: GroupSettings{Tags: []string{}}}
		} else if c.From, err = findVersion(ctx, tx, groupID, against); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return VersionComparison{}, fmt.Errorf("compare versions of group %s: %w", groupID, err)
	}
	c.Diff = DiffVersions(c.From, c.To)
	return c, nil
}

// RevertGroup restores the settings and rules of version n of a group
// (never its servers, nor whether it is the zone's default), through every
// rule of the domain as it stands now: a group that protects a BareMetal
// server cannot become stateful again, a group cannot hold more rules
// than the limit. The revert is a change, and so a new version. The
// answer is the group as restored and its rules as ListRules lists them.
func (db *DB) RevertGroup(ctx context.Context, orgID, zone, groupID string, n int) (Group, []Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, nil, err
	}
	ctx, notes := withVersionNotes(ctx)
	notes[groupID] = "reverted to version " + itoa(n)
	var g Group
	var rules []Rule
	err := db.change(ctx, func(tx *txn, gen int64) error {
		cur, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		v, err := findVersion(ctx, tx, groupID, n)
		if err != nil {
			return err
		}
		changed, err := db.restore(ctx, tx, gen, cur, v, "revert")
		if err != nil {
			return err
		}
		if !changed {
			return errNoChange
		}
		if g, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		rules, err = listedRules(ctx, tx, g)
		return err
	})
	if err != nil {
		return Group{}, nil, fmt.Errorf("revert group %s to version %d: %w", groupID, n, err)
	}
	if g.ID == "" { // nothing to change: the group is as version n
		return db.GroupRules(ctx, orgID, zone, groupID)
	}
	return g, rules, nil
}

// restoredState is what an audit entry of a restore holds before and
// after: the settings and rules.
type restoredState struct {
	Settings GroupSettings `json:"settings"`
	Rules    []Rule        `json:"rules"`
}

// restore makes group g hold the settings and rules of version v, checked
// by today's rules of the domain; it records the audit entry (action) and
// marks the group changed. It reports whether anything changed (nothing
// is written when nothing does).
func (db *DB) restore(ctx context.Context, tx *txn, gen int64, g Group, v GroupVersion, action string) (bool, error) {
	existing, err := findRules(ctx, tx, g.ID)
	if err != nil {
		return false, err
	}
	want := v.Settings
	var fe fieldErrors
	checkName(&fe, "name", want.Name)
	checkDescription(&fe, "description", want.Description)
	checkTags(&fe, "tags", want.Tags)
	checkPolicy(&fe, "inbound_default_policy", want.InboundDefaultPolicy)
	checkPolicy(&fe, "outbound_default_policy", want.OutboundDefaultPolicy)
	if want.Stateful && !g.Stateful {
		bare, err := bareMetalServers(ctx, tx, g.ID)
		if err != nil {
			return false, err
		}
		if len(bare) > 0 {
			fe.add("stateful", "constraint",
				"version %d is stateful, but this group now protects BareMetal server %s, which needs a stateless group: a stateful group cannot be attached to a BareMetal server",
				v.Version, strings.Join(bare, ", "))
		}
	}
	target := make([]Rule, len(v.Rules))
	for i, r := range v.Rules {
		in := ruleInputOf(r)
		b := buildRule(&fe, fmt.Sprintf("rules[%d].", i), in)
		b.ID, b.GroupID, b.Position = r.ID, g.ID, i+1
		target[i] = b
	}
	if len(target) > db.MaxRules {
		fe.add("rules", "constraint", "version %d holds %d rules; a group holds at most %d", v.Version, len(target), db.MaxRules)
	}
	if err := fe.err(); err != nil {
		return false, err
	}
	before := SettingsOf(g)
	after := before
	after.Name, after.Description, after.Tags = strings.TrimSpace(want.Name), want.Description, slices.Clone(want.Tags)
	after.Stateful, after.SMTPEnabled = want.Stateful, want.SMTPEnabled
	after.InboundDefaultPolicy, after.OutboundDefaultPolicy = want.InboundDefaultPolicy, want.OutboundDefaultPolicy
	after.LogDefaultDrops = want.LogDefaultDrops
	settingsChanged := !sameSettings(before, after)
	rulesChanged := !slices.Equal(existing, target)
	if !settingsChanged && !rulesChanged {
		return false, nil
	}
	if settingsChanged {
		_, err := tx.ExecContext(ctx, `UPDATE security_groups SET name = ?, description = ?, tags = ?, stateful = ?,
			inbound_default_policy = ?, outbound_default_policy = ?, smtp_enabled = ?, log_default_drops = ? WHERE id = ?`,
			after.Name, after.Description, encodeList(after.Tags), boolInt(after.Stateful), after.InboundDefaultPolicy,
			after.OutboundDefaultPolicy, boolInt(after.SMTPEnabled), boolInt(after.LogDefaultDrops), g.ID)
		if err != nil {
			return false, err
		}
	}
	if rulesChanged {
		if err := restoreRules(ctx, tx, g.ID, existing, target); err != nil {
			return false, err
		}
	}
	err = db.record(ctx, tx, gen, change{org: g.OrganizationID, zone: g.Zone, group: g.ID, resource: ResourceGroup, id: g.ID,
		action: action, before: restoredState{before, existing}, after: restoredState{after, target}})
	if err != nil {
		return false, err
	}
	return true, db.touchGroup(ctx, tx, gen, g.ID)
}

func sameSettings(a, b GroupSettings) bool {
	return a.Name == b.Name && a.Description == b.Description && slices.Equal(a.Tags, b.Tags) && a.Stateful == b.Stateful &&
		a.InboundDefaultPolicy == b.InboundDefaultPolicy && a.OutboundDefaultPolicy == b.OutboundDefaultPolicy &&
		a.SMTPEnabled == b.SMTPEnabled && a.OrganizationDefault == b.OrganizationDefault && a.LogDefaultDrops == b.LogDefaultDrops
}

// ruleInputOf is the input that describes r, for checking it again.
func ruleInputOf(r Rule) RuleInput {
	from, to := int(r.DestPortFrom), int(r.DestPortTo)
	dest, desc, set, group, logged := prefixText(r.DestIPRange), r.Description, r.IPSetID, r.RemoteGroupID, r.Log
	return RuleInput{ID: r.ID, Direction: r.Direction, Protocol: r.Protocol, Action: r.Action, IPRange: prefixText(r.IPRange),
		DestPortFrom: &from, DestPortTo: &to, DestIPRange: &dest, Description: &desc, IPSetID: &set, RemoteGroupID: &group, Log: &logged}
}

// restoreRules makes the group's rules be target exactly (IDs, positions
// and fields): the rules not in target deleted, those that differ
// updated, those missing inserted with their IDs.
func restoreRules(ctx context.Context, tx *txn, groupID string, existing, target []Rule) error {
	old := make(map[string]Rule, len(existing))
	for _, r := range existing {
		old[r.ID] = r
	}
	keep := make(map[string]bool, len(target))
	for _, r := range target {
		keep[r.ID] = true
	}
	var gone []any
	for _, r := range existing {
		if !keep[r.ID] {
			gone = append(gone, r.ID)
		}
	}
	if len(gone) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM rules WHERE id IN (`+placeholders(len(gone))+`)`, gone...); err != nil {
			return err
		}
	}
	var added []Rule
	for _, r := range target {
		r.GroupID = groupID
		prev, ok := old[r.ID]
		switch {
		case !ok:
			added = append(added, r)
		case prev != r:
			if err := updateRule(ctx, tx, r); err != nil {
				return err
			}
		}
	}
	return insertRules(ctx, tx, added)
}
