package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Counters that last. The kernels count every packet that each rule of a
// group decides, in named counters that survive rewrites of the group's
// chains. What a host's kernel counted is read back periodically and kept
// here per group, host and rule tag, so that a count survives restarts of
// serve and of agents, and the kernel's table made anew, and adds up over
// the hosts holding the group: the count of a rule is the sum over hosts of
// base + kernel, where kernel is the host's last count and base what is
// added to it:
//
//   - a kernel count below the last one kept (the kernel started again from
//     zero) folds the last one into the base;
//   - a reset sets the base to minus the last count (the host's kernel keeps
//     counting from there), or base and kernel to zero for a host whose
//     kernel was reset at the same time.
//
// None of this is a change: the generation does not move. Tags are the
// enforcer's: a rule's ID, an SMTP rule's ID, "default_in", "default_out",
// "established_in", "established_out", "compile_error", "log_limited".

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// HostCounters are counts read from one host's kernel: by group ID, then
// by tag.
type HostCounters struct {
	HostID string
	Groups map[string]map[string]Counter
}

// RuleCounter is what a rule (or a default policy, an SMTP rule) counted,
// summed over hosts, and when its count last moved (zero: never).
type RuleCounter struct {
	Packets     uint64
	Bytes       uint64
	LastMatched time.Time
}

// counterRowsPerStatement bounds a multi-row upsert: 100 rows of 6 values.
const counterRowsPerStatement = 100

// RecordCounters keeps counts read from hosts' kernels at time at, in one
// write that is not a change. Counts of hosts or groups that do not exist
// (removed meanwhile) are left out. Give only the counts that moved since
// the last call: an unchanged count changes nothing.
func (db *DB) RecordCounters(ctx context.Context, at time.Time, hosts ...HostCounters) error {
	type row struct {
		group, host, tag string
		c                Counter
	}
	var rows []row
	groupIDs, hostIDs := map[string]bool{}, map[string]bool{}
	for _, h := range hosts {
		for gid, tags := range h.Groups {
			for tag, c := range tags {
				rows = append(rows, row{gid, h.HostID, tag, c})
				groupIDs[gid], hostIDs[h.HostID] = true, true
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	stamp := formatTime(at)
	err := db.write(ctx, func(tx *txn) error {
		groups, err := existing(ctx, tx, "security_groups", groupIDs)
		if err != nil {
			return err
		}
		hostsFound, err := existing(ctx, tx, "hosts", hostIDs)
		if err != nil {
			return err
		}
		rows = slices.DeleteFunc(rows, func(r row) bool { return !groups[r.group] || !hostsFound[r.host] })
		for chunk := range slices.Chunk(rows, counterRowsPerStatement) {
			args := make([]any, 0, 6*len(chunk))
			for _, r := range chunk {
				matched := ""
				if r.c.Packets > 0 {
					matched = stamp
				}
				args = append(args, r.group, r.host, r.tag, int64(r.c.Packets), int64(r.c.Bytes), matched)
			}
			values := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(chunk)), ", ")
			// Every expression of SET reads the row as it was.
			if _, err := tx.ExecContext(ctx, `INSERT INTO rule_counters (group_id, host_id, tag, kernel_packets, kernel_bytes, last_matched)
				VALUES `+values+` ON CONFLICT (group_id, host_id, tag) DO UPDATE SET
				base_packets = CASE WHEN excluded.kernel_packets < rule_counters.kernel_packets
					THEN rule_counters.base_packets + rule_counters.kernel_packets ELSE rule_counters.base_packets END,
				base_bytes = CASE WHEN excluded.kernel_packets < rule_counters.kernel_packets
					THEN rule_counters.base_bytes + rule_counters.kernel_bytes ELSE rule_counters.base_bytes END,
				kernel_packets = excluded.kernel_packets,
				kernel_bytes = excluded.kernel_bytes,
				last_matched = CASE WHEN excluded.kernel_packets <> rule_counters.kernel_packets AND excluded.kernel_packets > 0
					THEN excluded.last_matched ELSE rule_counters.last_matched END`, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record counters: %w", err)
	}
	return nil
}

// existing returns which of ids are IDs of rows of table.
func existing(ctx context.Context, tx *txn, table string, ids map[string]bool) (map[string]bool, error) {
	all := make([]any, 0, len(ids))
	for id := range ids {
		all = append(all, id)
	}
	out := make(map[string]bool, len(ids))
	for chunk := range slices.Chunk(all, 500) {
		found, err := queryAll(ctx, tx, func(sc scanner) (string, error) {
			var id string
			return id, sc.Scan(&id)
		}, `SELECT id FROM `+table+` WHERE id IN (`+placeholders(len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, err
		}
		for _, id := range found {
			out[id] = true
		}
	}
	return out, nil
}

// findCounters reads a group's counts, by tag.
func findCounters(ctx context.Context, tx *txn, groupID string) (map[string]RuleCounter, error) {
	rows, err := tx.QueryContext(ctx, `SELECT tag, CAST(SUM(base_packets + kernel_packets) AS BIGINT),
		CAST(SUM(base_bytes + kernel_bytes) AS BIGINT), MAX(last_matched) FROM rule_counters WHERE group_id = ? GROUP BY tag`, groupID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]RuleCounter{}
	for rows.Next() {
		var tag, matched string
		var packets, bytes int64
		if err := rows.Scan(&tag, &packets, &bytes, &matched); err != nil {
			return nil, err
		}
		out[tag] = RuleCounter{Packets: uint64(max(packets, 0)), Bytes: uint64(max(bytes, 0)), LastMatched: parseTime(matched)}
	}
	return out, rows.Err()
}

// GroupCounters returns the counts of a group of the organization, by tag,
// summed over hosts. A tag never counted is absent.
func (db *DB) GroupCounters(ctx context.Context, orgID, zone, groupID string) (map[string]RuleCounter, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	var out map[string]RuleCounter
	err := db.read(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		var err error
		out, err = findCounters(ctx, tx, groupID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counters of group %s: %w", groupID, err)
	}
	return out, nil
}

// GroupRulesCounters is GroupRules with the group's counts, read at one
// generation: what the console's Rules section shows.
func (db *DB) GroupRulesCounters(ctx context.Context, orgID, zone, id string) (Group, []Rule, map[string]RuleCounter, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, nil, nil, err
	}
	var g Group
	var rules []Rule
	var counters map[string]RuleCounter
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, id); err != nil {
			return err
		}
		if rules, err = listedRules(ctx, tx, g); err != nil {
			return err
		}
		counters, err = findCounters(ctx, tx, id)
		return err
	})
	if err != nil {
		return Group{}, nil, nil, fmt.Errorf("get group %s: %w", id, err)
	}
	return g, rules, counters, nil
}

// ActionResetCounters is the audit action of ResetCounters.
const ActionResetCounters = "reset_counters"

// ResetCounters sets the counts of a group of the organization to zero on
// every host, and records it in the group's audit log: for host zeroed
// (whose kernel's counters were just reset, "" for none) by setting what
// is kept to zero, for the others by setting the base to minus their last
// count, so that their kernels count on from zero as far as anyone sees.
// It is not a change: no policy moves, so neither does the generation, and
// no version is made; the audit entry carries the generation in force, and
// the counts before the reset.
func (db *DB) ResetCounters(ctx context.Context, orgID, zone, groupID, zeroed string) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *txn) error {
		g, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		before, err := findCounters(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rule_counters SET base_packets = 0, base_bytes = 0, kernel_packets = 0, kernel_bytes = 0
			WHERE group_id = ? AND host_id = ?`, groupID, zeroed); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rule_counters SET base_packets = -kernel_packets, base_bytes = -kernel_bytes
			WHERE group_id = ? AND host_id <> ?`, groupID, zeroed); err != nil {
			return err
		}
		var gen int64
		if err := tx.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&gen); err != nil {
			return err
		}
		counts := make(map[string]Counter, len(before))
		for tag, c := range before {
			if c.Packets > 0 || c.Bytes > 0 {
				counts[tag] = Counter{Packets: c.Packets, Bytes: c.Bytes}
			}
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceGroup, id: g.ID,
			action: ActionResetCounters, before: map[string]any{"counters": counts}})
	})
	if err != nil {
		return fmt.Errorf("reset counters of group %s: %w", groupID, err)
	}
	return nil
}

