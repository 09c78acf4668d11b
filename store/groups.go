package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// DefaultGroupName names the group created when a zone first needs a default.
const DefaultGroupName = "Default security group"

// GroupInput describes a new group. Zero policies mean accept and false
// booleans mean false, as in Scaleway's API.
type GroupInput struct {
	Name                  string
	Description           string
	ProjectID             string // optional; the organization's project
	Tags                  []string
	Stateful              bool
	InboundDefaultPolicy  Policy
	OutboundDefaultPolicy Policy
	OrganizationDefault   bool
	SMTPEnabled           bool     // false: outbound SMTP is blocked
	ServerIDs             []string // servers to move into the new group
	// LogDefaultDrops is Rampart's: nil logs the packets the default
	// policies drop, as a new group does out of the box.
	LogDefaultDrops *bool
}

// GroupPatch changes the fields that are not nil.
type GroupPatch struct {
	Name                  *string
	Description           *string
	Tags                  *[]string
	Stateful              *bool
	InboundDefaultPolicy  *Policy
	OutboundDefaultPolicy *Policy
	OrganizationDefault   *bool
	SMTPEnabled           *bool
	LogDefaultDrops       *bool
	// ProjectID, when set, must be the organization's project: a group
	// cannot move to another.
	ProjectID *string
}

// GroupFilter selects groups of one organization and zone.
type GroupFilter struct {
	Name           string // substring, case-insensitive
	ProjectID      string
	ProjectDefault *bool
	Tags           []string // every tag must be present
	Page
	All bool // every match, ignoring Page
}

const groupColumns = `id, organization_id, project_id, zone, name, description, tags, stateful,
	inbound_default_policy, outbound_default_policy, organization_default, smtp_enabled,
	created_at, modified_at, generation, log_default_drops`

// groupReadColumns are what scanGroup reads: the written columns, and the
// version that changes number (see recordVersions).
const groupReadColumns = groupColumns + `, version`

// groupSnapshotColumns are scanGroup's columns in a snapshot, which holds
// what is enforced: versions are the console's (an agent's view has none).
const groupSnapshotColumns = groupColumns + `, 0`

func scanGroup(sc scanner) (Group, error) {
	var g Group
	var tags, created, modified string
	var stateful, def, smtp, logDrops int
	err := sc.Scan(&g.ID, &g.OrganizationID, &g.ProjectID, &g.Zone, &g.Name, &g.Description, &tags, &stateful,
		&g.InboundDefaultPolicy, &g.OutboundDefaultPolicy, &def, &smtp, &created, &modified, &g.Generation, &logDrops, &g.Version)
	if err != nil {
		return Group{}, err
	}
	g.Tags = decodeTags(tags)
	g.Stateful, g.OrganizationDefault, g.SMTPEnabled = stateful == 1, def == 1, smtp == 1
	// Anything but 0 logs: of the two ways to be wrong about a damaged
	// row, logging too much is the one that hides nothing.
	g.LogDefaultDrops = logDrops != 0
	g.CreatedAt, g.ModifiedAt = parseTime(created), parseTime(modified)
	g.Servers = []ServerRef{}
	// What the enforcer relies on is checked on the way out too.
	var fe fieldErrors
	checkPolicy(&fe, "inbound_default_policy", g.InboundDefaultPolicy)
	checkPolicy(&fe, "outbound_default_policy", g.OutboundDefaultPolicy)
	for _, b := range []struct {
		field string
		v     int
	}{{"stateful", stateful}, {"smtp_enabled", smtp}, {"log_default_drops", logDrops}} {
		if b.v != 0 && b.v != 1 {
			fe.add(b.field, "format", "stored value %d is not a boolean", b.v)
		}
	}
	g.Unreadable = fe.text()
	return g, nil
}

// findGroup returns a group of the organization in the zone, or a not-found
// error: another organization's group is invisible.
func findGroup(ctx context.Context, tx *txn, orgID, zone, id string) (Group, error) {
	g, err := scanGroup(tx.QueryRowContext(ctx, `SELECT `+groupReadColumns+` FROM security_groups
		WHERE id = ? AND organization_id = ? AND zone = ?`, id, orgID, zone))
	if errors.Is(err, sql.ErrNoRows) {
		return Group{}, notFound(ResourceGroup, id)
	}
	if err != nil {
		return Group{}, err
	}
	if err := loadGroupServers(ctx, tx, []*Group{&g}); err != nil {
		return Group{}, err
	}
	if err := loadPending(ctx, tx, []*Group{&g}); err != nil {
		return Group{}, err
	}
	return g, nil
}

