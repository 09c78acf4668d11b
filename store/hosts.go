package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Host is a machine whose kernel Rampart programs: the console's own, or an
// agent's. A server without a host is on the default host.
type Host struct {
	ID           string
	Name         string
	Default      bool
	CreatedAt    time.Time
	EnrolledAt   time.Time // zero: no agent has enrolled for it yet
	CertSerial   string    // the serial of its current credential, "" before enrolment
	CertNotAfter time.Time
	Report       HostReport // zero when it never reported
}

// HostReport is what a host last said of itself. Reports are not changes:
// they never move the generation.
type HostReport struct {
	LastSeen          time.Time
	Version           string
	AppliedGeneration int64 // the store generation of the last view it applied
	DriftRepairs      int64
	Error             string                 // why its last apply failed, "" when it did not
	Groups            map[string]GroupReport // by group ID
}

// GroupReport is one group as a host holds it.
type GroupReport struct {
	AppliedGeneration int64  // the group generation the host's kernel holds
	Error             string // why the group could not be applied there
}

// HostState says how a host follows the store.
type HostState string

// Host states.
const (
	HostPending HostState = "pending" // enrolled (or created), never reported
	HostReady   HostState = "ready"   // holds the view of the current generation
	HostSyncing HostState = "syncing" // a newer view is on its way
	HostError   HostState = "error"   // its last apply failed
	HostLost    HostState = "lost"    // silent for longer than the console waits
)

// HostStatus is a host with its state, as the console shows it.
type HostStatus struct {
	Host
	State  HostState
	Detail string // why, for error and lost
}

// GroupOnHost is how one host holds one group.
type GroupOnHost struct {
	HostID   string
	HostName string
	State    SyncState
	Detail   string
}

// DefaultJoinTokenTTL is how long a join token may be redeemed.
const DefaultJoinTokenTTL = time.Hour

const hostColumns = `id, name, is_default, created_at, enrolled_at, cert_serial, cert_not_after`

func scanHost(sc scanner) (Host, error) {
	var h Host
	var def int
	var created, enrolled, notAfter string
	if err := sc.Scan(&h.ID, &h.Name, &def, &created, &enrolled, &h.CertSerial, &notAfter); err != nil {
		return Host{}, err
	}
	h.Default = def == 1
	h.CreatedAt, h.EnrolledAt, h.CertNotAfter = parseTime(created), parseTime(enrolled), parseTime(notAfter)
	return h, nil
}

func checkHostName(fe *fieldErrors, name string) {
	if !checkText(fe, "name", name) {
		return
	}
	if !ValidHostName(name) {
		fe.add("name", "format", "a host name is 1 to 63 letters, digits, '.', '_' or '-'")
	}
}

// ValidHostName reports whether s may name a host: what hostnames are made
// of, so that `--host-name` can default to the machine's.
func ValidHostName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func findHostByName(ctx context.Context, tx *txn, name string) (Host, error) {
	h, err := scanHost(tx.QueryRowContext(ctx, `SELECT `+hostColumns+` FROM hosts WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Host{}, notFound(ResourceHost, name)
	}
	return h, err
}

// newJoinToken returns a random join secret and what the store keeps of it.
func newJoinToken() (secret, hash string) {
	b := make([]byte, 24)
	rand.Read(b)
	secret = base64.RawURLEncoding.EncodeToString(b)
	return secret, hashSecret(secret)
}

// CreateHost adds a host and returns it with its join secret, which is not
// kept (only its hash) and may be redeemed once, within ttl (0: an hour).
// The first host to exist becomes the default host.
func (db *DB) CreateHost(ctx context.Context, name string, ttl time.Duration) (Host, string, error) {
	name = strings.TrimSpace(name)
	var fe fieldErrors
	checkHostName(&fe, name)
	if err := fe.err(); err != nil {
		return Host{}, "", err
	}
	if ttl <= 0 {
		ttl = DefaultJoinTokenTTL
	}
	secret, hash := newJoinToken()
	now := db.Now().UTC()
	h := Host{ID: uuid.NewString(), Name: name, CreatedAt: now}
	err := db.change(ctx, func(tx *txn, gen int64) error {
		if _, err := findHostByName(ctx, tx, name); err == nil {
			return invalid("name", "constraint", "a host called %s exists already", name)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hosts`).Scan(&n); err != nil {
			return err
		}
		h.Default = n == 0
		_, err := tx.ExecContext(ctx, `INSERT INTO hosts (id, name, is_default, created_at, join_token_hash, join_token_expires)
			VALUES (?, ?, ?, ?, ?, ?)`, h.ID, h.Name, boolInt(h.Default), formatTime(now), hash, formatTime(now.Add(ttl)))
		if err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{resource: ResourceHost, id: h.ID, action: "create", after: h})
	})
	if err != nil {
		return Host{}, "", fmt.Errorf("create host %s: %w", name, err)
	}
	return h, secret, nil
}

