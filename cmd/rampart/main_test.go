package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
)

var (
	accessKeyPattern = regexp.MustCompile(`^SCW[A-Z0-9]{17}$`)
	uuidPattern      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

func runCmd(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut); err != nil {
		t.Fatalf("rampart %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

func TestTokenCreate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing", "rampart.db")
	var first, second map[string]string
	if err := json.Unmarshal([]byte(runCmd(t, "", "token", "create", "--db", db)), &first); err != nil {
		t.Fatal(err)
	}
	if !accessKeyPattern.MatchString(first["access_key"]) || !uuidPattern.MatchString(first["secret_key"]) ||
		!uuidPattern.MatchString(first["organization_id"]) || first["project_id"] != first["organization_id"] {
		t.Fatalf("token = %v", first)
	}
	if err := json.Unmarshal([]byte(runCmd(t, "", "token", "create", "--db", db)), &second); err != nil {
		t.Fatal(err)
	}
	if second["organization_id"] != first["organization_id"] || second["secret_key"] == first["secret_key"] ||
		second["access_key"] == first["access_key"] {
		t.Fatalf("second token = %v, want a new token in organization %s", second, first["organization_id"])
	}
	var other map[string]string
	json.Unmarshal([]byte(runCmd(t, "", "token", "create", "--db", db, "--org", "globex")), &other)
	if other["organization_id"] == first["organization_id"] {
		t.Fatal("--org globex reused the default organization")
	}
}

func TestUserCreateAndVersion(t *testing.T) {
	db := filepath.Join(t.TempDir(), "rampart.db")
	if out := runCmd(t, "correct horse battery\n", "user", "create", "--db", db, "--email", "ops@example.com"); !strings.Contains(out, "ops@example.com") {
		t.Fatalf("user create said %q", out)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"user", "create", "--db", db, "--email", "ops@example.com"}, strings.NewReader("another long one\n"), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "email") {
		t.Fatalf("duplicate user: %v", err)
	}
	if v := runCmd(t, "", "version"); !strings.HasPrefix(v, "rampart ") {
		t.Fatalf("version = %q", v)
	}
}

// TestServeAnswersHealthzAndStops runs serve on each engine: a SQLite
// file, and a postgres:// URL.
func TestServeAnswersHealthzAndStops(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "r.db")
			if engine == "postgres" {
				db = testdb.Postgres(t)
			}
			serveHealthy(t, db)
		})
	}
}

func serveHealthy(t *testing.T, db string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--db", db, "--enforcer", "preview"},
			strings.NewReader(""), &bytes.Buffer{}, &logs)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no healthy /healthz within 10 s: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel() // as SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "rampart user create") {
		t.Fatalf("first serve without users does not say how to create one:\n%s", logs.String())
	}
}

// TestOperatorsAndGrants: the first user is an operator, --operator makes
// another; `grant` lets an organization bind interfaces on a host, and
// refuses a bad pattern naming it.
func TestOperatorsAndGrants(t *testing.T) {
	db := filepath.Join(t.TempDir(), "rampart.db")
	if out := runCmd(t, "a long password\n", "user", "create", "--db", db, "--email", "first@acme.test"); !strings.Contains(out, "(operator)") {
		t.Errorf("first user: %q, want an operator", out)
	}
	if out := runCmd(t, "a long password\n", "user", "create", "--db", db, "--email", "second@acme.test"); !strings.Contains(out, "(member)") {
		t.Errorf("second user: %q, want a member", out)
	}
	if out := runCmd(t, "a long password\n", "user", "create", "--db", db, "--email", "third@globex.test", "--org", "globex", "--operator"); !strings.Contains(out, "(operator)") {
		t.Errorf("--operator: %q", out)
	}
	var g map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, "", "grant", "--db", db, "--org", "globex", "--interfaces", "tap-g-*, vnet1*", "--local")), &g); err != nil {
		t.Fatal(err)
	}
	if g["organization"] != "globex" || g["local"] != true || len(g["interfaces"].([]any)) != 2 || g["host"] != "" {
		t.Errorf("grant = %v", g)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"grant", "--db", db, "--org", "globex", "--interfaces", "tap 0"}, strings.NewReader(""), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "interfaces") {
		t.Errorf("bad pattern: %v", err)
	}
}

// TestMain stops the PostgreSQL cluster TestDBCopy starts (see
// internal/testdb).
func TestMain(m *testing.M) { testdb.Main(m) }

// TestDBCopyAndBackup: a SQLite install made with the CLI is backed up to
// a private file, then moved into PostgreSQL, where its token still works;
// a second copy into the now used database is refused.
func TestDBCopyAndBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "rampart.db")
	var tok map[string]string
	if err := json.Unmarshal([]byte(runCmd(t, "", "token", "create", "--db", db)), &tok); err != nil {
		t.Fatal(err)
	}
	runCmd(t, "correct horse battery\n", "user", "create", "--db", db, "--email", "ops@example.com")

	backup := filepath.Join(dir, "backup.db")
	if out := runCmd(t, "", "db", "backup", "--db", db, "--to", backup); !strings.Contains(out, backup) {
		t.Fatalf("backup said %q", out)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"db", "backup", "--db", filepath.Join(dir, "missing.db"), "--to", filepath.Join(dir, "b2.db")},
		nil, &out, &errOut); err == nil {
		t.Fatal("backup of a missing database")
	}

	pg := testdb.Postgres(t)
	said := runCmd(t, "", "db", "copy", "--from", backup, "--to", pg)
	if !strings.Contains(said, "every row equal") || !strings.Contains(said, "tokens") {
		t.Fatalf("copy said %q", said)
	}
	s, err := store.Open(ctx, pg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.TokenBySecret(ctx, tok["secret_key"]); err != nil || got.AccessKey != tok["access_key"] {
		t.Fatalf("token after the copy: %+v, %v", got, err)
	}
	if _, err := s.Authenticate(ctx, "ops@example.com", "correct horse battery"); err != nil {
		t.Fatalf("user after the copy: %v", err)
	}
	if err := run(ctx, []string{"db", "copy", "--from", backup, "--to", pg}, nil, &out, &errOut); err == nil ||
		!strings.Contains(err.Error(), "empty") {
		t.Fatalf("second copy: %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"data/rampart.db": "data/rampart.db",
		"postgres://rampart:s3cret@db.example:5432/rampart?sslmode=require": "postgres://rampart:xxxxx@db.example:5432/rampart?sslmode=require",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
