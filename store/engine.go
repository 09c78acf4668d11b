package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"
)

// An engine is what differs between the databases the store runs on:
// SQLite (engine_sqlite.go) and PostgreSQL (engine_postgres.go). Domain
// rules and SQL are written once, with ? placeholders; an engine rewrites
// the placeholders for its driver, supplies the few fragments of SQL that
// no common form covers, and says what its driver's errors mean. It stays
// unexported inside package store, as kine keeps its dialects beside its
// generic SQL: every statement the store runs is in this package, and an
// engine is only worth its name next to them.
type engine interface {
	// name is "sqlite" or "postgres".
	name() string
	// rebind rewrites a statement written with ? placeholders for the
	// driver.
	rebind(query string) string

	// containsFold is a condition: column holds the parameter, letters
	// compared without case (ASCII only, as SQLite's lower() folds).
	containsFold(column string) string
	// equalFold is a condition: column equals the parameter without case
	// (ASCII only), as a COLLATE NOCASE column compares in SQLite.
	equalFold(column string) string
	// jsonListHas is a condition: the JSON list of strings in column
	// holds the parameter.
	jsonListHas(column string) string
	// lockRows ends a SELECT whose rows stay locked until the transaction
	// ends; skipLocked one that passes over rows another transaction
	// holds. SQLite needs neither: its writers are serialised whole.
	lockRows() string
	skipLocked() string

	// readTx and writeTx are the options of the store's read and write
	// transactions.
	readTx() *sql.TxOptions
	writeTx() *sql.TxOptions
	// announce tells other processes on the same database, from inside
	// the transaction, that it changed what channel names (payload: the
	// new generation, or ""); the hint is delivered when the transaction
	// commits.
	announce(ctx context.Context, tx *txn, channel, payload string) error

	// classify says what a driver's error means to the store.
	classify(err error) driverError

	// migrationDir is the folder of migrations/ holding the engine's
	// numbered files; lockMigrations keeps other processes from migrating
	// the same database at the same time, until unlock.
	migrationDir() string
	lockMigrations(ctx context.Context, conn *sql.Conn) (unlock func(), err error)

	// tables describes every table of the database, for copies.
	tables(ctx context.Context, q querier) ([]table, error)
	// afterCopy brings what the engine keeps beside the rows (such as
	// PostgreSQL's sequences) in line with rows copied in.
	afterCopy(ctx context.Context, tx *txn, tables []table) error
	// integrityCheck checks the database's storage and returns "ok" when
	// sound.
	integrityCheck(ctx context.Context, q querier) (string, error)
	// backup writes a consistent copy of the database to a new file.
	backup(ctx context.Context, q querier, to string) error

	// listen runs until ctx ends, calling onNotice with the channel and
	// payload of every announcement (its own process's included), and
	// closes what it used. It sends on ready once it listens, or the
	// error that kept it from starting (and returns). Engines without
	// notifications send nil and return: the periodic check finds the
	// changes.
	listen(ctx context.Context, ready chan<- error, onNotice func(channel, payload string))
}

// Channels of announce.
const (
	channelChange     = "rampart_change"     // the generation moved
	channelRevocation = "rampart_revocation" // a credential was revoked
)

// driverError is a driver's error in the store's terms.
type driverError struct {
	kind errKind
	// unique names the violated unique key as "table.column" (SQLite's
	// own wording), with errUnique.
	unique string
}

type errKind int

const (
	errOther  errKind = iota
	errUnique         // a unique index refused the row
	errRetry          // a serialization failure, a deadlock or a lock timeout: the same work may succeed again
)

// table is one table of the schema, as a copy needs it.
type table struct {
	name       string
	columns    []string
	references []string // tables its foreign keys point to
	key        []string // its primary key's columns, by name; none: the whole row
}

// querier is what reads the schema: a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn is a transaction of the store. Every statement of the store goes
// through a txn or through DB's exec, query and queryRow, which is where
// placeholders are rewritten for the engine and prepared statements
// reused.
type txn struct {
	tx *sql.Tx
	e  engine

	stmts *statements          // of the transaction's pool; nil: none
	bound map[string]*sql.Stmt // cached statements bound to tx
	busy  map[string]bool      // bound statements whose rows are open
}

// prepared returns query's statement bound to the transaction when it is
// cached and no rows of it are open, else nil.
func (t *txn) prepared(ctx context.Context, query string) *sql.Stmt {
	if t.busy[query] {
		return nil
	}
	if st := t.bound[query]; st != nil {
		return st
	}
	ps := t.stmts.get(query)
	if ps == nil {
		return nil
	}
	if t.bound == nil {
		t.bound = map[string]*sql.Stmt{}
	}
	st := t.tx.StmtContext(ctx, ps)
	t.bound[query] = st
	return st
}

// ExecContext runs a statement written with ? placeholders.
func (t *txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q := t.e.rebind(query)
	if st := t.prepared(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, q, args...)
}

// QueryContext runs a query written with ? placeholders.
func (t *txn) QueryContext(ctx context.Context, query string, args ...any) (*rows, error) {
	q := t.e.rebind(query)
	if st := t.prepared(ctx, q); st != nil {
		r, err := st.QueryContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		if t.busy == nil {
			t.busy = map[string]bool{}
		}
		t.busy[q] = true
		return &rows{Rows: r, release: func() { delete(t.busy, q) }}, nil
	}
	r, err := t.tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return &rows{Rows: r}, nil
}

// QueryRowContext runs a query of one row written with ? placeholders.
func (t *txn) QueryRowContext(ctx context.Context, query string, args ...any) *row {
	r, err := t.QueryContext(ctx, query, args...)
	return &row{rows: r, err: err}
}

// numbered rewrites ? placeholders as $1, $2…, leaving quoted text and
// identifiers alone (kine's q(sql, param, numbered), with quotes minded).
func numbered(query string) string {
	if strings.IndexByte(query, '?') < 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// retryAfterConflict is the answer to a change that met another one in
// the database (a serialization failure or a deadlock): nothing was
// written, and the same request may simply be sent again.
func retryAfterConflict() *Error {
	return &Error{Code: CodeConflict, Message: "the change met another one made at the same time and was not applied: try again"}
}

// minDuration keeps a configured period sane.
func minDuration(d, floor time.Duration) time.Duration {
	if d < floor {
		return floor
	}
	return d
}
