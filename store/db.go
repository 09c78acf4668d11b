// Package store keeps Rampart's state and enforces every rule of the
// domain: one transaction per change, typed errors, and a generation
// counter that tells the enforcer what changed. It runs on SQLite, a file
// beside the binary, or on PostgreSQL, where several consoles share one
// database and act as one.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// migrationFS holds the numbered migrations of each engine, one folder
// each with the same numbers.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// DefaultMaxRules is the default limit of rules per group.
const DefaultMaxRules = 100

// DB is the store. Its methods are safe for concurrent use, and so is one
// database shared by several processes: each change is one transaction,
// and what a process keeps in memory (the watchers' generation, the token
// cache) follows what the others commit.
type DB struct {
	// w runs changes and every other write; r runs reads. On SQLite w is
	// one connection (SQLite has one writer at a time anyway) and r a pool
	// of read-only connections, so that reads never wait for a write; on
	// PostgreSQL both are the same pool.
	w, r *sql.DB
	e    engine
	// ws and rs are the statements prepared on w and r (SQLite only).
	ws, rs *statements

	// Zones are the zones objects may live in; the first is the default.
	Zones []string
	// MaxRules limits the editable rules of one group.
	MaxRules int
	// Now returns the current time; tests may fix it.
	Now func() time.Time

	mu       sync.Mutex
	watchers map[chan struct{}]struct{}
	// seen is the newest generation the watchers were woken for.
	seen atomic.Int64

	tokens tokenCache

	logWatch signal // woken after each write of log entries (WatchLog)

	reads, writes atomic.Int64 // transactions run by read and change
	lastSweep     atomic.Int64 // unix nanoseconds of the last sweep of full throttle buckets

	stop context.CancelFunc // ends the background work
	done sync.WaitGroup
}

// DefaultCheckInterval is how often a store reads the generation to find
// changes that other processes made and no notification announced.
const DefaultCheckInterval = time.Second

// An Option changes how Open opens the store.
type Option func(*options)

type options struct {
	checkInterval time.Duration
}

// WithCheckInterval sets how often the store reads the generation to find
// changes made by other processes (DefaultCheckInterval). On PostgreSQL a
// notification announces each change at once, and the check only bounds
// what a lost notification costs; tests set it long to show that.
func WithCheckInterval(d time.Duration) Option {
	return func(o *options) { o.checkInterval = d }
}