func loadGroupServers(ctx context.Context, tx *txn, groups []*Group) error {
	if len(groups) == 0 {
		return nil
	}
	byID := make(map[string]*Group, len(groups))
	args := make([]any, len(groups))
	for i, g := range groups {
		byID[g.ID] = g
		args[i] = g.ID
	}
	rows, err := tx.QueryContext(ctx, `SELECT security_group_id, id, name FROM servers
		WHERE security_group_id IN (`+placeholders(len(args))+`) ORDER BY created_at, id`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var gid string
		var ref ServerRef
		if err := rows.Scan(&gid, &ref.ID, &ref.Name); err != nil {
			return err
		}
		g := byID[gid]
		g.Servers = append(g.Servers, ref)
	}
	return rows.Err()
}

// Group returns one group of the organization in the zone.
func (db *DB) Group(ctx context.Context, orgID, zone, id string) (Group, error) {
	var g Group
	err := db.read(ctx, func(tx *txn) error {
		if err := db.checkZone(zone); err != nil {
			return err
		}
		var err error
		g, err = findGroup(ctx, tx, orgID, zone, id)
		return err
	})
	if err != nil {
		return Group{}, fmt.Errorf("get group %s: %w", id, err)
	}
	return g, nil
}

// GroupRules returns a group and its rules as ListRules lists them (the
// SMTP rules first while SMTP is blocked), read at one generation.
func (db *DB) GroupRules(ctx context.Context, orgID, zone, id string) (Group, []Rule, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, nil, err
	}
	var g Group
	var rules []Rule
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, id); err != nil {
			return err
		}
		rules, err = listedRules(ctx, tx, g)
		return err
	})
	if err != nil {
		return Group{}, nil, fmt.Errorf("get group %s: %w", id, err)
	}
	return g, rules, nil
}

// GroupDetail is everything a group's page shows, read at one generation.
type GroupDetail struct {
	Group   Group
	Rules   []Rule   // as ListRules lists them
	Servers []Server // every server of the zone, the group's and the others, newest first
	Events  []Event  // the group's audit log, newest first
	// Versions are the group's latest versions (at most 10), newest first.
	Versions []VersionInfo
	// Counters are the group's counts by tag (see GroupCounters).
	Counters map[string]RuleCounter
	// Choices are the IP sets and groups its rules may name.
	Choices RemoteChoices
}

// GroupDetail reads a group, its rules, the servers of its zone and its
// last events (at most events) in one transaction.
func (db *DB) GroupDetail(ctx context.Context, orgID, zone, id string, events int) (GroupDetail, error) {
	if err := db.checkZone(zone); err != nil {
		return GroupDetail{}, err
	}
	var d GroupDetail
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if d.Group, err = findGroup(ctx, tx, orgID, zone, id); err != nil {
			return err
		}
		if d.Rules, err = listedRules(ctx, tx, d.Group); err != nil {
			return err
		}
		if d.Servers, err = queryAll(ctx, tx, scanServer, `SELECT `+serverColumns+serverFrom+`
			WHERE s.organization_id = ? AND s.zone = ? ORDER BY s.created_at DESC, s.id`, orgID, zone); err != nil {
			return err
		}
		if d.Events, err = findEvents(ctx, tx, orgID, id, events); err != nil {
			return err
		}
		if d.Versions, err = findVersionInfos(ctx, tx, id, 10, 0); err != nil {
			return err
		}
		if d.Choices, err = findRemoteChoices(ctx, tx, orgID, zone); err != nil {
			return err
		}
		d.Counters, err = findCounters(ctx, tx, id)
		return err
	})
	if err != nil {
		return GroupDetail{}, fmt.Errorf("get group %s: %w", id, err)
	}
	return d, nil
}

