package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one entry of the audit log.
type Event struct {
	ID             int64
	OrganizationID string
	Zone           string
	GroupID        string // the group the change concerns, if any
	Resource       string // ResourceGroup, ResourceRule or ResourceServer
	ResourceID     string
	Action         string // create, update, delete, move, set_rules, unlink
	Actor          string // "user ops@example.com", "token SCW…", "cli"
	At             time.Time
	Before, After  json.RawMessage // the object, or null
	Generation     int64
}

type actorKey struct{}

// WithActor returns a context whose changes are recorded as made by actor.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// change describes one audit entry for record.
type change struct {
	org, zone, group     string
	resource, id, action string
	before, after        any
}

func marshalOrNull(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

// record writes an audit entry in the change's own transaction, so that
// the log holds exactly the changes that committed.
func (db *DB) record(ctx context.Context, tx *txn, gen int64, c change) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (organization_id, zone, group_id, resource, resource_id, action,
		actor, at, before, after, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.org, c.zone, c.group, c.resource, c.id, c.action, actorOf(ctx), formatTime(db.Now()),
		marshalOrNull(c.before), marshalOrNull(c.after), gen)
	if err != nil {
		return fmt.Errorf("record %s %s: %w", c.action, c.resource, err)
	}
	return nil
}

// Events returns the audit log of a group of the organization, newest
// first: changes to the group, its rules, and the servers it gained or lost.
func (db *DB) Events(ctx context.Context, orgID, zone, groupID string, limit int) ([]Event, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, err
	}
	var events []Event
	err := db.read(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		var err error
		events, err = findEvents(ctx, tx, orgID, groupID, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("events of group %s: %w", groupID, err)
	}
	return events, nil
}

// findEvents reads the newest events of a group, at most limit (1..1000,
// else 100).
func findEvents(ctx context.Context, tx *txn, orgID, groupID string, limit int) ([]Event, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	return queryAll(ctx, tx, func(sc scanner) (Event, error) {
		var e Event
		var at, before, after string
		err := sc.Scan(&e.ID, &e.OrganizationID, &e.Zone, &e.GroupID, &e.Resource, &e.ResourceID, &e.Action,
			&e.Actor, &at, &before, &after, &e.Generation)
		e.At, e.Before, e.After = parseTime(at), json.RawMessage(before), json.RawMessage(after)
		return e, err
	}, `SELECT id, organization_id, zone, group_id, resource, resource_id, action, actor,
		at, before, after, generation FROM events WHERE organization_id = ? AND group_id = ? ORDER BY id DESC LIMIT ?`,
		orgID, groupID, limit)
}
