package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// TestDatabaseFilesPrivate (hardening finding 11): the database and its
// -wal and -shm files hold session tokens and password hashes; they are
// created 0600 even in an existing folder, and a file found wider is
// narrowed.
func TestDatabaseFilesPrivate(t *testing.T) {
	if testdb.Engine() != "sqlite" {
		t.Skip("file modes are SQLite's: runs in the SQLite pass")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rampart.db")
	db, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnsureOrganization(ctx, "acme"); err != nil { // writes the WAL
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %o, want 600", filepath.Base(f), got)
		}
	}
	db.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened mode = %o, want 600", fi.Mode().Perm())
	}
	nested := filepath.Join(dir, "new", "rampart.db")
	db, err = Open(ctx, nested, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, _ := os.Stat(filepath.Dir(nested)); fi.Mode().Perm() != 0o700 {
		t.Errorf("created folder mode = %o, want 700", fi.Mode().Perm())
	}
}

// TestControlCharactersRefused (hardening finding 7): every text field
// refuses control characters (NUL, ESC, …), bidirectional controls
// (U+202E) and invalid UTF-8, naming the field, and nothing is written; a
// name of a lone NUL is not "present".
func TestControlCharactersRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := map[string]string{
		"nul":         "\x00",
		"escape":      "web\x1b[31m",
		"bidi":        "admin\u202egpj.exe",
		"isolate":     "a\u2066b",
		"newline":     "two\nlines",
		"invalid utf": "caf\xe9",
	}
	for name, v := range bad {
		t.Run(name, func(t *testing.T) {
			before := dump(t, f.db)
			cases := []struct {
				field string
				call  func() error
			}{
				{"name", func() error { _, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: v}); return err }},
				{"description", func() error {
					_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: "ok", Description: v})
					return err
				}},
				{"tags", func() error {
					_, err := f.db.CreateGroup(ctx, f.org, "fr-par-1", GroupInput{Name: "ok", Tags: []string{v}})
					return err
				}},
				{"name", func() error {
					_, err := f.db.UpdateGroup(ctx, f.org, "fr-par-1", f.stateless.ID, GroupPatch{Name: &v})
					return err
				}},
				{"name", func() error { _, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: v}); return err }},
				{"tags", func() error {
					_, err := f.db.CreateServer(ctx, f.org, "fr-par-1", ServerInput{Name: "ok", Tags: []string{v}})
					return err
				}},
				{"description", func() error { _, _, err := f.db.CreateToken(ctx, f.org, v); return err }},
				{"email", func() error { _, err := f.db.CreateUser(ctx, f.org, "a"+v+"@example.com", "long enough"); return err }},
				{"org", func() error { _, err := f.db.EnsureOrganization(ctx, "org"+v); return err }},
			}
			for _, c := range cases {
				err := c.call()
				if ErrorCode(err) != CodeInvalid || FieldMessage(err, c.field) == "" {
					t.Errorf("%s %q: err = %v, want invalid naming %s", c.field, v, err, c.field)
				}
			}
			if after := dump(t, f.db); after != before {
				t.Errorf("refused changes wrote; before:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// Passwords are not text a person reads: any bytes go.
	if _, err := f.db.CreateUser(ctx, f.org, "pw@example.com", "pass\x00word\u202e"); err != nil {
		t.Errorf("password with control characters: %v", err)
	}
}

// TestUnreadableRowsMarked (hardening finding 10): a stored row the store
// would not have written (written before a check existed, or edited by
// hand) is read back marked, never as a guess: a rule whose ip_range does
// not parse is not "any address". The snapshot lists it under its group.
func TestUnreadableRowsMarked(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{IPRange: "10.0.0.0/8"})
	s := mustCreateServer(t, f.db, f.org, "fr-par-1", ServerInput{Name: "srv9", Interface: "vnet9", SecurityGroupID: f.stateless.ID})
	// As a database from before the schema's checks could hold them.
	dropChecks := map[string][]string{
		"sqlite":   {`DROP TRIGGER rules_check_update`, `DROP TRIGGER servers_check_update`},
		"postgres": {`ALTER TABLE rules DROP CONSTRAINT rules_row_check`, `ALTER TABLE servers DROP CONSTRAINT servers_row_check`},
	}[f.db.Engine()]
	for _, stmt := range append(dropChecks,
		`UPDATE rules SET ip_range = '10.0.0.0/33' WHERE id = '`+r.ID+`'`,
		`UPDATE servers SET interface = 'ta"p0' WHERE id = '`+s.ID+`'`,
	) {
		if _, err := f.db.exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rules, err := f.db.Rules(ctx, f.org, "fr-par-1", f.stateless.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || !strings.Contains(rules[0].Unreadable, "ip_range") || rules[0].IPRange.IsValid() {
		t.Fatalf("rule = %+v, want it marked and without a range", rules[0])
	}
	snap, err := f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(snap.Unreadable[f.stateless.ID], "\n")
	for _, want := range []string{"rule " + r.ID + ": ip_range", "server " + s.ID + ": interface"} {
		if !strings.Contains(got, want) {
			t.Errorf("unreadable = %q, want it to contain %q", got, want)
		}
	}
	since, err := f.db.SnapshotSince(ctx, Snapshot{Rules: map[string][]Rule{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(since.Unreadable[f.stateless.ID]) != 2 {
		t.Errorf("SnapshotSince unreadable = %v", since.Unreadable)
	}
}

// TestSchemaRefusesBadRows: the schema refuses, on its own, rows that the
// store's checks would refuse, as a second line behind them (SQLite's
// triggers, PostgreSQL's CHECK constraints).
func TestSchemaRefusesBadRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refused := map[string]string{"sqlite": "refused by the schema", "postgres": "violates check constraint"}[f.db.Engine()]
	s := mustCreateServer(t, f.db, f.org, "fr-par-1", ServerInput{Name: "srv9", Interface: "vnet9", SecurityGroupID: f.stateless.ID})
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{IPRange: "10.0.0.0/8"})
	for _, stmt := range []string{
		`UPDATE servers SET interface = 'ta"p0' WHERE id = '` + s.ID + `'`,
		`UPDATE servers SET interface = 'a-very-long-interface' WHERE id = '` + s.ID + `'`,
		`UPDATE rules SET dest_port_from = 70000 WHERE id = '` + r.ID + `'`,
		`UPDATE rules SET protocol = 'ICMP', dest_port_from = 22 WHERE id = '` + r.ID + `'`,
		`UPDATE rules SET ip_range = '' WHERE id = '` + r.ID + `'`,
	} {
		if _, err := f.db.exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), refused) {
			t.Errorf("%s: err = %v, want %q", stmt, err, refused)
		}
	}
}
