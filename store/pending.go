package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Confirm or roll back. A change to a group may carry a deadline
// (WithConfirmation): the group then waits, pending, for a confirmation
// (ConfirmGroup); past the deadline the server restores the version before
// the change (RollBack, run by RunRollBacks). The state is a row of
// pending_confirmations, written by the change itself, so it survives a
// restart, and the roll-back is a change conditional on that row: of
// several processes sharing the database, the one whose change deletes it
// performs the roll-back, and the others change nothing.

// MaxConfirmWithin is the longest a change may wait for its confirmation.
const MaxConfirmWithin = time.Hour

// PendingConfirmation is a change of a group waiting to be confirmed.
type PendingConfirmation struct {
	GroupID   string
	Version   int // the version the change made
	Base      int // the version a roll-back restores
	Deadline  time.Time
	Actor     string // who made the change
	CreatedAt time.Time
}

// ParseConfirmWithin reads a confirmation window as a header or a form
// carries it: a whole number of seconds from 1 to 3600.
func ParseConfirmWithin(s string) (time.Duration, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || time.Duration(n)*time.Second > MaxConfirmWithin {
		return 0, invalid("confirm_within", "format", "the time to confirm is a whole number of seconds from 1 to %d (got %q)",
			int(MaxConfirmWithin/time.Second), s)
	}
	return time.Duration(n) * time.Second, nil
}

// ConfirmOutOfPlace is the refusal of a confirmation window asked of
// something that is not a change of an existing group (creating or
// deleting one, a server, a confirmation): nothing could be rolled back,
// and a client that believes it has a way back must have one.
func ConfirmOutOfPlace(what string) error {
	return invalid("confirm_within", "constraint",
		"applies to a change of an existing security group (PATCH or PUT of the group, its rules, or a revert), not to %s", what)
}

type confirmKey struct{}

// confirmRequest asks the change that carries it to leave groupID pending
// for within, and receives what it did.
type confirmRequest struct {
	groupID string
	within  time.Duration
	result  *PendingConfirmation
}

// WithConfirmation returns a context whose change to group groupID waits
// for a confirmation within the given time, and where the pending state
// will be written once the change commits (its Version is 0 when the
// change changed nothing, and so awaits nothing).
func WithConfirmation(ctx context.Context, groupID string, within time.Duration) (context.Context, *PendingConfirmation) {
	p := &PendingConfirmation{}
	return context.WithValue(ctx, confirmKey{}, &confirmRequest{groupID: groupID, within: within, result: p}), p
}

