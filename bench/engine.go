package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/rampart-fw/rampart/internal/pgcluster"
	"github.com/rampart-fw/rampart/store"
)

// Engine is one of the store's engines, which the benchmarks compare side
// by side: it makes empty databases for them.
type Engine struct {
	Name   string // "SQLite" or "PostgreSQL"
	Detail string // how it is set up, for the report
	newDB  func(ctx context.Context) (string, error)
}

// NewDSN returns the DSN of a new, empty database of the engine: a SQLite
// path or a postgres:// URL.
func (e Engine) NewDSN(ctx context.Context) (string, error) { return e.newDB(ctx) }

// SQLite is the engine of files in dir, as `rampart serve` opens them
// (WAL, synchronous(FULL): a commit returns once it is on the disk).
func SQLite(dir string) Engine {
	var n atomic.Int64
	return Engine{Name: "SQLite", Detail: "a file, WAL, synchronous(FULL)", newDB: func(context.Context) (string, error) {
		d := filepath.Join(dir, fmt.Sprintf("sqlite-%d", n.Add(1)))
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
		return filepath.Join(d, "rampart.db"), nil
	}}
}

// Postgres is the engine of databases made in c, a cluster this run
// started; version is the server's, for the report.
func Postgres(c *pgcluster.Cluster, version string) Engine {
	var n atomic.Int64
	detail := "PostgreSQL " + version + " on this machine, over a unix socket"
	if c.Durable() {
		detail += ", fsync and synchronous_commit on (a commit returns once its WAL is on the disk)"
	} else {
		detail += ", fsync off"
	}
	return Engine{Name: "PostgreSQL", Detail: detail, newDB: func(ctx context.Context) (string, error) {
		name := fmt.Sprintf("bench_%d", n.Add(1))
		if err := c.CreateDatabase(ctx, name); err != nil {
			return "", err
		}
		return c.URL(name, ""), nil
	}}
}

// CopyTo returns the dataset copied into a new database of e (as `rampart
// db copy` does), compared row by row with the original: the same rows,
// IDs and token on both engines, so that their answers are the same
// bytes. The copy's store is opened anew after the copy, as a process
// starting on it would.
func (ds *Dataset) CopyTo(ctx context.Context, e Engine) (*Dataset, string, error) {
	dsn, err := e.NewDSN(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", e.Name, err)
	}
	db, err := store.Open(ctx, dsn, ds.DB.Zones)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", e.Name, err)
	}
	if _, err := store.Copy(ctx, ds.DB, db); err != nil {
		db.Close()
		return nil, "", fmt.Errorf("copy the dataset to %s: %w", e.Name, err)
	}
	if err := store.Compare(ctx, ds.DB, db); err != nil {
		db.Close()
		return nil, "", fmt.Errorf("copy the dataset to %s: %w", e.Name, err)
	}
	if err := db.Close(); err != nil {
		return nil, "", err
	}
	if db, err = store.Open(ctx, dsn, ds.DB.Zones); err != nil {
		return nil, "", fmt.Errorf("%s: %w", e.Name, err)
	}
	cp := *ds
	cp.DB = db
	return &cp, dsn, nil
}