// CounterTotal is what one tag of one group counted over every host, with
// what decides whether its packets were accepted or dropped: the rule's
// action (RuleAction, "" for a tag that is not one of the group's rules)
// and the group's default policies.
type CounterTotal struct {
	GroupID        string
	Tag            string
	Packets, Bytes uint64
	RuleAction     Policy
	Inbound        Policy
	Outbound       Policy
}

// CounterTotals returns the counts of every group, by tag, summed over
// hosts, in one read: what /metrics shows.
func (db *DB) CounterTotals(ctx context.Context) ([]CounterTotal, error) {
	var out []CounterTotal
	err := db.read(ctx, func(tx *txn) error {
		var err error
		out, err = queryAll(ctx, tx, func(sc scanner) (CounterTotal, error) {
			var t CounterTotal
			var packets, bytes int64
			err := sc.Scan(&t.GroupID, &t.Tag, &packets, &bytes, &t.RuleAction, &t.Inbound, &t.Outbound)
			t.Packets, t.Bytes = uint64(max(packets, 0)), uint64(max(bytes, 0))
			return t, err
		}, `SELECT c.group_id, c.tag, CAST(SUM(c.base_packets + c.kernel_packets) AS BIGINT), CAST(SUM(c.base_bytes + c.kernel_bytes) AS BIGINT),
			COALESCE(r.action, ''), g.inbound_default_policy, g.outbound_default_policy
			FROM rule_counters c JOIN security_groups g ON g.id = c.group_id
			LEFT JOIN rules r ON r.id = c.tag AND r.group_id = c.group_id
			GROUP BY c.group_id, c.tag, r.action, g.inbound_default_policy, g.outbound_default_policy
			ORDER BY c.group_id, c.tag`)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("counter totals: %w", err)
	}
	return out, nil
}