// Groups lists the organization's groups in a zone, oldest first, and the
// number matching the filter across all pages.
func (db *DB) Groups(ctx context.Context, orgID, zone string, f GroupFilter) ([]Group, int, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, 0, err
	}
	q := filter{e: db.e}
	q.and("organization_id = ? AND zone = ?", orgID, zone)
	q.nameContains("name", f.Name)
	if f.ProjectID != "" {
		q.and("project_id = ?", f.ProjectID)
	}
	if f.ProjectDefault != nil {
		q.and("organization_default = ?", boolInt(*f.ProjectDefault))
	}
	q.hasTags("tags", f.Tags)
	groups, total, err := listPage(ctx, db, q, f.Page, f.All, groupReadColumns, "FROM security_groups", "created_at, id",
		scanGroup, func(ctx context.Context, tx *txn, groups []Group) error {
			ptrs := make([]*Group, len(groups))
			for i := range groups {
				ptrs[i] = &groups[i]
			}
			if err := loadGroupServers(ctx, tx, ptrs); err != nil {
				return err
			}
			return loadPending(ctx, tx, ptrs)
		})
	if err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", err)
	}
	return groups, total, nil
}

// Page selects one page of a list: Page from 1, PerPage from 1 to
// MaxPerPage; zero values take the first page and the list's default size.
type Page struct {
	Page    int
	PerPage int
}

// Paging limits. Beyond MaxOffset items a list is not paged through but
// filtered: the offset would make the database walk that many rows.
const (
	MaxPerPage = 100
	MaxOffset  = 10_000_000
)

// bounds checks p and returns the LIMIT and OFFSET it selects, naming the
// query parameter at fault.
func (p Page) bounds(defaultPerPage int) (limit, offset int, err error) {
	page, perPage := p.Page, p.PerPage
	if page == 0 {
		page = 1
	}
	if perPage == 0 {
		perPage = defaultPerPage
	}
	var fe fieldErrors
	if page < 1 {
		fe.add("page", "constraint", "must be a whole number from 1")
	}
	if perPage < 1 || perPage > MaxPerPage {
		fe.add("per_page", "constraint", "must be a whole number from 1 to %d", MaxPerPage)
	}
	if err := fe.err(); err != nil {
		return 0, 0, err
	}
	if page-1 >= MaxOffset/perPage {
		return 0, 0, invalid("page", "constraint", "a list is paged through its first %d items; filter it to see further", MaxOffset)
	}
	return perPage, (page - 1) * perPage, nil
}

func (db *DB) checkProject(orgID, projectID string) error {
	if projectID != "" && projectID != orgID {
		return &Error{Code: CodeForbidden, Message: "the project does not belong to your organization", Resource: "project", ResourceID: projectID}
	}
	return nil
}

// CreateGroup creates a group in the zone and moves the given servers into it.
func (db *DB) CreateGroup(ctx context.Context, orgID, zone string, in GroupInput) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	if err := db.checkProject(orgID, in.ProjectID); err != nil {
		return Group{}, err
	}
	if in.InboundDefaultPolicy == "" {
		in.InboundDefaultPolicy = Accept
	}
	if in.OutboundDefaultPolicy == "" {
		in.OutboundDefaultPolicy = Accept
	}
	var fe fieldErrors
	checkName(&fe, "name", in.Name)
	checkDescription(&fe, "description", in.Description)
	checkTags(&fe, "tags", in.Tags)
	checkPolicy(&fe, "inbound_default_policy", in.InboundDefaultPolicy)
	checkPolicy(&fe, "outbound_default_policy", in.OutboundDefaultPolicy)
	if err := fe.err(); err != nil {
		return Group{}, err
	}
	now := db.Now().UTC()
	g := Group{
		ID: uuid.NewString(), OrganizationID: orgID, ProjectID: orgID, Zone: zone,
		Name: strings.TrimSpace(in.Name), Description: in.Description, Tags: in.Tags,
		Stateful: in.Stateful, InboundDefaultPolicy: in.InboundDefaultPolicy, OutboundDefaultPolicy: in.OutboundDefaultPolicy,
		OrganizationDefault: in.OrganizationDefault, SMTPEnabled: in.SMTPEnabled,
		CreatedAt: now, ModifiedAt: now, LogDefaultDrops: in.LogDefaultDrops == nil || *in.LogDefaultDrops,
	}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if err := insertGroup(ctx, tx, &g, gen); err != nil {
			return err
		}
		for i, sid := range in.ServerIDs {
			if err := db.moveServer(ctx, tx, gen, orgID, zone, sid, g.ID, fmt.Sprintf("servers[%d]", i)); err != nil {
				return err
			}
		}
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, g.ID); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceGroup, id: g.ID, action: "create", after: g})
	})
	if err != nil {
		return Group{}, fmt.Errorf("create group: %w", err)
	}
	return g, nil
}