// EnsureHost returns the host called name, creating it (without a join
// token: it is the console's own) when missing.
func (db *DB) EnsureHost(ctx context.Context, name string) (Host, error) {
	var fe fieldErrors
	checkHostName(&fe, name)
	if err := fe.err(); err != nil {
		return Host{}, err
	}
	var h Host
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if h, err = findHostByName(ctx, tx, name); err == nil {
			return errNoChange
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hosts`).Scan(&n); err != nil {
			return err
		}
		now := db.Now().UTC()
		h = Host{ID: uuid.NewString(), Name: name, Default: n == 0, CreatedAt: now, EnrolledAt: now}
		if _, err := tx.ExecContext(ctx, `INSERT INTO hosts (id, name, is_default, created_at, enrolled_at) VALUES (?, ?, ?, ?, ?)`,
			h.ID, h.Name, boolInt(h.Default), formatTime(now), formatTime(now)); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{resource: ResourceHost, id: h.ID, action: "create", after: h})
	})
	if err != nil {
		return Host{}, fmt.Errorf("ensure host %s: %w", name, err)
	}
	return h, nil
}

// NewJoinToken replaces a host's join token (an agent reinstalled, or a
// token that expired unused) and returns the new secret.
func (db *DB) NewJoinToken(ctx context.Context, name string, ttl time.Duration) (Host, string, error) {
	if ttl <= 0 {
		ttl = DefaultJoinTokenTTL
	}
	secret, hash := newJoinToken()
	var h Host
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if h, err = findHostByName(ctx, tx, name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET join_token_hash = ?, join_token_expires = ? WHERE id = ?`,
			hash, formatTime(db.Now().Add(ttl)), h.ID)
		return err
	})
	if err != nil {
		return Host{}, "", fmt.Errorf("join token for host %s: %w", name, err)
	}
	return h, secret, nil
}

// RedeemJoinToken returns the host whose join secret this is and forgets
// the secret: a token works once, and not after it expired.
func (db *DB) RedeemJoinToken(ctx context.Context, secret string) (Host, error) {
	refused := &Error{Code: CodeUnauthorized, Message: "unknown, used or expired join token"}
	if secret == "" {
		return Host{}, refused
	}
	var h Host
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var expires string
		row := tx.QueryRowContext(ctx, `SELECT `+hostColumns+`, join_token_expires FROM hosts WHERE join_token_hash = ?`, hashSecret(secret))
		var def int
		var created, enrolled, notAfter string
		err := row.Scan(&h.ID, &h.Name, &def, &created, &enrolled, &h.CertSerial, &notAfter, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return refused
		}
		if err != nil {
			return err
		}
		h.Default, h.CreatedAt = def == 1, parseTime(created)
		if !db.Now().Before(parseTime(expires)) {
			return refused
		}
		h.EnrolledAt = db.Now().UTC()
		_, err = tx.ExecContext(ctx, `UPDATE hosts SET join_token_hash = '', join_token_expires = '', enrolled_at = ? WHERE id = ?`,
			formatTime(h.EnrolledAt), h.ID)
		return err
	})
	if err != nil {
		return Host{}, fmt.Errorf("redeem join token: %w", err)
	}
	return h, nil
}

