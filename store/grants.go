package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/google/uuid"
)

// A Grant lets an organization bind its servers to host interfaces that
// match one of Interfaces (shell globs), and, with Local, to the host
// itself: on one host, or on every host when HostID is "". Grants may
// overlap; binding needs one that allows it.
type Grant struct {
	ID             string
	OrganizationID string
	HostID         string // "" for every host
	HostName       string // "" for every host
	Interfaces     []string
	Local          bool
	CreatedAt      time.Time
}

// Allows reports whether g lets its organization bind iface ("" for none)
// and, if local, the host itself.
func (g Grant) Allows(iface string, local bool) bool {
	if local && !g.Local {
		return false
	}
	if iface == "" {
		return true
	}
	for _, p := range g.Interfaces {
		if ok, _ := path.Match(p, iface); ok {
			return true
		}
	}
	return false
}

const grantColumns = `g.id, g.organization_id, g.host_id, COALESCE(h.name, ''), g.interfaces, g.local, g.created_at`

const grantFrom = ` FROM grants g LEFT JOIN hosts h ON h.id = g.host_id`

func scanGrant(sc scanner) (Grant, error) {
	var g Grant
	var ifaces, created string
	var local int
	if err := sc.Scan(&g.ID, &g.OrganizationID, &g.HostID, &g.HostName, &ifaces, &local, &created); err != nil {
		return Grant{}, err
	}
	g.Interfaces = decodeTags(ifaces)
	g.Local, g.CreatedAt = local == 1, parseTime(created)
	return g, nil
}

// checkPatterns checks interface globs: what interface names are made of,
// and the glob characters * ? [ ] ! ^.
func checkPatterns(fe *fieldErrors, patterns []string) {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil || p == "" || len(p) > 64 {
			fe.add("interfaces", "format", "%q is not a pattern of interface names such as tap-acme-* or vnet1?", p)
			return
		}
		for i := 0; i < len(p); i++ {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*?[]!^", rune(p[i])) {
				fe.add("interfaces", "format", "%q is not a pattern of interface names such as tap-acme-* or vnet1?", p)
				return
			}
		}
	}
}

// CreateGrant lets the organization bind interfaces matching patterns, and
// the host itself if local, on the host called hostName ("" for every
// host).
func (db *DB) CreateGrant(ctx context.Context, orgID, hostName string, patterns []string, local bool) (Grant, error) {
	var fe fieldErrors
	checkPatterns(&fe, patterns)
	if len(patterns) == 0 && !local {
		fe.add("interfaces", "required", "grant interfaces, the host itself (local), or both")
	}
	if err := fe.err(); err != nil {
		return Grant{}, err
	}
	g := Grant{ID: uuid.NewString(), OrganizationID: orgID, Interfaces: patterns, Local: local, CreatedAt: db.Now().UTC()}
	if g.Interfaces == nil {
		g.Interfaces = []string{}
	}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM organizations WHERE id = ?`, orgID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return notFound("organization", orgID)
		}
		if hostName != "" {
			h, err := findHostByName(ctx, tx, hostName)
			if ErrorCode(err) == CodeNotFound {
				return invalid("host", "constraint", "there is no host called %s", hostName)
			}
			if err != nil {
				return err
			}
			g.HostID, g.HostName = h.ID, h.Name
		}
		if err := insertGrant(ctx, tx, g); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: orgID, resource: ResourceGrant, id: g.ID, action: "create", after: g})
	})
	if err != nil {
		return Grant{}, fmt.Errorf("create grant: %w", err)
	}
	return g, nil
}

func insertGrant(ctx context.Context, tx *txn, g Grant) error {
	ifaces, _ := json.Marshal(g.Interfaces)
	_, err := tx.ExecContext(ctx, `INSERT INTO grants (id, organization_id, host_id, interfaces, local, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		g.ID, g.OrganizationID, g.HostID, string(ifaces), boolInt(g.Local), formatTime(g.CreatedAt))
	return err
}

// Grants lists the grants of an organization, or of every organization
// when orgID is "".
func (db *DB) Grants(ctx context.Context, orgID string) ([]Grant, error) {
	var grants []Grant
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if orgID == "" {
			grants, err = queryAll(ctx, tx, scanGrant, `SELECT `+grantColumns+grantFrom+` ORDER BY g.created_at, g.id`)
		} else {
			grants, err = findGrants(ctx, tx, orgID)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return grants, nil
}

func findGrants(ctx context.Context, tx *txn, orgID string) ([]Grant, error) {
	return queryAll(ctx, tx, scanGrant, `SELECT `+grantColumns+grantFrom+` WHERE g.organization_id = ? ORDER BY g.created_at, g.id`, orgID)
}

// DeleteGrant removes a grant. Bindings made under it stay enforced;
// changing them needs a grant again.
func (db *DB) DeleteGrant(ctx context.Context, id string) error {
	err := db.change(ctx, func(tx *txn, gen int64) error {
		g, err := scanGrant(tx.QueryRowContext(ctx, `SELECT `+grantColumns+grantFrom+` WHERE g.id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(ResourceGrant, id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE id = ?`, id); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{org: g.OrganizationID, resource: ResourceGrant, id: id, action: "delete", before: g})
	})
	if err != nil {
		return fmt.Errorf("delete grant %s: %w", id, err)
	}
	return nil
}

// bindingRefused is the one answer to a binding an organization may not
// make, whether it has no grant for it or another organization holds it:
// the two must read the same, or a refusal would tell what others bound.
func bindingRefused(field, what string) error {
	return &Error{Code: CodeForbidden, Resource: field,
		Message: fmt.Sprintf("this organization may not bind %s on this host: an operator grants interfaces and the host itself", what)}
}

// checkBinding refuses to bind server serverID of orgID to iface, or to
// the host itself when local, on the host hostID ("" when no host exists
// yet), unless a grant of the organization allows it and no server of
// another organization holds it. A server of the same organization that
// holds it is named, as before grants.
func checkBinding(ctx context.Context, tx *txn, orgID, serverID, hostID, iface string, local bool) error {
	if iface == "" && !local {
		return nil
	}
	grants, err := findGrants(ctx, tx, orgID)
	if err != nil {
		return err
	}
	allowed := false
	for _, g := range grants {
		if (g.HostID == "" || g.HostID == hostID) && g.Allows(iface, local) {
			allowed = true
			break
		}
	}
	field, what := "interface", "interface "+iface
	if local {
		field, what = "local", "the host itself (local)"
	}
	if !allowed {
		return bindingRefused(field, what)
	}
	cond, arg := "interface = ?", any(iface)
	if local {
		cond, arg = "local = 1", nil
	}
	args := []any{serverID, hostID, hostID}
	if arg != nil {
		args = append([]any{arg}, args...)
	}
	// Servers on the same host: their own host, or the default when they
	// name none and hostID is the default host.
	rows, err := tx.QueryContext(ctx, `SELECT organization_id FROM servers WHERE `+cond+` AND id <> ?
		AND (host_id = ? OR (host_id = '' AND ? = COALESCE((SELECT id FROM hosts WHERE is_default = 1), '')))`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var owner string
		if err := rows.Scan(&owner); err != nil {
			return err
		}
		if owner != orgID {
			return bindingRefused(field, what)
		}
		if local {
			return invalid("local", "constraint", "another server is already the local host")
		}
		return invalid("interface", "constraint", "interface %s already carries another server", iface)
	}
	return rows.Err()
}
