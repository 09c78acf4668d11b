package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/google/uuid"
)

// Snapshot reads the whole desired state in one transaction, so that every
// part of it belongs to the same generation.
func (db *DB) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Rules: map[string][]Rule{}}
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&snap.Generation); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+groupColumns+` FROM security_groups ORDER BY id`)
		if err != nil {
			return err
		}
		byID := map[string]*Group{}
		for rows.Next() {
			g, err := scanGroup(rows)
			if err != nil {
				rows.Close()
				return err
			}
			snap.Groups = append(snap.Groups, g)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range snap.Groups {
			byID[snap.Groups[i].ID] = &snap.Groups[i]
		}
		rows, err = tx.QueryContext(ctx, `SELECT `+ruleColumns+` FROM rules ORDER BY group_id, position, id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRule(rows)
			if err != nil {
				rows.Close()
				return err
			}
			snap.Rules[r.GroupID] = append(snap.Rules[r.GroupID], r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT `+serverColumns+serverFrom+` ORDER BY s.id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			s, err := scanServer(rows)
			if err != nil {
				return err
			}
			snap.Servers = append(snap.Servers, s)
			if g := byID[s.SecurityGroup.ID]; g != nil {
				g.Servers = append(g.Servers, ServerRef{ID: s.ID, Name: s.Name})
			}
		}
		return rows.Err()
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
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
	rows, err := db.db.QueryContext(ctx, `SELECT id, generation FROM security_groups`)
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
	err := db.read(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&snap.Generation); err != nil {
			return err
		}
		// Only IDs and generations for all groups; whole rows for the
		// groups that moved.
		rows, err := tx.QueryContext(ctx, `SELECT id, generation FROM security_groups ORDER BY id`)
		if err != nil {
			return err
		}
		type idGen struct {
			id  string
			gen int64
		}
		var current []idGen
		for rows.Next() {
			var x idGen
			if err := rows.Scan(&x.id, &x.gen); err != nil {
				rows.Close()
				return err
			}
			current = append(current, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		known := make(map[string]*Group, len(prev.Groups))
		for i := range prev.Groups {
			known[prev.Groups[i].ID] = &prev.Groups[i]
		}
		unchanged := map[string]bool{}
		var changed []any
		fresh := map[string]Group{}
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
		for i := 0; i < len(changed); i += 500 {
			chunk := changed[i:min(len(changed), i+500)]
			rows, err := tx.QueryContext(ctx, `SELECT `+groupColumns+` FROM security_groups WHERE id IN (`+placeholders(len(chunk))+`)`, chunk...)
			if err != nil {
				return err
			}
			for rows.Next() {
				g, err := scanGroup(rows)
				if err != nil {
					rows.Close()
					return err
				}
				fresh[g.ID] = g
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		snap.Groups = make([]Group, 0, len(current))
		for _, x := range current {
			g, ok := fresh[x.id]
			if !ok {
				g = *known[x.id]
			}
			g.Servers = []ServerRef{} // rebuilt below from the servers
			snap.Groups = append(snap.Groups, g)
		}
		for _, s := range prev.Servers {
			if unchanged[s.SecurityGroup.ID] {
				snap.Servers = append(snap.Servers, s)
			}
		}
		// SQLite takes up to 32,766 parameters; chunks keep far below.
		for len(changed) > 0 {
			chunk := changed[:min(len(changed), 500)]
			changed = changed[len(chunk):]
			in := placeholders(len(chunk))
			rows, err := tx.QueryContext(ctx, `SELECT `+ruleColumns+` FROM rules WHERE group_id IN (`+in+`)
				ORDER BY group_id, position, id`, chunk...)
			if err != nil {
				return err
			}
			for rows.Next() {
				r, err := scanRule(rows)
				if err != nil {
					rows.Close()
					return err
				}
				snap.Rules[r.GroupID] = append(snap.Rules[r.GroupID], r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			rows, err = tx.QueryContext(ctx, `SELECT `+serverColumns+serverFrom+` WHERE s.security_group_id IN (`+in+`)`, chunk...)
			if err != nil {
				return err
			}
			for rows.Next() {
				s, err := scanServer(rows)
				if err != nil {
					rows.Close()
					return err
				}
				snap.Servers = append(snap.Servers, s)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot since %d: %w", prev.Generation, err)
	}
	sort.Slice(snap.Servers, func(i, j int) bool { return snap.Servers[i].ID < snap.Servers[j].ID })
	byID := make(map[string]*Group, len(snap.Groups))
	for i := range snap.Groups {
		byID[snap.Groups[i].ID] = &snap.Groups[i]
	}
	for _, s := range snap.Servers {
		if g := byID[s.SecurityGroup.ID]; g != nil {
			g.Servers = append(g.Servers, ServerRef{ID: s.ID, Name: s.Name})
		}
	}
	return snap, nil
}
