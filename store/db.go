// Package store keeps Rampart's state in SQLite and enforces every rule of
// the domain: one transaction per change, typed errors, and a generation
// counter that tells the enforcer what changed.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// DefaultMaxRules is the default limit of rules per group.
const DefaultMaxRules = 100

// DB is the store. Its methods are safe for concurrent use.
type DB struct {
	db *sql.DB

	// Zones are the zones objects may live in; the first is the default.
	Zones []string
	// MaxRules limits the editable rules of one group.
	MaxRules int
	// Now returns the current time; tests may fix it.
	Now func() time.Time

	mu       sync.Mutex
	watchers map[chan struct{}]struct{}

	tokenMu    sync.Mutex
	tokenCache map[string]cachedToken // by secret hash

	reads, writes atomic.Int64 // transactions run by read and change
}

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations.
func Open(ctx context.Context, path string, zones []string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	if err := createPrivate(path); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	// Pragmas in the DSN so that every pooled connection gets them.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(ON)&_pragma=synchronous(FULL)&_txlock=immediate"
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection: SQLite serialises writers anyway, and a single
	// connection avoids SQLITE_BUSY storms between our own goroutines.
	sdb.SetMaxOpenConns(1)
	db := &DB{
		db:         sdb,
		Zones:      zones,
		MaxRules:   DefaultMaxRules,
		Now:        time.Now,
		watchers:   map[chan struct{}]struct{}{},
		tokenCache: map[string]cachedToken{},
	}
	if len(db.Zones) == 0 {
		db.Zones = []string{"fr-par-1", "nl-ams-1"}
	}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	if err := db.backfillVersions(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("open store: versions: %w", err)
	}
	return db, nil
}

// createPrivate makes sure the database file exists and only its owner may
// read it: it holds session tokens and password hashes. SQLite gives the
// -wal and -shm files it creates the mode of the database file, so they
// follow. A file found readable by others is narrowed to 0600.
func createPrivate(path string) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return err
		}
	}
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if fi, err := os.Stat(side); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(side, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error { return db.db.Close() }

// DefaultZone returns the first configured zone.
func (db *DB) DefaultZone() string { return db.Zones[0] }

// HasZone reports whether zone is configured.
func (db *DB) HasZone(zone string) bool {
	for _, z := range db.Zones {
		if z == zone {
			return true
		}
	}
	return false
}

func (db *DB) checkZone(zone string) error {
	if !db.HasZone(zone) {
		return &Error{Code: CodeNotFound, Message: fmt.Sprintf("zone %q is not served here", zone), Resource: "zone", ResourceID: zone}
	}
	return nil
}

func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
		name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := db.migrateFile(ctx, name); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}

func (db *DB) migrateFile(ctx context.Context, name string) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(migrationFS, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`,
		name, formatTime(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// IntegrityCheck runs PRAGMA integrity_check and returns its verdict ("ok"
// when sound).
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	if err := db.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return res, nil
}

// Generation returns the number of changes committed so far.
func (db *DB) Generation(ctx context.Context) (int64, error) {
	var g int64
	if err := db.db.QueryRowContext(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return g, nil
}

// Watch returns a channel that receives after every committed change (the
// channel holds one pending signal at most), and a function to stop
// watching.
func (db *DB) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	db.mu.Lock()
	db.watchers[ch] = struct{}{}
	db.mu.Unlock()
	return ch, func() {
		db.mu.Lock()
		delete(db.watchers, ch)
		db.mu.Unlock()
	}
}

func (db *DB) notify() {
	db.mu.Lock()
	defer db.mu.Unlock()
	for ch := range db.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Transactions returns how many read and write transactions the store has
// run for its callers (authentication and sessions aside): a change is one
// write, and its answer at most one read.
func (db *DB) Transactions() (reads, writes int64) { return db.reads.Load(), db.writes.Load() }

// change runs fn in one write transaction with the next generation number,
// commits, and wakes the watchers. A refused change rolls back whole.
func (db *DB) change(ctx context.Context, fn func(tx *sql.Tx, gen int64) error) error {
	db.writes.Add(1)
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&gen); err != nil {
		return fmt.Errorf("next generation: %w", err)
	}
	if err := fn(tx, gen); errors.Is(err, errNoChange) {
		return nil // rolled back: the generation does not move
	} else if err != nil {
		return err
	}
	// Every change makes a version of the groups it concerns, here rather
	// than in each change, so that no change can forget to.
	if err := db.recordVersions(ctx, tx, gen); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.notify()
	return nil
}

// errNoChange, returned by a change's function, rolls it back as a
// success: the change turned out to change nothing.
var errNoChange = errors.New("no change")

// read runs fn in one read transaction, so that it sees one generation.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	db.reads.Add(1)
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// timeLayout keeps microseconds and sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func itoa(n int) string { return strconv.Itoa(n) }