// IsPostgres reports whether dsn names a PostgreSQL database
// (postgres://… or postgresql://…) rather than a SQLite file.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the store named by dsn, a SQLite file (created if needed) or
// a postgres:// URL, and applies pending migrations.
func Open(ctx context.Context, dsn string, zones []string, opts ...Option) (*DB, error) {
	o := options{checkInterval: DefaultCheckInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if dsn == "" {
		return nil, errors.New("open store: empty path")
	}
	var (
		e    engine
		w, r *sql.DB
		err  error
	)
	if IsPostgres(dsn) {
		e, w, r, err = openPostgres(ctx, dsn)
	} else {
		e, w, r, err = openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	db := &DB{
		w: w, r: r, e: e,
		Zones:    zones,
		MaxRules: DefaultMaxRules,
		Now:      time.Now,
		watchers: map[chan struct{}]struct{}{},
		tokens:   tokenCache{m: map[string]cachedToken{}},
	}
	if len(db.Zones) == 0 {
		db.Zones = []string{"fr-par-1", "nl-ams-1"}
	}
	bg, stop := context.WithCancel(context.Background())
	db.stop = stop
	if e.name() == "sqlite" {
		db.ws, db.rs = newStatements(w), newStatements(r)
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// Listening starts before the generation is read: a change committed
	// in between is heard, not missed.
	ready := make(chan error, 1)
	db.done.Add(1)
	go func() {
		defer db.done.Done()
		db.e.listen(bg, ready, db.noticed)
	}()
	if err := <-ready; err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: listen: %w", err)
	}
	gen, err := db.Generation(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	db.seen.Store(gen)
	db.done.Add(1)
	go func() {
		defer db.done.Done()
		db.checkLoop(bg, minDuration(o.checkInterval, 10*time.Millisecond))
	}()
	if err := db.backfillVersions(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: versions: %w", err)
	}
	return db, nil
}

// Close stops the store's background work and closes the database.
func (db *DB) Close() error {
	db.stop()
	db.done.Wait()
	db.ws.close()
	db.rs.close()
	var err error
	if db.r != db.w {
		err = db.r.Close()
	}
	return errors.Join(err, db.w.Close())
}

// Engine returns "sqlite" or "postgres".
func (db *DB) Engine() string { return db.e.name() }

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

// migrate applies the engine's migrations not applied yet, each in its own
// transaction, on one connection that holds the engine's migration lock.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := db.e.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer unlock()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
		name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	files, err := migrationFiles(db.e)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, file := range files {
		if err := db.migrateFile(ctx, conn, file); err != nil {
			return fmt.Errorf("migrate %s: %w", file, err)
		}
	}
	return nil
}

// migrationFiles lists the engine's migrations in order.
func migrationFiles(e engine) ([]string, error) {
	files, err := fs.Glob(migrationFS, e.migrationDir()+"/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// migrationName is how a migration is recorded: "migrations/001_initial.sql",
// the path it had before the engines had a folder each, so that a database
// migrated by an earlier release is not migrated again, and so that both
// engines record the same names.
func migrationName(file string) string { return "migrations/" + path.Base(file) }

func (db *DB) migrateFile(ctx context.Context, conn *sql.Conn, file string) error {
	sqltx, err := conn.BeginTx(ctx, db.e.writeTx())
	if err != nil {
		return err
	}
	defer sqltx.Rollback()
	tx := &txn{tx: sqltx, e: db.e}
	name := migrationName(file)
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	body, err := fs.ReadFile(migrationFS, file)
	if err != nil {
		return err
	}
	if _, err := sqltx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`,
		name, formatTime(time.Now())); err != nil {
		return err
	}
	return sqltx.Commit()
}

// IntegrityCheck checks the database's storage and returns its verdict
// ("ok" when sound): PRAGMA integrity_check on SQLite; on PostgreSQL,
// whose server checks its own pages and WAL, "ok" once it answers.
func (db *DB) IntegrityCheck(ctx context.Context) (string, error) {
	res, err := db.e.integrityCheck(ctx, db.r)
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return res, nil
}

// Generation returns the number of changes committed so far.
func (db *DB) Generation(ctx context.Context) (int64, error) {
	var g int64
	if err := db.queryRow(ctx, `SELECT value FROM generation WHERE id = 1`).Scan(&g); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return g, nil
}

// Watch returns a channel that receives after every committed change, by
// this process or another on the same database (the channel holds one
// pending signal at most), and a function to stop watching.
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

// saw records that the watchers were woken for generation gen, and
// reports whether it is newer than any they were woken for before.
func (db *DB) saw(gen int64) bool {
	for {
		old := db.seen.Load()
		if gen <= old {
			return false
		}
		if db.seen.CompareAndSwap(old, gen) {
			return true
		}
	}
}

// noticed handles an announcement. A notification is a hint, not a
// count: the watchers wake and read what there is to read, unless they
// were woken for that generation already (this process's own changes
// come back too).
func (db *DB) noticed(channel, payload string) {
	switch channel {
	case channelChange:
		if gen, err := strconv.ParseInt(payload, 10, 64); err != nil || db.saw(gen) {
			db.notify()
		}
	case channelRevocation:
		db.tokens.expire()
	}
}

// checkLoop reads the generation every interval and wakes the watchers
// when it moved without them being told: a change by another process whose
// notification was lost, or on an engine without notifications.
func (db *DB) checkLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if gen, err := db.Generation(ctx); err == nil && db.saw(gen) {
			db.notify()
		}
	}
}

// Transactions returns how many read and write transactions the store has
// run for its callers (authentication and sessions aside): a change is one
// write, and its answer at most one read.
func (db *DB) Transactions() (reads, writes int64) { return db.reads.Load(), db.writes.Load() }

// change runs fn in one write transaction with the next generation number,
// commits, and wakes the watchers of every process. A refused change
// rolls back whole.
//
// Taking the next generation is the transaction's first statement: it
// locks the generation row until commit, so that changes run one after
// the other on either engine (SQLite's single writer; PostgreSQL's row
// lock under READ COMMITTED, where each later statement of the change sees
// everything committed before it), and generations are gapless and in
// commit order.
func (db *DB) change(ctx context.Context, fn func(tx *txn, gen int64) error) error {
	db.writes.Add(1)
	sqltx, err := db.w.BeginTx(ctx, db.e.writeTx())
	if err != nil {
		return db.driverError(fmt.Errorf("begin: %w", err))
	}
	defer sqltx.Rollback()
	tx := &txn{tx: sqltx, e: db.e, stmts: db.ws}
	var gen int64
	if err := tx.QueryRowContext(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&gen); err != nil {
		return db.driverError(fmt.Errorf("next generation: %w", err))
	}
	if err := fn(tx, gen); errors.Is(err, errNoChange) {
		return nil // rolled back: the generation does not move
	} else if err != nil {
		return db.driverError(err)
	}
	// Every change makes a version of the groups it concerns, here rather
	// than in each change, so that no change can forget to.
	if err := db.recordVersions(ctx, tx, gen); err != nil {
		return db.driverError(err)
	}
	if err := db.e.announce(ctx, tx, channelChange, strconv.FormatInt(gen, 10)); err != nil {
		return db.driverError(fmt.Errorf("announce: %w", err))
	}
	if err := sqltx.Commit(); err != nil {
		return db.driverError(fmt.Errorf("commit: %w", err))
	}
	db.saw(gen)
	db.notify()
	return nil
}

// errNoChange, returned by a change's function, rolls it back as a
// success: the change turned out to change nothing.
var errNoChange = errors.New("no change")

// read runs fn in one read transaction, so that it sees one generation
// (REPEATABLE READ on PostgreSQL; SQLite's transactions are snapshots).
func (db *DB) read(ctx context.Context, fn func(tx *txn) error) error {
	db.reads.Add(1)
	sqltx, err := db.r.BeginTx(ctx, db.e.readTx())
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqltx.Rollback()
	return fn(&txn{tx: sqltx, e: db.e, stmts: db.rs})
}

// write runs fn in one write transaction that is not a change: the
// generation does not move (sessions, the sign-in throttle, and the
// state that agents report).
func (db *DB) write(ctx context.Context, fn func(tx *txn) error) error {
	db.writes.Add(1)
	sqltx, err := db.w.BeginTx(ctx, db.e.writeTx())
	if err != nil {
		return db.driverError(fmt.Errorf("begin: %w", err))
	}
	defer sqltx.Rollback()
	if err := fn(&txn{tx: sqltx, e: db.e, stmts: db.ws}); err != nil {
		return db.driverError(err)
	}
	return db.driverError(sqltx.Commit())
}

// driverError turns what the driver reports into the store's terms, for
// both engines in one place: a change that met another one in the
// database may be sent again.
func (db *DB) driverError(err error) error {
	if err == nil {
		return nil
	}
	if db.e.classify(err).kind == errRetry {
		return fmt.Errorf("%w: %w", retryAfterConflict(), err)
	}
	return err
}

// uniqueViolation names the unique key err violates as "table.column",
// or "".
func (db *DB) uniqueViolation(err error) string {
	if err == nil {
		return ""
	}
	if d := db.e.classify(err); d.kind == errUnique {
		return d.unique
	}
	return ""
}

// exec, query and queryRow run one statement outside a transaction:
// writes on the writer, reads on the readers.
func (db *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q := db.e.rebind(query)
	if st := db.ws.get(q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.w.ExecContext(ctx, q, args...)
}

func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q := db.e.rebind(query)
	if st := db.rs.get(q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.r.QueryContext(ctx, q, args...)
}

func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	q := db.e.rebind(query)
	if st := db.rs.get(q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.r.QueryRowContext(ctx, q, args...)
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
