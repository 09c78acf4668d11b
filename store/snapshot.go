package store

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/uuid"
)

// scanner is what the scan functions read from: *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryAll runs query and scans every row with scan.
func queryAll[T any](ctx context.Context, tx *txn, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// linkServers fills each group's Servers from the snapshot's servers, in
// server ID order.
func (snap *Snapshot) linkServers() {
	byID := make(map[string]*Group, len(snap.Groups))
	for i := range snap.Groups {
		snap.Groups[i].Servers = []ServerRef{}
		byID[snap.Groups[i].ID] = &snap.Groups[i]
	}
	for _, s := range snap.Servers {
		if g := byID[s.SecurityGroup.ID]; g != nil {
			g.Servers = append(g.Servers, ServerRef{ID: s.ID, Name: s.Name})
		}
	}
}

// markUnreadable lists, per group, the rows that could not be read. The
// marks of the groups in kept are prev's: their rows were not read again.
func (snap *Snapshot) markUnreadable(prev *Snapshot, kept map[string]bool) {
	snap.Unreadable = map[string][]string{}
	for _, g := range snap.Groups {
		if kept[g.ID] {
			// prev's marks without those of its sets and groups, which
			// fillRemotes gives anew (addMarks put them last).
			if u := prev.Unreadable[g.ID]; len(u) > len(prev.remoteMarks[g.ID]) {
				snap.Unreadable[g.ID] = u[:len(u)-len(prev.remoteMarks[g.ID])]
			}
			continue
		}
		if g.Unreadable != "" {
			snap.Unreadable[g.ID] = append(snap.Unreadable[g.ID], "group "+g.ID+": "+g.Unreadable)
		}
		for _, r := range snap.Rules[g.ID] {
			if r.Unreadable != "" {
				snap.Unreadable[g.ID] = append(snap.Unreadable[g.ID], "rule "+r.ID+": "+r.Unreadable)
			}
		}
	}
	for _, s := range snap.Servers {
		if s.Unreadable != "" && !kept[s.SecurityGroup.ID] {
			gid := s.SecurityGroup.ID
			snap.Unreadable[gid] = append(snap.Unreadable[gid], "server "+s.ID+": "+s.Unreadable)
		}
	}
}

// Snapshot reads the whole desired state in one transaction, so that every
// part of it belongs to the same generation.
func (db *DB) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Rules: map[string][]Rule{}}
	var marks map[string][]string
	err := db.read(ctx, func(tx *txn) error {
		if err := tx.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&snap.Generation); err != nil {
			return err
		}
		var err error
		if snap.Groups, err = queryAll(ctx, tx, scanGroup, `SELECT `+groupSnapshotColumns+` FROM security_groups ORDER BY id`); err != nil {
			return err
		}
		rules, err := queryAll(ctx, tx, scanRule, `SELECT `+ruleColumns+` FROM rules ORDER BY group_id, position, id`)
		if err != nil {
			return err
		}
		for _, r := range rules {
			snap.Rules[r.GroupID] = append(snap.Rules[r.GroupID], r)
		}
		if snap.Servers, err = queryAll(ctx, tx, scanServer, `SELECT `+serverColumns+serverFrom+` ORDER BY s.id`); err != nil {
			return err
		}
		if snap.Hosts, err = queryAll(ctx, tx, scanHost, `SELECT `+hostColumns+` FROM hosts ORDER BY name`); err != nil {
			return err
		}
		marks, err = snap.fillRemotes(ctx, tx, nil)
		return err
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	snap.linkServers()
	snap.markUnreadable(nil, nil)
	snap.addMarks(marks)
	return snap, nil
}

// ForHost returns the part of snap that the host hostID enforces: its
// servers and the groups they are in, with their rules. It shares slices
// with snap, which must not be modified.
func (snap Snapshot) ForHost(hostID string) Snapshot {
	out := Snapshot{Generation: snap.Generation, Rules: map[string][]Rule{}, Hosts: snap.Hosts,
		Unreadable: map[string][]string{}}
	used := map[string]bool{}
	for _, s := range snap.Servers {
		if s.HostID == hostID {
			out.Servers = append(out.Servers, s)
			used[s.SecurityGroup.ID] = true
		}
	}
	for _, g := range snap.Groups {
		if !used[g.ID] {
			continue
		}
		out.Groups = append(out.Groups, g)
		if rules, ok := snap.Rules[g.ID]; ok {
			out.Rules[g.ID] = rules
		}
		if u, ok := snap.Unreadable[g.ID]; ok {
			out.Unreadable[g.ID] = u
		}
	}
	// The sets and groups the host's rules name: a referenced group's
	// members are on every host, not only this one.
	out.IPSets, out.Members = map[string][]netip.Prefix{}, map[string][]netip.Addr{}
	for _, g := range out.Groups {
		for _, r := range out.Rules[g.ID] {
			if entries, ok := snap.IPSets[r.IPSetID]; ok && r.IPSetID != "" {
				out.IPSets[r.IPSetID] = entries
			}
			if addrs, ok := snap.Members[r.RemoteGroupID]; ok && r.RemoteGroupID != "" {
				out.Members[r.RemoteGroupID] = addrs
			}
		}
	}
	return out
}

