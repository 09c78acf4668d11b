// Package testdb gives tests an empty database on the engine under test:
// a SQLite file by default, or, with RAMPART_TEST_ENGINE=postgres, a
// schema of its own in a throwaway PostgreSQL cluster that the test binary
// starts on first need (initdb and postgres in a temporary folder, a unix
// socket, no TCP) and that Main stops and removes when the tests end.
// Nothing is downloaded: PostgreSQL's binaries are looked for in PATH and
// in Debian's /usr/lib/postgresql/*/bin. Without them a test that needs
// PostgreSQL skips, and fails under RAMPART_REQUIRE_ALL=1.
//
// It imports nothing of Rampart, so that package store's own tests can
// use it.
package testdb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	return c.url(schema)
}

// cluster is the running throwaway PostgreSQL.
type cluster struct {
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	admin   *pgx.Conn
	adminMu sync.Mutex
	schemas atomic.Int64
}

const (
	database = "rampart_test"
	role     = "rampart"
	port     = 5432 // names the socket file only: no TCP
)

// exec runs a statement on the administration connection.
func (c *cluster) exec(ctx context.Context, sql string) error {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	_, err := c.admin.Exec(ctx, sql)
	return err
}

func (c *cluster) url(schema string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}
	if schema != "" {
		q.Set("search_path", schema)
	}
	return "postgres://" + role + "@/" + database + "?" + q.Encode()
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

// stopCluster stops the cluster if one was started; none starts after.
func stopCluster() {
	startOnce.Do(func() { startErr = errors.New("the tests have ended") })
	if started != nil {
		started.stop()
	}
}

// binDir finds the folder of initdb and postgres: PATH first, then
// Debian's versioned folders, newest first.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); fileExists(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if fileExists(filepath.Join(dir, "initdb")) && fileExists(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found in PATH or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newCluster makes a cluster in a temporary folder and starts it. initdb
// and postgres refuse to run as root: as root they run as the postgres
// user, in a folder it owns.
func newCluster() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run initdb as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "rampart-pg-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", role, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, tail(out))
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	// postgres itself rather than pg_ctl's daemon: the server is this
	// process's child, and the kernel stops it (Pdeathsig) if the test
	// binary dies without stopping it. Durability is of no use to a
	// cluster that lives as long as a test binary.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	logFile.Close()
	c := &cluster{dir: dir, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	if err := c.connect(); err != nil {
		out, _ := os.ReadFile(logPath)
		c.stop()
		return nil, fmt.Errorf("%w: %s", err, tail(out))
	}
	return c, nil
}

// connect waits for the server to accept connections and makes the
// tests' database.
func (c *cluster) connect() error {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	base := strings.Replace(c.url(""), "/"+database+"?", "/postgres?", 1)
	for {
		conn, err := pgx.Connect(ctx, base)
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE DATABASE "+database)
			conn.Close(ctx)
			if err != nil {
				return fmt.Errorf("create database: %w", err)
			}
			break
		}
		select {
		case <-c.exited:
			return errors.New("postgres exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not answer in 30 s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	admin, err := pgx.Connect(ctx, c.url(""))
	if err != nil {
		return err
	}
	c.admin = admin
	return nil
}

// stop shuts the server down (fast: SIGINT) and removes its folder.
func (c *cluster) stop() {
	if c.admin != nil {
		c.admin.Close(context.Background())
	}
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
	os.RemoveAll(c.dir)
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