// SetHostCredential records the credential issued to a host: only a
// certificate of that serial is accepted for it from then on.
func (db *DB) SetHostCredential(ctx context.Context, hostID, serial string, notAfter time.Time) error {
	err := db.change(ctx, func(tx *txn, gen int64) error {
		res, err := tx.ExecContext(ctx, `UPDATE hosts SET cert_serial = ?, cert_not_after = ? WHERE id = ?`,
			serial, formatTime(notAfter), hostID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(ResourceHost, hostID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set credential of host %s: %w", hostID, err)
	}
	return nil
}

// RemoveHost deletes a host: its agent is refused from then on. A host that
// servers are on, or the default host while others exist, is kept.
func (db *DB) RemoveHost(ctx context.Context, name string) (Host, error) {
	var h Host
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if h, err = findHostByName(ctx, tx, name); err != nil {
			return err
		}
		var servers, hosts int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM servers WHERE host_id = ? OR (host_id = '' AND ? = 1)`,
			h.ID, boolInt(h.Default)).Scan(&servers); err != nil {
			return err
		}
		if servers > 0 {
			return conflict("%d servers are on host %s: move or remove them first", servers, name)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM hosts`).Scan(&hosts); err != nil {
			return err
		}
		if h.Default && hosts > 1 {
			return conflict("host %s is the default host: make another host the default first", name)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE host_id = ?`, h.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM hosts WHERE id = ?`, h.ID); err != nil {
			return err
		}
		return db.record(ctx, tx, gen, change{resource: ResourceHost, id: h.ID, action: "delete", before: h})
	})
	if err != nil {
		return Host{}, fmt.Errorf("remove host %s: %w", name, err)
	}
	return h, nil
}

// SetDefaultHost makes the host called name the default host: where the
// servers that name no host are.
func (db *DB) SetDefaultHost(ctx context.Context, name string) (Host, error) {
	var h Host
	err := db.change(ctx, func(tx *txn, gen int64) error {
		var err error
		if h, err = findHostByName(ctx, tx, name); err != nil {
			return err
		}
		if h.Default {
			return errNoChange
		}
		if _, err := tx.ExecContext(ctx, `UPDATE hosts SET is_default = 0 WHERE is_default = 1`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE hosts SET is_default = 1 WHERE id = ?`, h.ID); err != nil {
			return err
		}
		// Every group with a server on the default host now runs elsewhere.
		if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET generation = ? WHERE id IN
			(SELECT security_group_id FROM servers WHERE host_id = '')`, gen); err != nil {
			return err
		}
		h.Default = true
		return db.record(ctx, tx, gen, change{resource: ResourceHost, id: h.ID, action: "default", after: h})
	})
	if err != nil {
		return Host{}, fmt.Errorf("set default host %s: %w", name, err)
	}
	return h, nil
}

