package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteEngine is SQLite through modernc.org/sqlite: the SQL the store is
// written in, with nothing to rewrite.
type sqliteEngine struct {
	path string // the database file
}

// openSQLite opens the file at path: one writer connection, and a pool of
// read-only connections beside it. In WAL mode readers read the last
// committed state while a write is under way, so a page view or an API
// read never queues behind a change.
func openSQLite(ctx context.Context, path string) (engine, *sql.DB, *sql.DB, error) {
	if err := createPrivate(path); err != nil {
		return nil, nil, nil, fmt.Errorf("open store: %w", err)
	}
	// Pragmas in the DSN so that every pooled connection gets them.
	const pragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_pragma=cache_size(-32768)"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer: SQLite serialises writers anyway, and a single
	// connection avoids SQLITE_BUSY storms between our own goroutines.
	w.SetMaxOpenConns(1)
	// Connect the writer now, so that the file is in WAL mode before any
	// reader opens it. Switching a file to WAL takes a lock that SQLite
	// does not wait for (busy_timeout does not apply): processes opening
	// one new file together (consoles started at once) try again.
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		err := w.PingContext(ctx)
		if err == nil {
			break
		}
		if (sqliteEngine{}).classify(err).kind != errRetry || wait > time.Second {
			w.Close()
			return nil, nil, nil, fmt.Errorf("open store %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			w.Close()
			return nil, nil, nil, fmt.Errorf("open store %s: %w", path, err)
		case <-time.After(wait):
		}
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, nil, nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// Readers stay open: a reopened connection runs its pragmas again
	// and starts with an empty page cache.
	readers := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	return sqliteEngine{path: path}, w, r, nil
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

func (sqliteEngine) name() string               { return "sqlite" }
func (sqliteEngine) rebind(query string) string { return query }

func (sqliteEngine) containsFold(column string) string {
	return "instr(lower(" + column + "), lower(?)) > 0"
}

func (sqliteEngine) equalFold(column string) string { return column + " = ? COLLATE NOCASE" }

func (sqliteEngine) jsonListHas(column string) string {
	return "EXISTS (SELECT 1 FROM json_each(" + column + ") WHERE value = ?)"
}

func (sqliteEngine) lockRows() string   { return "" }
func (sqliteEngine) skipLocked() string { return "" }

func (sqliteEngine) readTx() *sql.TxOptions  { return &sql.TxOptions{ReadOnly: true} }
func (sqliteEngine) writeTx() *sql.TxOptions { return nil } // BEGIN IMMEDIATE, from the DSN

// announce has no one to tell: processes sharing a SQLite file find
// changes with their periodic check.
func (sqliteEngine) announce(context.Context, *txn, string, string) error { return nil }

func (sqliteEngine) classify(err error) driverError {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return driverError{}
	}
	switch code := se.Code(); {
	case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		// "constraint failed: UNIQUE constraint failed: servers.interface (2067)"
		msg := se.Error()
		key := msg[strings.LastIndex(msg, "failed: ")+len("failed: "):]
		if i := strings.Index(key, " ("); i >= 0 {
			key = key[:i]
		}
		return driverError{kind: errUnique, unique: key}
	case code&0xff == sqlite3.SQLITE_BUSY || code&0xff == sqlite3.SQLITE_LOCKED:
		return driverError{kind: errRetry}
	}
	return driverError{}
}

func (sqliteEngine) migrationDir() string { return "migrations/sqlite" }

// lockMigrations needs no lock: each migration is a BEGIN IMMEDIATE
// transaction that looks for its own record first, so two processes
// migrating one file take turns.
func (sqliteEngine) lockMigrations(context.Context, *sql.Conn) (func(), error) { return func() {}, nil }

func (sqliteEngine) tables(ctx context.Context, q querier) ([]table, error) {
	names, err := queryStrings(ctx, q, `SELECT name FROM sqlite_schema
		WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	tables := make([]table, len(names))
	for i, name := range names {
		tables[i].name = name
		if tables[i].columns, err = queryStrings(ctx, q, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, name); err != nil {
			return nil, err
		}
		if tables[i].references, err = queryStrings(ctx, q, `SELECT DISTINCT "table" FROM pragma_foreign_key_list(?) ORDER BY 1`, name); err != nil {
			return nil, err
		}
		if tables[i].key, err = queryStrings(ctx, q, `SELECT name FROM pragma_table_info(?) WHERE pk > 0`, name); err != nil {
			return nil, err
		}
		sort.Strings(tables[i].key)
	}
	return tables, nil
}

// afterCopy has nothing to do: AUTOINCREMENT follows the largest ID
// inserted.
func (sqliteEngine) afterCopy(context.Context, *txn, []table) error { return nil }

func (sqliteEngine) integrityCheck(ctx context.Context, q querier) (string, error) {
	var res string
	err := q.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}

// backup writes a consistent copy of the database with VACUUM INTO, into a
// file created empty and private first: VACUUM INTO writes into an empty
// file as it finds it. It runs on a connection of its own, a reader in
// WAL mode (the store's readers are query-only, which VACUUM INTO is
// not), so that changes go on meanwhile.
func (e sqliteEngine) backup(ctx context.Context, _ querier, to string) error {
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+e.path+"?_pragma=busy_timeout(5000)")
	if err == nil {
		_, err = db.ExecContext(ctx, `VACUUM INTO ?`, to)
		db.Close()
	}
	if err != nil {
		os.Remove(to)
	}
	return err
}

func (sqliteEngine) listen(_ context.Context, ready chan<- error, _ func(string, string)) {
	ready <- nil
}

// queryStrings runs a query of one text column.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