func insertGroup(ctx context.Context, tx *txn, g *Group, gen int64) error {
	if g.OrganizationDefault {
		if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET organization_default = 0, generation = ?
			WHERE organization_id = ? AND zone = ? AND organization_default = 1`, gen, g.OrganizationID, g.Zone); err != nil {
			return err
		}
	}
	g.Generation = gen
	_, err := tx.ExecContext(ctx, `INSERT INTO security_groups (`+groupColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.OrganizationID, g.ProjectID, g.Zone, g.Name, g.Description, encodeList(g.Tags), boolInt(g.Stateful),
		g.InboundDefaultPolicy, g.OutboundDefaultPolicy, boolInt(g.OrganizationDefault), boolInt(g.SMTPEnabled),
		formatTime(g.CreatedAt), formatTime(g.ModifiedAt), gen, boolInt(g.LogDefaultDrops))
	return err
}

// ensureDefaultGroup returns the organization's default group in the zone,
// creating the documented "Default security group" if there is none.
func (db *DB) ensureDefaultGroup(ctx context.Context, tx *txn, gen int64, orgID, zone string) (Group, error) {
	g, err := scanGroup(tx.QueryRowContext(ctx, `SELECT `+groupReadColumns+` FROM security_groups
		WHERE organization_id = ? AND zone = ? AND organization_default = 1`, orgID, zone))
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Group{}, err
	}
	now := db.Now().UTC()
	g = Group{
		ID: uuid.NewString(), OrganizationID: orgID, ProjectID: orgID, Zone: zone,
		Name: DefaultGroupName, Description: "Auto generated security group.", Tags: []string{},
		Stateful: true, InboundDefaultPolicy: Accept, OutboundDefaultPolicy: Accept,
		OrganizationDefault: true, SMTPEnabled: false, CreatedAt: now, ModifiedAt: now,
		Servers: []ServerRef{}, LogDefaultDrops: true,
	}
	if err := insertGroup(ctx, tx, &g, gen); err != nil {
		return Group{}, err
	}
	return g, db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceGroup, id: g.ID, action: "create", after: g})
}

// DefaultGroup returns the organization's default group in the zone,
// creating it on first need.
func (db *DB) DefaultGroup(ctx context.Context, orgID, zone string) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		d, err := db.ensureDefaultGroup(ctx, tx, gen, orgID, zone)
		if err != nil {
			return err
		}
		g, err = findGroup(ctx, tx, orgID, zone, d.ID)
		return err
	})
	if err != nil {
		return Group{}, fmt.Errorf("default group: %w", err)
	}
	return g, nil
}

// UpdateGroup changes the fields of patch that are set.
func (db *DB) UpdateGroup(ctx context.Context, orgID, zone, id string, p GroupPatch) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		g, err = findGroup(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		wasDefault := g.OrganizationDefault
		before := g
		var fe fieldErrors
		if p.Name != nil {
			checkName(&fe, "name", *p.Name)
			g.Name = strings.TrimSpace(*p.Name)
		}
		if p.Description != nil {
			checkDescription(&fe, "description", *p.Description)
			g.Description = *p.Description
		}
		if p.Tags != nil {
			checkTags(&fe, "tags", *p.Tags)
			g.Tags = *p.Tags
		}
		if p.InboundDefaultPolicy != nil {
			checkPolicy(&fe, "inbound_default_policy", *p.InboundDefaultPolicy)
			g.InboundDefaultPolicy = *p.InboundDefaultPolicy
		}
		if p.OutboundDefaultPolicy != nil {
			checkPolicy(&fe, "outbound_default_policy", *p.OutboundDefaultPolicy)
			g.OutboundDefaultPolicy = *p.OutboundDefaultPolicy
		}
		if p.SMTPEnabled != nil {
			g.SMTPEnabled = *p.SMTPEnabled
		}
		if p.LogDefaultDrops != nil {
			g.LogDefaultDrops = *p.LogDefaultDrops
		}
		if p.ProjectID != nil && *p.ProjectID != "" && *p.ProjectID != orgID {
			return &Error{Code: CodeForbidden, Message: "a group cannot move to another project", Resource: "project", ResourceID: *p.ProjectID}
		}
		if p.OrganizationDefault != nil {
			if wasDefault && !*p.OrganizationDefault {
				fe.add("organization_default", "constraint",
					"a zone always keeps one default group: set another group as default instead")
			}
			g.OrganizationDefault = *p.OrganizationDefault
		}
		if p.Stateful != nil && *p.Stateful && !g.Stateful {
			bare, err := bareMetalServers(ctx, tx, g.ID)
			if err != nil {
				return err
			}
			if len(bare) > 0 {
				fe.add("stateful", "constraint",
					"this group protects BareMetal server %s, which needs a stateless group: a stateful group cannot be attached to a BareMetal server",
					strings.Join(bare, ", "))
			}
		}
		if p.Stateful != nil {
			g.Stateful = *p.Stateful
		}
		if err := fe.err(); err != nil {
			return err
		}
		if g.OrganizationDefault && !wasDefault {
			if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET organization_default = 0, generation = ?
				WHERE organization_id = ? AND zone = ? AND organization_default = 1`, gen, orgID, zone); err != nil {
				return err
			}
		}
		g.ModifiedAt = db.Now().UTC()
		g.Generation = gen
		_, err = tx.ExecContext(ctx, `UPDATE security_groups SET name = ?, description = ?, tags = ?, stateful = ?,
			inbound_default_policy = ?, outbound_default_policy = ?, organization_default = ?,
			smtp_enabled = ?, log_default_drops = ?, modified_at = ?, generation = ? WHERE id = ?`,
			g.Name, g.Description, encodeList(g.Tags), boolInt(g.Stateful), g.InboundDefaultPolicy,
			g.OutboundDefaultPolicy, boolInt(g.OrganizationDefault), boolInt(g.SMTPEnabled), boolInt(g.LogDefaultDrops),
			formatTime(g.ModifiedAt), gen, g.ID)
		if err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceGroup, id: g.ID, action: "update", before: before, after: g})
	})
	if err != nil {
		return Group{}, fmt.Errorf("update group %s: %w", id, err)
	}
	return g, nil
}