// startPending records that the version the change made waits for its
// confirmation.
func (db *DB) startPending(ctx context.Context, tx *txn, req *confirmRequest, version, base int) error {
	if base < 1 {
		return invalid("confirm_within", "constraint", "a new group has no earlier version to roll back to")
	}
	now := db.Now().UTC()
	p := PendingConfirmation{GroupID: req.groupID, Version: version, Base: base, Deadline: now.Add(req.within),
		Actor: actorOf(ctx), CreatedAt: now}
	_, err := tx.ExecContext(ctx, `INSERT INTO pending_confirmations (group_id, version, base, deadline, actor, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, p.GroupID, p.Version, p.Base, formatTime(p.Deadline), p.Actor, formatTime(p.CreatedAt))
	if err != nil {
		return fmt.Errorf("pending confirmation: %w", err)
	}
	*req.result = p
	return nil
}

func scanPending(sc scanner) (PendingConfirmation, error) {
	var p PendingConfirmation
	var deadline, created string
	err := sc.Scan(&p.GroupID, &p.Version, &p.Base, &deadline, &p.Actor, &created)
	p.Deadline, p.CreatedAt = parseTime(deadline), parseTime(created)
	return p, err
}

const pendingColumns = `group_id, version, base, deadline, actor, created_at`

func findPending(ctx context.Context, tx *txn, groupID string) (PendingConfirmation, bool, error) {
	p, err := scanPending(tx.QueryRowContext(ctx, `SELECT `+pendingColumns+` FROM pending_confirmations WHERE group_id = ?`, groupID))
	if errors.Is(err, sql.ErrNoRows) {
		return PendingConfirmation{}, false, nil
	}
	if err != nil {
		return PendingConfirmation{}, false, fmt.Errorf("pending confirmation: %w", err)
	}
	return p, true, nil
}

// pendingConflict refuses a change to a group whose last change awaits
// its confirmation, naming it.
func pendingConflict(p PendingConfirmation) *Error {
	return conflict("version %d of this security group awaits confirmation until %s (made by %s): confirm it, or let it roll back to version %d, before changing the group again",
		p.Version, p.Deadline.UTC().Format(time.RFC3339), p.Actor, p.Base)
}

// loadPending fills each group's Pending: the change it awaits a
// confirmation of, if any.
func loadPending(ctx context.Context, tx *txn, groups []*Group) error {
	if len(groups) == 0 {
		return nil
	}
	byID := make(map[string]*Group, len(groups))
	args := make([]any, len(groups))
	for i, g := range groups {
		byID[g.ID] = g
		args[i] = g.ID
	}
	rows, err := tx.QueryContext(ctx, `SELECT group_id, version, base, deadline, actor, created_at
		FROM pending_confirmations WHERE group_id IN (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var p PendingConfirmation
		var deadline, created string
		if err := rows.Scan(&p.GroupID, &p.Version, &p.Base, &deadline, &p.Actor, &created); err != nil {
			return err
		}
		p.Deadline, p.CreatedAt = parseTime(deadline), parseTime(created)
		byID[p.GroupID].Pending = &p
	}
	return rows.Err()
}

// ConfirmGroup confirms the change of a group that awaits it: the group
// keeps it. version, when not 0, must be the pending one. A confirmation
// after the deadline is refused: the roll-back was promised.
func (db *DB) ConfirmGroup(ctx context.Context, orgID, zone, groupID string, version int) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		p := g.Pending
		switch {
		case p == nil:
			return conflict("no change of this security group awaits confirmation")
		case version != 0 && version != p.Version:
			return conflict("version %d of this security group awaits confirmation, not version %d", p.Version, version)
		case !db.Now().Before(p.Deadline):
			return conflict("too late: version %d was to be confirmed by %s; it is being rolled back to version %d",
				p.Version, p.Deadline.UTC().Format(time.RFC3339), p.Base)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM pending_confirmations WHERE group_id = ? AND version = ?`, g.ID, p.Version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return conflict("no change of this security group awaits confirmation")
		}
		confirmed := *p
		g.Pending = nil
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, group: g.ID, resource: ResourceGroup, id: g.ID,
			action: actionConfirm, after: map[string]any{"version": confirmed.Version, "deadline": formatTime(confirmed.Deadline)}})
	})
	if err != nil {
		return Group{}, fmt.Errorf("confirm group %s: %w", groupID, err)
	}
	return g, nil
}

// RollBack restores the version before the pending change version of a
// group, if that change still awaits its confirmation and its deadline
// has passed: a change conditional on the pending row, so that of several
// processes racing to do it, one does and the others change nothing. It
// reports whether this call rolled back. The roll-back is audited
// (action "rollback", by "system") and is a new version.
func (db *DB) RollBack(ctx context.Context, groupID string, version int) (bool, error) {
	ctx, notes := withVersionNotes(WithActor(ctx, "system"))
	done := false
	err := db.change(ctx, func(tx *txn, gen int64) error {
		p, ok, err := findPending(ctx, tx, groupID)
		if err != nil {
			return err
		}
		if !ok || p.Version != version || db.Now().Before(p.Deadline) {
			return errNoChange
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM pending_confirmations WHERE group_id = ? AND version = ?`, groupID, version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errNoChange
		}
		var org, zone string
		if err := tx.QueryRowContext(ctx, `SELECT organization_id, zone FROM security_groups WHERE id = ?`, groupID).
			Scan(&org, &zone); err != nil {
			return fmt.Errorf("roll back: %w", err)
		}
		g, err := findGroup(ctx, tx, org, zone, groupID)
		if err != nil {
			return err
		}
		base, err := findVersion(ctx, tx, groupID, p.Base)
		if err != nil {
			return err
		}
		notes[groupID] = fmt.Sprintf("rolled back to version %d: version %d was not confirmed by %s",
			p.Base, version, p.Deadline.UTC().Format(time.RFC3339))
		changed, err := db.restore(ctx, tx, gen, g, base, "rollback")
		if err != nil {
			return err
		}
		if !changed {
			// Nothing to restore (the change touched no setting or rule):
			// the roll-back is still audited, and still a version.
			if err := db.record(ctx, tx, gen, change{org: org, zone: zone, group: groupID, resource: ResourceGroup,
				id: groupID, action: "rollback"}); err != nil {
				return err
			}
			if err := db.touchGroup(ctx, tx, gen, groupID); err != nil {
				return err
			}
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("roll back group %s from version %d: %w", groupID, version, err)
	}
	return done, nil
}

