package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Review before apply. A person may stage edits to a group's rules as a
// draft (one per person and group), look at what they change and at the
// nftables text they compile to, and apply them as one change. A draft
// remembers the version it began from: if the group's rules changed since,
// applying it is refused and the review shows what changed, rather than
// overwriting someone else's change. Drafts are not changes: editing one
// never moves the generation.

// ResourceDraft names a draft in not-found errors.
const ResourceDraft = "rule_draft"

// Draft is a person's staged rules of a group.
type Draft struct {
	UserID      string
	GroupID     string
	BaseVersion int    // the group's version when the draft began
	Rules       []Rule // in position order; new rules have IDs of their own already
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DraftReview is everything the review of a draft shows, read at one
// generation.
type DraftReview struct {
	Group   Group
	Current []Rule // the group's editable rules now
	Draft   Draft
	// Base is the version the draft began from; Since, what changed from
	// it to the group's latest version (empty when the group did not move).
	Base  GroupVersion
	Since VersionDiff
	// MovedOn is true when the group's rules changed since the draft
	// began: applying it would overwrite that change, and is refused.
	MovedOn bool
	// Changes compares the group's rules now with the draft's.
	Changes VersionDiff
	// Choices are the IP sets and groups the draft's rules may match.
	Choices RemoteChoices
}

func findDraft(ctx context.Context, tx *txn, userID, groupID string) (Draft, error) {
	d := Draft{UserID: userID, GroupID: groupID}
	var rules, created, updated string
	err := tx.QueryRowContext(ctx, `SELECT base_version, rules, created_at, updated_at FROM rule_drafts
		WHERE user_id = ? AND group_id = ?`, userID, groupID).Scan(&d.BaseVersion, &rules, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Draft{}, notFound(ResourceDraft, groupID)
	}
	if err != nil {
		return Draft{}, err
	}
	if err := json.Unmarshal([]byte(rules), &d.Rules); err != nil {
		return Draft{}, fmt.Errorf("draft of group %s: %w", groupID, err)
	}
	for i := range d.Rules {
		d.Rules[i].GroupID, d.Rules[i].Editable, d.Rules[i].Position = groupID, true, i+1
	}
	d.CreatedAt, d.UpdatedAt = parseTime(created), parseTime(updated)
	return d, nil
}

func (db *DB) saveDraft(ctx context.Context, tx *txn, d Draft) error {
	if d.Rules == nil {
		d.Rules = []Rule{}
	}
	raw, err := json.Marshal(d.Rules)
	if err != nil {
		return err
	}
	now := formatTime(db.Now())
	_, err = tx.ExecContext(ctx, `INSERT INTO rule_drafts (user_id, group_id, base_version, rules, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, group_id) DO UPDATE SET base_version = excluded.base_version,
		rules = excluded.rules, updated_at = excluded.updated_at`, d.UserID, d.GroupID, d.BaseVersion, string(raw), now, now)
	return err
}

// StartDraft begins userID's draft of a group's rules from the rules it
// has now; a draft already begun is kept, unless restart.
func (db *DB) StartDraft(ctx context.Context, orgID, zone, groupID, userID string, restart bool) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *txn) error {
		g, err := findGroup(ctx, tx, orgID, zone, groupID)
		if err != nil {
			return err
		}
		if !restart {
			if _, err := findDraft(ctx, tx, userID, groupID); err == nil {
				return nil
			} else if ErrorCode(err) != CodeNotFound {
				return err
			}
		}
		rules, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		return db.saveDraft(ctx, tx, Draft{UserID: userID, GroupID: groupID, BaseVersion: g.Version, Rules: rules})
	})
	if err != nil {
		return fmt.Errorf("start a draft of group %s: %w", groupID, err)
	}
	return nil
}

