package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresEngine is PostgreSQL through pgx: database/sql over pgx's
// stdlib driver, so that the store's transactions are the same code on
// both engines, and one plain pgx connection that LISTENs.
type postgresEngine struct {
	cfg *pgx.ConnConfig
}

// Pool sizes: a console's requests are short, and many consoles share
// one server's max_connections (100 by default).
const (
	postgresMaxConns  = 16
	postgresIdleConns = 4
)

// migrationLockKey is the advisory lock that consoles starting at once
// on an empty database take in turn to migrate it ("Ramp").
const migrationLockKey = 0x52616d70

func openPostgres(ctx context.Context, dsn string) (engine, *sql.DB, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open store: %w", err)
	}
	// Named in pg_stat_activity, unless the URL names it.
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "rampart"
	}
	db := stdlib.OpenDB(*cfg.Copy())
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(postgresIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("open store on PostgreSQL %s: %w", cfg.Host, err)
	}
	return &postgresEngine{cfg: cfg}, db, db, nil
}

// connectTimeout bounds one attempt at the listening connection.
const connectTimeout = 30 * time.Second

func (e *postgresEngine) connectListener(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	cfg := e.cfg.Copy()
	cfg.RuntimeParams["application_name"] += " listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channelChange+"; LISTEN "+channelRevocation); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

func closeQuietly(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

// listen waits for notifications and passes them on. The first
// connection is made before ready is told, so that an open store hears
// every change committed after Open returns. A lost connection is made
// again; what was announced meanwhile is lost, so the watchers are woken
// and the token cache checked once it is back.
func (e *postgresEngine) listen(ctx context.Context, ready chan<- error, onNotice func(channel, payload string)) {
	conn, err := e.connectListener(ctx)
	ready <- err
	if err != nil {
		return
	}
	defer func() {
		if conn != nil {
			closeQuietly(conn)
		}
	}()
	backoff := 100 * time.Millisecond
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			c, err := e.connectListener(ctx)
			if err != nil {
				continue
			}
			conn, backoff = c, 100*time.Millisecond
			onNotice(channelChange, "")
			onNotice(channelRevocation, "")
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			closeQuietly(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			continue
		}
		onNotice(n.Channel, n.Payload)
	}
}

func (*postgresEngine) name() string               { return "postgres" }
func (*postgresEngine) rebind(query string) string { return numbered(query) }

// The columns are COLLATE "C" (see the migrations); the parameter is made
// so too, so that lower() folds ASCII letters only, as SQLite's does.
func (*postgresEngine) containsFold(column string) string {
	return `strpos(lower(` + column + ` COLLATE "C"), lower(CAST(? AS TEXT) COLLATE "C")) > 0`
}

// equalFold matches the expression of the unique index users_email_fold.
func (*postgresEngine) equalFold(column string) string {
	return `lower(` + column + ` COLLATE "C") = lower(CAST(? AS TEXT) COLLATE "C")`
}

func (*postgresEngine) jsonListHas(column string) string {
	return "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST(" + column + " AS jsonb)) AS e (value) WHERE e.value = ?)"
}

func (*postgresEngine) lockRows() string   { return " FOR UPDATE" }
func (*postgresEngine) skipLocked() string { return " FOR UPDATE SKIP LOCKED" }

// Writes run in READ COMMITTED whatever the database's default: the
// generation row lock orders changes, and each statement after it sees
// what committed before.
func (*postgresEngine) readTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
}
func (*postgresEngine) writeTx() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}

// announce sends the hint with pg_notify inside the transaction:
// PostgreSQL delivers it when, and only if, the transaction commits.
func (*postgresEngine) announce(ctx context.Context, tx *txn, channel, payload string) error {
	_, err := tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, channel, payload)
	return err
}

func (*postgresEngine) classify(err error) driverError {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return driverError{}
	}
	switch pe.Code {
	case "23505": // unique_violation
		// Detail reads "Key (interface)=(vnet1) already exists.": the same
		// "table.column" as SQLite's message names.
		key := pe.ConstraintName
		if _, rest, ok := strings.Cut(pe.Detail, "Key ("); ok {
			if cols, _, ok := strings.Cut(rest, ")="); ok {
				key = pe.TableName + "." + cols
			}
		}
		return driverError{kind: errUnique, unique: key}
	case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
		return driverError{kind: errRetry}
	}
	return driverError{}
}

func (*postgresEngine) migrationDir() string { return "migrations/postgres" }

// lockMigrations holds a session advisory lock on conn: consoles started
// together on an empty database migrate it one after the other.
func (*postgresEngine) lockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return nil, err
	}
	return func() {
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockKey)
	}, nil
}

func (*postgresEngine) tables(ctx context.Context, q querier) ([]table, error) {
	names, err := queryStrings(ctx, q, `SELECT table_name::text FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		return nil, err
	}
	tables := make([]table, len(names))
	for i, name := range names {
		tables[i].name = name
		if tables[i].columns, err = queryStrings(ctx, q, `SELECT column_name::text FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`, name); err != nil {
			return nil, err
		}
		if tables[i].references, err = queryStrings(ctx, q, `SELECT DISTINCT r.relname::text FROM pg_constraint c
			JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid
			JOIN pg_namespace n ON n.oid = t.relnamespace
			WHERE c.contype = 'f' AND t.relname = $1 AND n.nspname = current_schema() ORDER BY 1`, name); err != nil {
			return nil, err
		}
		if tables[i].key, err = queryStrings(ctx, q, `SELECT a.attname::text FROM pg_index i
			JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
			JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
			WHERE i.indisprimary AND t.relname = $1 AND n.nspname = current_schema()`, name); err != nil {
			return nil, err
		}
		sort.Strings(tables[i].key)
	}
	return tables, nil
}

// afterCopy moves every sequence (events.id's) past the largest value
// copied in, so that the next row does not take a copied row's ID.
func (*postgresEngine) afterCopy(ctx context.Context, tx *txn, _ []table) error {
	rows, err := tx.QueryContext(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL`)
	if err != nil {
		return err
	}
	type serial struct{ table, column string }
	var serials []serial
	for rows.Next() {
		var s serial
		if err := rows.Scan(&s.table, &s.column); err != nil {
			rows.Close()
			return err
		}
		serials = append(serials, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, s := range serials {
		if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence(?, ?),
			COALESCE((SELECT max(`+quoteIdent(s.column)+`) FROM `+quoteIdent(s.table)+`), 0) + 1, false)`,
			quoteIdent(s.table), s.column); err != nil {
			return fmt.Errorf("sequence of %s.%s: %w", s.table, s.column, err)
		}
	}
	return nil
}

func (*postgresEngine) integrityCheck(ctx context.Context, q querier) (string, error) {
	var res string
	err := q.QueryRowContext(ctx, `SELECT 'ok'`).Scan(&res)
	return res, err
}

func (*postgresEngine) backup(context.Context, querier, string) error {
	return errors.New("back up a PostgreSQL database with pg_dump (see the README)")
}

// quoteIdent quotes a name read from the schema for use as an identifier.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