// Hosts returns every host, by name, with its last report.
func (db *DB) Hosts(ctx context.Context) ([]Host, error) {
	var hosts []Host
	err := db.read(ctx, func(tx *txn) error {
		var err error
		if hosts, err = queryAll(ctx, tx, scanHost, `SELECT `+hostColumns+` FROM hosts ORDER BY name`); err != nil {
			return err
		}
		reports, _, err := findReports(ctx, tx, nil)
		if err != nil {
			return err
		}
		for i := range hosts {
			hosts[i].Report = reports[hosts[i].ID]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hosts, nil
}

// Host returns one host by ID.
func (db *DB) Host(ctx context.Context, id string) (Host, error) {
	var h Host
	err := db.read(ctx, func(tx *txn) error {
		var err error
		h, err = scanHost(tx.QueryRowContext(ctx, `SELECT `+hostColumns+` FROM hosts WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(ResourceHost, id)
		}
		return err
	})
	if err != nil {
		return Host{}, fmt.Errorf("get host %s: %w", id, err)
	}
	return h, nil
}

// RecordHostReport keeps what a host says of itself, replacing its previous
// report. It is not a change: the generation does not move and no watcher
// wakes.
func (db *DB) RecordHostReport(ctx context.Context, hostID string, r HostReport) error {
	err := db.write(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO host_reports (host_id, last_seen, version, applied_generation, drift_repairs, error)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET last_seen = excluded.last_seen, version = excluded.version,
			applied_generation = excluded.applied_generation, drift_repairs = excluded.drift_repairs, error = excluded.error`,
			hostID, formatTime(r.LastSeen), r.Version, r.AppliedGeneration, r.DriftRepairs, r.Error)
		if err != nil || r.Groups == nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM host_groups WHERE host_id = ?`, hostID); err != nil {
			return err
		}
		for gid, g := range r.Groups {
			if _, err := tx.ExecContext(ctx, `INSERT INTO host_groups (host_id, group_id, applied_generation, error) VALUES (?, ?, ?, ?)`,
				hostID, gid, g.AppliedGeneration, g.Error); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record report of host %s: %w", hostID, err)
	}
	return nil
}

// HostReports returns every host's last report, with its groups, by host
// ID.
func (db *DB) HostReports(ctx context.Context) (map[string]HostReport, error) {
	out, _, err := db.HostReportsNewer(ctx, nil)
	return out, err
}

// HostReportsNewer returns, with their groups, the reports of the hosts
// whose last report is newer than known holds for them (every host that
// known lacks), and the IDs of every host with a report. A console
// refreshes its reports each second: reading only those that moved keeps
// that from reading every host's groups each time.
func (db *DB) HostReportsNewer(ctx context.Context, known map[string]time.Time) (newer map[string]HostReport, present map[string]bool, err error) {
	err = db.read(ctx, func(tx *txn) error {
		newer, present, err = findReports(ctx, tx, known)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("host reports: %w", err)
	}
	return newer, present, nil
}

func findReports(ctx context.Context, tx *txn, known map[string]time.Time) (map[string]HostReport, map[string]bool, error) {
	out := map[string]HostReport{}
	present := map[string]bool{}
	type row struct {
		id string
		r  HostReport
	}
	rows, err := queryAll(ctx, tx, func(sc scanner) (row, error) {
		var x row
		var seen string
		err := sc.Scan(&x.id, &seen, &x.r.Version, &x.r.AppliedGeneration, &x.r.DriftRepairs, &x.r.Error)
		x.r.LastSeen = parseTime(seen)
		return x, err
	}, `SELECT host_id, last_seen, version, applied_generation, drift_repairs, error FROM host_reports`)
	if err != nil {
		return nil, nil, err
	}
	var ids []any
	for _, x := range rows {
		present[x.id] = true
		if k, ok := known[x.id]; ok && !x.r.LastSeen.After(k) {
			continue
		}
		x.r.Groups = map[string]GroupReport{}
		out[x.id] = x.r
		ids = append(ids, x.id)
	}
	if len(ids) == 0 {
		return out, present, nil
	}
	type grow struct {
		host, group string
		g           GroupReport
	}
	groups, err := queryAll(ctx, tx, func(sc scanner) (grow, error) {
		var x grow
		return x, sc.Scan(&x.host, &x.group, &x.g.AppliedGeneration, &x.g.Error)
	}, `SELECT host_id, group_id, applied_generation, error FROM host_groups WHERE host_id IN (`+placeholders(len(ids))+`)`, ids...)
	if err != nil {
		return nil, nil, err
	}
	for _, x := range groups {
		if r, ok := out[x.host]; ok {
			r.Groups[x.group] = x.g
		}
	}
	return out, present, nil
}

// hostName returns the name of host id, "" for "".
func hostName(ctx context.Context, tx *txn, id string) (string, error) {
	if id == "" {
		return "", nil
	}
	var name string
	err := tx.QueryRowContext(ctx, `SELECT name FROM hosts WHERE id = ?`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return name, err
}