// PendingNotice is a change of one of an organization's groups that
// awaits its confirmation, as every console page mentions it.
type PendingNotice struct {
	GroupID   string
	GroupName string
	Zone      string
	Version   int
	Deadline  time.Time
}

// PendingNotices lists the changes of an organization's groups that await
// their confirmation, soonest deadline first. Like Account, it is part of
// what frames every console page, read beside the request's own store
// reads and not counted with them.
func (db *DB) PendingNotices(ctx context.Context, orgID string) ([]PendingNotice, error) {
	rows, err := db.query(ctx, `SELECT p.group_id, g.name, g.zone, p.version, p.deadline
		FROM pending_confirmations p JOIN security_groups g ON g.id = p.group_id
		WHERE g.organization_id = ? ORDER BY p.deadline, p.group_id`, orgID)
	if err != nil {
		return nil, fmt.Errorf("pending confirmations: %w", err)
	}
	defer rows.Close()
	var out []PendingNotice
	for rows.Next() {
		var n PendingNotice
		var deadline string
		if err := rows.Scan(&n.GroupID, &n.GroupName, &n.Zone, &n.Version, &deadline); err != nil {
			return nil, fmt.Errorf("pending confirmations: %w", err)
		}
		n.Deadline = parseTime(deadline)
		out = append(out, n)
	}
	return out, rows.Err()
}

// RollBackDue rolls back every pending change whose deadline has passed,
// and returns how many this call rolled back (another process may have
// done some of them). The search is not counted as a read of a request.
func (db *DB) RollBackDue(ctx context.Context) (int, error) {
	rows, err := db.query(ctx, `SELECT group_id, version FROM pending_confirmations WHERE deadline <= ?
		ORDER BY deadline, group_id`, formatTime(db.Now()))
	if err != nil {
		return 0, fmt.Errorf("due roll-backs: %w", err)
	}
	type due struct {
		group   string
		version int
	}
	var list []due
	for rows.Next() {
		var d due
		if err := rows.Scan(&d.group, &d.version); err != nil {
			rows.Close()
			return 0, fmt.Errorf("due roll-backs: %w", err)
		}
		list = append(list, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("due roll-backs: %w", err)
	}
	n := 0
	var errs []error
	for _, d := range list {
		done, err := db.RollBack(ctx, d.group, d.version)
		if err != nil {
			errs = append(errs, err)
		} else if done {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// nextDeadline returns the soonest deadline of a pending change, if any.
func (db *DB) nextDeadline(ctx context.Context) (time.Time, bool, error) {
	var d sql.NullString
	if err := db.queryRow(ctx, `SELECT MIN(deadline) FROM pending_confirmations`).Scan(&d); err != nil {
		return time.Time{}, false, err
	}
	if !d.Valid || d.String == "" {
		return time.Time{}, false, nil
	}
	return parseTime(d.String), true, nil
}

// RollBackCheckInterval bounds how long a roll-back may wait for a
// deadline that this process was not told of (a change made by another
// process sharing the database).
const RollBackCheckInterval = time.Second

// RunRollBacks performs the roll-backs as their deadlines pass, until ctx
// ends: it sleeps until the soonest deadline, or until a change of this
// process (which may have started a confirmation), or at most
// RollBackCheckInterval. Deadlines that passed while no process ran (a
// restart) are rolled back at once. report, if not nil, is told of each
// pass that rolled back or failed.
func (db *DB) RunRollBacks(ctx context.Context, report func(rolledBack int, err error)) {
	wake, stop := db.Watch()
	defer stop()
	for {
		n, err := db.RollBackDue(ctx)
		if ctx.Err() != nil {
			return
		}
		if report != nil && (n > 0 || err != nil) {
			report(n, err)
		}
		wait := RollBackCheckInterval
		if err == nil {
			if d, ok, derr := db.nextDeadline(ctx); derr == nil && ok {
				wait = min(wait, max(time.Until(d), 0)+5*time.Millisecond)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}
