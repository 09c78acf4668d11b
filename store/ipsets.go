package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"go4.org/netipx"
)

// MaxIPSetEntries bounds the entries of one IP set, as given and as kept.
const MaxIPSetEntries = 100_000

// ResourceIPSet names IP sets in not-found errors.
const ResourceIPSet = "instance_ip_set"

// IPSet is a named list of addresses and ranges of an organization and
// zone. Rules match it as one, whatever its size.
type IPSet struct {
	ID             string
	OrganizationID string
	ProjectID      string
	Zone           string
	Name           string
	Description    string
	// Entries are kept merged (overlapping and adjacent ranges joined) and
	// sorted, IPv4 first.
	Entries    []netip.Prefix
	CreatedAt  time.Time
	ModifiedAt time.Time
	Generation int64
	Unreadable string // why the stored entries are not valid, or ""
	// UsedBy are the groups whose rules match the set (filled when one
	// set is read, not in lists).
	UsedBy []GroupRef
}

// IPSetInput describes a new IP set.
type IPSetInput struct {
	Name        string
	Description string
	ProjectID   string // optional; the organization's project
	Entries     []string
}

// IPSetPatch changes an IP set: Entries replaces them; Add and Remove
// edit them (after a replacement, if both are given).
type IPSetPatch struct {
	Name        *string
	Description *string
	Entries     *[]string
	Add         []string
	Remove      []string
}

const ipSetColumns = `id, organization_id, project_id, zone, name, description, entries, created_at, modified_at, generation`

func scanIPSet(sc scanner) (IPSet, error) {
	var s IPSet
	var entries, created, modified string
	if err := sc.Scan(&s.ID, &s.OrganizationID, &s.ProjectID, &s.Zone, &s.Name, &s.Description, &entries, &created,
		&modified, &s.Generation); err != nil {
		return IPSet{}, err
	}
	s.CreatedAt, s.ModifiedAt = parseTime(created), parseTime(modified)
	// Read back through the same parser: a line that does not parse marks
	// the set, whose rules then fail closed, rather than being skipped.
	s.Entries = []netip.Prefix{}
	for i, line := range strings.Split(entries, "\n") {
		if line == "" {
			continue
		}
		p, err := netip.ParsePrefix(line)
		if err != nil || p != p.Masked() {
			s.Unreadable = fmt.Sprintf("entry %d: %q is not a range", i, line)
			continue
		}
		s.Entries = append(s.Entries, p)
	}
	return s, nil
}

// buildEntries parses entries (CIDRs or bare addresses, host bits cleared)
// into b, naming the field of each bad one.
func buildEntries(fe *fieldErrors, field string, entries []string, add func(netip.Prefix)) {
	if len(entries) > MaxIPSetEntries {
		fe.add(field, "constraint", "an IP set holds at most %d entries (got %d)", MaxIPSetEntries, len(entries))
		return
	}
	bad := 0
	for i, e := range entries {
		p, ok := ParseIPRange(e)
		if !ok {
			if bad++; bad <= 10 { // enough to fix a paste, not a megabyte of errors
				fe.add(fmt.Sprintf("%s[%d]", field, i), "format", "%q is not a CIDR range or an IP address", e)
			}
			continue
		}
		add(p)
	}
}

// mergedEntries returns the minimal sorted list of prefixes of b.
func mergedEntries(fe *fieldErrors, b *netipx.IPSetBuilder) []netip.Prefix {
	set, err := b.IPSet()
	if err != nil {
		fe.add("entries", "format", "%v", err)
		return nil
	}
	out := set.Prefixes()
	if len(out) > MaxIPSetEntries {
		fe.add("entries", "constraint", "an IP set holds at most %d entries (got %d once merged)", MaxIPSetEntries, len(out))
	}
	if out == nil {
		out = []netip.Prefix{}
	}
	return out
}

func entriesText(entries []netip.Prefix) string {
	var b strings.Builder
	b.Grow(20 * len(entries))
	for _, p := range entries {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func findIPSet(ctx context.Context, tx *txn, orgID, zone, id string) (IPSet, error) {
	s, err := scanIPSet(tx.QueryRowContext(ctx, `SELECT `+ipSetColumns+` FROM ip_sets WHERE id = ? AND organization_id = ? AND zone = ?`,
		id, orgID, zone))
	if errors.Is(err, sql.ErrNoRows) {
		return IPSet{}, notFound(ResourceIPSet, id)
	}
	if err != nil {
		return IPSet{}, err
	}
	s.UsedBy, err = referrers(ctx, tx, colIPSet, id, "")
	return s, err
}

// CreateIPSet creates an IP set; its entries are merged.
func (db *DB) CreateIPSet(ctx context.Context, orgID, zone string, in IPSetInput) (IPSet, error) {
	if err := db.checkZone(zone); err != nil {
		return IPSet{}, err
	}
	if err := db.checkProject(orgID, in.ProjectID); err != nil {
		return IPSet{}, err
	}
	var fe fieldErrors
	checkName(&fe, "name", in.Name)
	checkDescription(&fe, "description", in.Description)
	var b netipx.IPSetBuilder
	buildEntries(&fe, "entries", in.Entries, b.AddPrefix)
	entries := mergedEntries(&fe, &b)
	if err := fe.err(); err != nil {
		return IPSet{}, err
	}
	now := db.Now().UTC()
	s := IPSet{ID: uuid.NewString(), OrganizationID: orgID, ProjectID: orgID, Zone: zone, Name: strings.TrimSpace(in.Name),
		Description: in.Description, Entries: entries, CreatedAt: now, ModifiedAt: now}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		s.Generation = gen
		_, err := tx.ExecContext(ctx, `INSERT INTO ip_sets (`+ipSetColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ID, s.OrganizationID, s.ProjectID, s.Zone, s.Name, s.Description, entriesText(s.Entries),
			formatTime(now), formatTime(now), gen)
		if err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, resource: ResourceIPSet, id: s.ID, action: "create",
			after: ipSetAudit(s)})
	})
	if err != nil {
		return IPSet{}, fmt.Errorf("create IP set: %w", err)
	}
	return s, nil
}