// ReviewDraft reads userID's draft of a group with what the review shows.
func (db *DB) ReviewDraft(ctx context.Context, orgID, zone, groupID, userID string) (DraftReview, error) {
	if err := db.checkZone(zone); err != nil {
		return DraftReview{}, err
	}
	var r DraftReview
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if r.Group, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		if r.Current, err = findRules(ctx, tx, groupID); err != nil {
			return err
		}
		if r.Draft, err = findDraft(ctx, tx, userID, groupID); err != nil {
			return err
		}
		if r.Base, err = findVersion(ctx, tx, groupID, r.Draft.BaseVersion); err != nil {
			return err
		}
		if r.Group.Version != r.Base.Version {
			latest, err := findVersion(ctx, tx, groupID, r.Group.Version)
			if err != nil {
				return err
			}
			r.Since = DiffVersions(r.Base, latest)
		}
		r.Choices, err = findRemoteChoices(ctx, tx, orgID, zone)
		return err
	})
	if err != nil {
		return DraftReview{}, fmt.Errorf("draft of group %s: %w", groupID, err)
	}
	r.MovedOn = !slices.Equal(r.Base.Rules, r.Current)
	r.Changes = DiffVersions(GroupVersion{VersionInfo: VersionInfo{Version: r.Group.Version}, Rules: r.Current},
		GroupVersion{Rules: r.Draft.Rules})
	return r, nil
}

// editDraft changes userID's draft of a group with edit, which returns the
// draft's new rules (any order of positions: they are renumbered).
func (db *DB) editDraft(ctx context.Context, orgID, zone, groupID, userID string, edit func([]Rule) ([]Rule, error)) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		d, err := findDraft(ctx, tx, userID, groupID)
		if err != nil {
			return err
		}
		rules, err := edit(slices.Clone(d.Rules))
		if err != nil {
			return err
		}
		if len(rules) > db.MaxRules {
			return invalid("rules", "constraint", "a group holds at most %d rules", db.MaxRules)
		}
		for i := range rules {
			rules[i].GroupID, rules[i].Position = groupID, i+1
		}
		d.Rules = rules
		return db.saveDraft(ctx, tx, d)
	})
	if err != nil {
		return fmt.Errorf("edit the draft of group %s: %w", groupID, err)
	}
	return nil
}

func draftRuleIndex(rules []Rule, ruleID string) (int, error) {
	i := slices.IndexFunc(rules, func(r Rule) bool { return r.ID == ruleID })
	if i < 0 {
		return 0, notFound(ResourceRule, ruleID)
	}
	return i, nil
}

// DraftAddRule appends a rule to a draft, checked as CreateRule checks it.
func (db *DB) DraftAddRule(ctx context.Context, orgID, zone, groupID, userID string, in RuleInput) error {
	var fe fieldErrors
	r := buildRule(&fe, "", in)
	if err := fe.err(); err != nil {
		return err
	}
	r.ID = uuid.NewString()
	return db.editDraft(ctx, orgID, zone, groupID, userID, func(rules []Rule) ([]Rule, error) {
		return insertAt(rules, r, in.Position), nil
	})
}

// DraftUpdateRule replaces the fields of a rule of a draft.
func (db *DB) DraftUpdateRule(ctx context.Context, orgID, zone, groupID, userID, ruleID string, in RuleInput) error {
	var fe fieldErrors
	r := buildRule(&fe, "", in)
	if err := fe.err(); err != nil {
		return err
	}
	return db.editDraft(ctx, orgID, zone, groupID, userID, func(rules []Rule) ([]Rule, error) {
		i, err := draftRuleIndex(rules, ruleID)
		if err != nil {
			return nil, err
		}
		r.ID = ruleID
		rules[i] = r
		return rules, nil
	})
}

// DraftDeleteRule removes a rule from a draft.
func (db *DB) DraftDeleteRule(ctx context.Context, orgID, zone, groupID, userID, ruleID string) error {
	return db.editDraft(ctx, orgID, zone, groupID, userID, func(rules []Rule) ([]Rule, error) {
		i, err := draftRuleIndex(rules, ruleID)
		if err != nil {
			return nil, err
		}
		return slices.Delete(rules, i, i+1), nil
	})
}