// SMTPRules returns the six non-editable rules that a group blocking SMTP
// shows: outbound TCP drop to 25, 465 and 587 on IPv4 and IPv6, numbered
// 1..6 apart from the editable rules. Their IDs are derived from the group
// so that they stay the same between calls.
func SMTPRules(groupID string) []Rule {
	ranges := []string{"0.0.0.0/0", "::/0"}
	var rules []Rule
	for _, rg := range ranges {
		p, _ := ParseIPRange(rg)
		for _, port := range SMTPPorts {
			rules = append(rules, Rule{
				ID:        smtpRuleID(groupID, len(rules)),
				GroupID:   groupID,
				Direction: Outbound, Protocol: TCP, Action: Drop,
				IPRange: p, DestPortFrom: port, Position: len(rules) + 1,
			})
		}
	}
	return rules
}

func smtpRuleID(groupID string, i int) string {
	// A name-based UUID keeps the ID stable without storing it.
	return uuidV5(groupID + "/smtp/" + itoa(i)).String()
}

var smtpNamespace = uuid.MustParse("6f1c2a52-3b7e-4d0a-9a55-2f2d5e0b7a11")

func uuidV5(name string) uuid.UUID { return uuid.NewSHA1(smtpNamespace, []byte(name)) }

// GroupGenerations returns the generation of every group of every
// organization, by group ID: enough to count groups by sync state.
func (db *DB) GroupGenerations(ctx context.Context) (map[string]int64, error) {
	rows, err := db.query(ctx, `SELECT id, generation FROM security_groups`)
	if err != nil {
		return nil, fmt.Errorf("group generations: %w", err)
	}
	defer rows.Close()
	gens := map[string]int64{}
	for rows.Next() {
		var id string
		var g int64
		if err := rows.Scan(&id, &g); err != nil {
			return nil, fmt.Errorf("group generations: %w", err)
		}
		gens[id] = g
	}
	return gens, rows.Err()
}

// SnapshotSince returns the same as Snapshot, reading again only the
// groups whose generation moved since prev was read, with their rules and
// servers, and reusing prev's for the rest. Every change that alters a
// group's rules or servers moves that group's generation, which is what
// makes the reuse exact (TestSnapshotSinceMatchesSnapshot checks it). The
// returned snapshot shares unchanged slices with prev: neither may be
// modified.
func (db *DB) SnapshotSince(ctx context.Context, prev Snapshot) (Snapshot, error) {
	if prev.Rules == nil {
		return db.Snapshot(ctx)
	}
	snap := Snapshot{Rules: make(map[string][]Rule, len(prev.Rules))}
	var unchanged map[string]bool
	var marks map[string][]string
	err := db.read(ctx, func(tx *txn) error {
		if err := tx.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&snap.Generation); err != nil {
			return err
		}
		// Only IDs and generations for all groups; whole rows for the
		// groups that moved.
		type idGen struct {
			id  string
			gen int64
		}
		current, err := queryAll(ctx, tx, func(sc scanner) (idGen, error) {
			var x idGen
			return x, sc.Scan(&x.id, &x.gen)
		}, `SELECT id, generation FROM security_groups ORDER BY id`)
		if err != nil {
			return err
		}
		known := make(map[string]*Group, len(prev.Groups))
		for i := range prev.Groups {
			known[prev.Groups[i].ID] = &prev.Groups[i]
		}
		unchanged = map[string]bool{}
		var changed []any
		for _, x := range current {
			if g := known[x.id]; g != nil && x.gen <= prev.Generation {
				unchanged[x.id] = true
				if rules, ok := prev.Rules[x.id]; ok {
					snap.Rules[x.id] = rules
				}
			} else {
				changed = append(changed, x.id)
			}
		}
		for _, s := range prev.Servers {
			if unchanged[s.SecurityGroup.ID] {
				snap.Servers = append(snap.Servers, s)
			}
		}
		fresh := map[string]Group{}
		// SQLite takes up to 32,766 parameters; chunks keep far below.
		for i := 0; i < len(changed); i += 500 {
			chunk := changed[i:min(len(changed), i+500)]
			in := placeholders(len(chunk))
			groups, err := queryAll(ctx, tx, scanGroup, `SELECT `+groupSnapshotColumns+` FROM security_groups WHERE id IN (`+in+`)`, chunk...)
			if err != nil {
				return err
			}
			for _, g := range groups {
				fresh[g.ID] = g
			}
			rules, err := queryAll(ctx, tx, scanRule, `SELECT `+ruleColumns+` FROM rules WHERE group_id IN (`+in+`)
				ORDER BY group_id, position, id`, chunk...)
			if err != nil {
				return err
			}
			for _, r := range rules {
				snap.Rules[r.GroupID] = append(snap.Rules[r.GroupID], r)
			}
			servers, err := queryAll(ctx, tx, scanServer, `SELECT `+serverColumns+serverFrom+` WHERE s.security_group_id IN (`+in+`)`, chunk...)
			if err != nil {
				return err
			}
			snap.Servers = append(snap.Servers, servers...)
		}
		snap.Groups = make([]Group, 0, len(current))
		for _, x := range current {
			g, ok := fresh[x.id]
			if !ok {
				g = *known[x.id]
			}
			snap.Groups = append(snap.Groups, g)
		}
		if snap.Hosts, err = queryAll(ctx, tx, scanHost, `SELECT `+hostColumns+` FROM hosts ORDER BY name`); err != nil {
			return err
		}
		marks, err = snap.fillRemotes(ctx, tx, &prev)
		return err
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot since %d: %w", prev.Generation, err)
	}
	sort.Slice(snap.Servers, func(i, j int) bool { return snap.Servers[i].ID < snap.Servers[j].ID })
	snap.linkServers()
	snap.markUnreadable(&prev, unchanged)
	snap.addMarks(marks)
	return snap, nil
}