// ipSetAudit is what the audit log keeps of a set: not its entries, which
// may be 100,000, but how many.
func ipSetAudit(s IPSet) map[string]any {
	return map[string]any{"id": s.ID, "name": s.Name, "description": s.Description, "entries": len(s.Entries)}
}

// IPSet returns one IP set of the organization in the zone.
func (db *DB) IPSet(ctx context.Context, orgID, zone, id string) (IPSet, error) {
	if err := db.checkZone(zone); err != nil {
		return IPSet{}, err
	}
	var s IPSet
	err := db.read(ctx, func(tx *txn) error {
		var err error
		s, err = findIPSet(ctx, tx, orgID, zone, id)
		return err
	})
	if err != nil {
		return IPSet{}, fmt.Errorf("get IP set %s: %w", id, err)
	}
	return s, nil
}

// IPSetFilter selects IP sets of one organization and zone.
type IPSetFilter struct {
	Name string
	Page
	All bool
}

// IPSets lists the organization's IP sets in a zone, oldest first, with the
// number matching across all pages.
func (db *DB) IPSets(ctx context.Context, orgID, zone string, f IPSetFilter) ([]IPSet, int, error) {
	if err := db.checkZone(zone); err != nil {
		return nil, 0, err
	}
	var q filter
	q.and("organization_id = ? AND zone = ?", orgID, zone)
	q.nameContains("name", f.Name)
	sets, total, err := listPage(ctx, db, q, f.Page, f.All, ipSetColumns, "FROM ip_sets", "created_at, id", scanIPSet, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("list IP sets: %w", err)
	}
	return sets, total, nil
}

// UpdateIPSet changes an IP set. Groups whose rules use it are marked
// changed, so that the kernel's copies follow.
func (db *DB) UpdateIPSet(ctx context.Context, orgID, zone, id string, p IPSetPatch) (IPSet, error) {
	if err := db.checkZone(zone); err != nil {
		return IPSet{}, err
	}
	var s IPSet
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if s, err = findIPSet(ctx, tx, orgID, zone, id); err != nil {
			return err
		}
		before, old := ipSetAudit(s), s.Entries
		var fe fieldErrors
		if p.Name != nil {
			checkName(&fe, "name", *p.Name)
			s.Name = strings.TrimSpace(*p.Name)
		}
		if p.Description != nil {
			checkDescription(&fe, "description", *p.Description)
			s.Description = *p.Description
		}
		var b netipx.IPSetBuilder
		if p.Entries != nil {
			buildEntries(&fe, "entries", *p.Entries, b.AddPrefix)
		} else {
			for _, e := range s.Entries {
				b.AddPrefix(e)
			}
		}
		buildEntries(&fe, "add", p.Add, b.AddPrefix)
		buildEntries(&fe, "remove", p.Remove, b.RemovePrefix)
		s.Entries = mergedEntries(&fe, &b)
		if err := fe.err(); err != nil {
			return err
		}
		s.ModifiedAt, s.Generation = db.Now().UTC(), gen
		if _, err := tx.ExecContext(ctx, `UPDATE ip_sets SET name = ?, description = ?, entries = ?, modified_at = ?, generation = ?
			WHERE id = ?`, s.Name, s.Description, entriesText(s.Entries), formatTime(s.ModifiedAt), gen, s.ID); err != nil {
			return err
		}
		if !slices.Equal(old, s.Entries) {
			if err := touchReferrers(ctx, tx, gen, colIPSet, s.ID); err != nil {
				return err
			}
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, resource: ResourceIPSet, id: s.ID, action: "update",
			before: before, after: ipSetAudit(s)})
	})
	if err != nil {
		return IPSet{}, fmt.Errorf("update IP set %s: %w", id, err)
	}
	return s, nil
}

// DeleteIPSet deletes an IP set that no rule uses.
func (db *DB) DeleteIPSet(ctx context.Context, orgID, zone, id string) error {
	if err := db.checkZone(zone); err != nil {
		return err
	}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		s, err := findIPSet(ctx, tx, orgID, zone, id)
		if err != nil {
			return err
		}
		if err := inUse("IP set "+s.Name, s.UsedBy); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ip_sets WHERE id = ?`, id); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: orgID, zone: zone, resource: ResourceIPSet, id: id, action: "delete", before: ipSetAudit(s)})
	})
	if err != nil {
		return fmt.Errorf("delete IP set %s: %w", id, err)
	}
	return nil
}