func bareMetalServers(ctx context.Context, tx *txn, groupID string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name FROM servers WHERE security_group_id = ? AND type = ? ORDER BY name`,
		groupID, BareMetal)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, fmt.Sprintf("%q", n))
	}
	return names, rows.Err()
}

// DeleteGroup deletes a group that holds no server and is not the
// default, and returns it as it was.
func (db *DB) DeleteGroup(ctx context.Context, orgID, zone, id string) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		g, err = findGroup(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		if len(g.Servers) > 0 {
			return conflict("Group is in use. You cannot delete it.")
		}
		if g.OrganizationDefault {
			return conflict("This is the organization default group of zone %s. Set another group as default before deleting it.", zone)
		}
		refs, err := referrers(ctx, tx, colRemoteGroup, id, id)
		if err != nil {
			return err
		}
		if err := inUse("Security group "+g.Name, refs); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM security_groups WHERE id = ?`, id); err != nil {
			return err
		}
		// What was observed of the group goes with it.
		for _, table := range []string{"log_entries", "rule_counters"} {
			if _, err = tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE group_id = ?`, id); err != nil {
				return err
			}
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: id, resource: ResourceGroup, id: id, action: "delete", before: g})
	})
	if err != nil {
		return Group{}, fmt.Errorf("delete group %s: %w", id, err)
	}
	return g, nil
}

// touchGroup records that a group changed at generation gen.
//
// The groups whose rules match its servers' addresses move with it: its
// servers may have changed.
func (db *DB) touchGroup(ctx context.Context, tx *txn, gen int64, groupID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET generation = ?, modified_at = ? WHERE id = ?`,
		gen, formatTime(db.Now()), groupID); err != nil {
		return err
	}
	return touchReferrers(ctx, tx, gen, colRemoteGroup, groupID)
}
