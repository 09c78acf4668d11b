// Package pgcluster runs a throwaway PostgreSQL cluster: initdb and
// postgres in a temporary folder, listening on a unix socket only (no
// TCP), stopped and removed by Stop. The tests (internal/testdb), the
// benchmarks (bench) and the soak (cmd/rampart-soak) start theirs with it.
// Nothing is downloaded: PostgreSQL's binaries are looked for in PATH and
// in Debian's /usr/lib/postgresql/*/bin.
//
// It imports nothing of Rampart, so that package store's own tests can
// use it through testdb.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is the cluster's superuser, which every URL of the cluster names.
const Role = "rampart"

// port names the socket file only: the cluster listens on no TCP port.
const port = 5432

// Options set up a cluster.
type Options struct {
	// Durable keeps PostgreSQL's defaults: fsync, synchronous_commit and
	// full_page_writes on, so that a commit returns once its WAL is on the
	// disk, as in production. Tests leave it off: a cluster that lives as
	// long as a test binary has no use for durability, and its fsyncs
	// would only slow the tests. Benchmarks that compare commits with
	// SQLite's synchronous(FULL) turn it on.
	Durable bool
	// MaxConnections is PostgreSQL's max_connections (0: 200).
	MaxConnections int
}

// Cluster is a running throwaway cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir     string // holds data/, the socket and postgres.log
	durable bool
	pid     int
	exited  chan struct{}

	adminMu sync.Mutex
	admin   *pgx.Conn // to the postgres database
	once    sync.Once
}

// BinDir finds the folder of initdb and postgres: PATH first, then
// Debian's versioned folders, newest first.
func BinDir() (string, error) {
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

// Start makes a cluster in a temporary folder and starts it. initdb and
// postgres refuse to run as root: as root they run as the postgres user,
// in a folder it owns.
func Start(o Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 200
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
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", Role, "-A", "trust",
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
	args := []string{"-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=",
		"-c", "max_connections=" + strconv.Itoa(o.MaxConnections), "-c", "shared_buffers=32MB"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// postgres itself rather than pg_ctl's daemon: the server is this
	// process's child, and the kernel stops it (Pdeathsig) if this process
	// dies without stopping it.
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	c := &Cluster{dir: dir, durable: o.Durable, exited: make(chan struct{})}
	// Pdeathsig fires when the thread that forked exits, not the process;
	// the Go runtime ends threads that a goroutine left locked (as every
	// switch into a network namespace does), and one of them might be the
	// thread that forked postgres. So postgres is forked from a thread
	// locked to a goroutine that lives as long as postgres does.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(c.exited)
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		cmd.Wait()
	}()
	err = <-started
	logFile.Close()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := c.connect(); err != nil {
		out, _ := os.ReadFile(logPath)
		c.Stop()
		return nil, fmt.Errorf("%w: %s", err, tail(out))
	}
	return c, nil
}

// connect waits for the server to accept connections.
func (c *Cluster) connect() error {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres", ""))
		if err == nil {
			c.admin = conn
			return nil
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
}

// URL returns the postgres:// URL of database (over the unix socket) as
// the superuser, with search_path set to schema unless it is empty.
func (c *Cluster) URL(database, schema string) string {
	q := url.Values{"host": {c.dir}, "port": {strconv.Itoa(port)}, "sslmode": {"disable"}}
	if schema != "" {
		q.Set("search_path", schema)
	}
	return "postgres://" + Role + "@/" + database + "?" + q.Encode()
}

// CreateDatabase creates an empty database called name.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// Durable reports whether commits wait for the disk (Options.Durable).
func (c *Cluster) Durable() bool { return c.durable }

// Pid returns the PID of the postgres server (its postmaster).
func (c *Cluster) Pid() int { return c.pid }

// Version returns the server's version string (SHOW server_version).
func (c *Cluster) Version(ctx context.Context) (string, error) {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	var v string
	err := c.admin.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// Stop shuts the server down (fast: SIGINT) and removes its folder. A
// second Stop does nothing.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		if c.admin != nil {
			c.admin.Close(context.Background())
		}
		if p, err := os.FindProcess(c.pid); err == nil && c.pid > 0 {
			p.Signal(syscall.SIGINT)
			select {
			case <-c.exited:
			case <-time.After(15 * time.Second):
				p.Kill()
				<-c.exited
			}
		}
		os.RemoveAll(c.dir)
	})
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