// DraftMoveRule moves a rule of a draft to the place of the previous rule
// of its direction (step -1) or of the next one (+1), as MoveRuleStep.
func (db *DB) DraftMoveRule(ctx context.Context, orgID, zone, groupID, userID, ruleID string, step int) error {
	if step != -1 && step != 1 {
		return invalid("direction", "format", "move a rule up or down")
	}
	return db.editDraft(ctx, orgID, zone, groupID, userID, func(rules []Rule) ([]Rule, error) {
		i, err := draftRuleIndex(rules, ruleID)
		if err != nil {
			return nil, err
		}
		for j := i + step; j >= 0 && j < len(rules); j += step {
			if rules[j].Direction == rules[i].Direction {
				r := rules[i]
				rules = slices.Delete(rules, i, i+1)
				return slices.Insert(rules, j, r), nil
			}
		}
		return rules, nil
	})
}

// DraftSetText replaces a draft's rules with those of the text form (see
// ParseRulesText); unchanged lines keep their rules.
func (db *DB) DraftSetText(ctx context.Context, orgID, zone, groupID, userID, text string) error {
	parsed, err := db.ParseRulesText(text)
	if err != nil {
		return err
	}
	return db.editDraft(ctx, orgID, zone, groupID, userID, func(rules []Rule) ([]Rule, error) {
		matchRules(parsed, rules, uuid.NewString)
		return parsed, nil
	})
}

// DiscardDraft deletes userID's draft of a group.
func (db *DB) DiscardDraft(ctx context.Context, orgID, zone, groupID, userID string) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *txn) error {
		if _, err := findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM rule_drafts WHERE user_id = ? AND group_id = ?`, userID, groupID)
		return err
	})
	if err != nil {
		return fmt.Errorf("discard the draft of group %s: %w", groupID, err)
	}
	return nil
}

// ApplyDraft makes userID's draft the group's rules in one change (a
// version like any other; WithConfirmation applies), and deletes the
// draft. It is refused when the group's rules changed since the draft
// began, and when the draft changes nothing.
func (db *DB) ApplyDraft(ctx context.Context, orgID, zone, groupID, userID string) (Group, error) {
	if err := db.checkZone(zone); err != nil {
		return Group{}, err
	}
	ctx, notes := withVersionNotes(ctx)
	var g Group
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if g, err = findGroup(ctx, tx, orgID, zone, groupID); err != nil {
			return err
		}
		d, err := findDraft(ctx, tx, userID, groupID)
		if err != nil {
			return err
		}
		existing, err := findRules(ctx, tx, groupID)
		if err != nil {
			return err
		}
		base, err := findVersion(ctx, tx, groupID, d.BaseVersion)
		if err != nil {
			return err
		}
		if !slices.Equal(base.Rules, existing) {
			return conflict("the rules of this group changed since your draft began (version %d, now %d): review what changed, then start the draft again",
				d.BaseVersion, g.Version)
		}
		// Checked again as a set-all would: the draft was checked rule by
		// rule when edited, and today's limits apply.
		var fe fieldErrors
		target := make([]Rule, len(d.Rules))
		for i, r := range d.Rules {
			b := buildRule(&fe, fmt.Sprintf("rules[%d].", i), ruleInputOf(r))
			b.ID, b.GroupID, b.Position = r.ID, groupID, i+1
			target[i] = b
		}
		if len(target) > db.MaxRules {
			fe.add("rules", "constraint", "a group holds at most %d rules (got %d)", db.MaxRules, len(target))
		}
		if err := fe.err(); err != nil {
			return err
		}
		if slices.Equal(existing, target) {
			return conflict("this draft changes nothing: the group already has these rules")
		}
		if err := restoreRules(ctx, tx, groupID, existing, target); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM rule_drafts WHERE user_id = ? AND group_id = ?`, userID, groupID); err != nil {
			return err
		}
		notes[groupID] = "reviewed draft applied"
		return db.rulesChanged(ctx, tx, gen, change{org: orgID, zone: zone, group: groupID, resource: ResourceRule, id: groupID,
			action: "apply_draft", before: existing, after: target})
	})
	if err != nil {
		return Group{}, fmt.Errorf("apply the draft of group %s: %w", groupID, err)
	}
	return g, nil
}
