// Package testdb gives tests an empty database on the engine under test:
// a SQLite file by default, or, with RAMPART_TEST_ENGINE=postgres, a
// schema of its own in a throwaway PostgreSQL cluster (internal/pgcluster)
// that the test binary starts on first need and that Main stops and
// removes when the tests end. Without PostgreSQL's binaries a test that
// needs PostgreSQL skips, and fails under RAMPART_REQUIRE_ALL=1.
//
// It imports nothing of Rampart, so that package store's own tests can
// use it.
package testdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-fw/rampart/internal/pgcluster"
)

// EngineEnv names the engine under test: "sqlite" (the default) or
// "postgres".
const EngineEnv = "RAMPART_TEST_ENGINE"

// Engine returns the engine under test.
func Engine() string {
	if os.Getenv(EngineEnv) == "postgres" {
		return "postgres"
	}
	return "sqlite"
}

// requireAll reports whether a test may not skip for a missing tool.
func requireAll() bool { return os.Getenv("RAMPART_REQUIRE_ALL") == "1" }

// Main runs the tests and stops the cluster, if one was started; a test
// binary's TestMain calls it.
func Main(m *testing.M) {
	code := m.Run()
	stopCluster()
	os.Exit(code)
}

// DSN returns a new, empty database on the engine under test, dropped when
// the test ends: a SQLite path, or a postgres:// URL.
func DSN(tb testing.TB) string {
	tb.Helper()
	if Engine() == "postgres" {
		return Postgres(tb)
	}
	return filepath.Join(tb.TempDir(), "rampart.db")
}

// Postgres returns a postgres:// URL of a new, empty database (a schema of
// its own, which the URL's search_path selects), whatever the engine under
// test. It skips the test when PostgreSQL is not installed.
func Postgres(tb testing.TB) string {
	tb.Helper()
	c, err := startCluster()
	if err != nil {
		if requireAll() {
			tb.Fatalf("PostgreSQL is required (RAMPART_REQUIRE_ALL=1): %v", err)
		}
		tb.Skipf("skipped: no PostgreSQL: %v (scripts/install-deps.sh installs it)", err)
	}
	schema := fmt.Sprintf("t%d_%d", os.Getpid(), c.schemas.Add(1))
	ctx := context.Background()
	if err := c.exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		// Every store of the test is closed by now (cleanups run last
		// registered first).
		if err := c.exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return c.URL(database, schema)
}

// database is the tests' database in the cluster; each test has a schema
// of it.
const database = "rampart_test"

// cluster is the running throwaway PostgreSQL, with a connection to the
// tests' database that makes and drops schemas.
type cluster struct {
	*pgcluster.Cluster
	admin   *pgx.Conn
	adminMu sync.Mutex
	schemas atomic.Int64
}

// exec runs a statement on the administration connection.
func (c *cluster) exec(ctx context.Context, sql string) error {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	_, err := c.admin.Exec(ctx, sql)
	return err
}

var (
	startOnce sync.Once
	started   *cluster
	startErr  error
)

func startCluster() (*cluster, error) {
	startOnce.Do(func() {
		started, startErr = newCluster()
	})
	return started, startErr
}

func newCluster() (*cluster, error) {
	pc, err := pgcluster.Start(pgcluster.Options{})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := pc.CreateDatabase(ctx, database); err != nil {
		pc.Stop()
		return nil, err
	}
	admin, err := pgx.Connect(ctx, pc.URL(database, ""))
	if err != nil {
		pc.Stop()
		return nil, fmt.Errorf("connect to %s: %w", database, err)
	}
	return &cluster{Cluster: pc, admin: admin}, nil
}

// stopCluster stops the cluster if one was started; none starts after.
func stopCluster() {
	startOnce.Do(func() { startErr = errors.New("the tests have ended") })
	if started != nil {
		started.admin.Close(context.Background())
		started.Stop()
	}
}
