package store

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// releaseDB is the database of the last release (commit c693b5a,
// migrations 001 to 004) with rows in every table, made by that release's
// own store (testdata/release-004/make.sh); releaseSecret is the secret of
// its token "ci".
const (
	releaseDB     = "testdata/release-004.db"
	releaseSecret = "f2061716-fb27-4ebb-90c2-e577da0e9408"
)

// TestMigrationsPaired: both engines have the same numbered migrations, so
// that a database of either records the same names at the same release.
func TestMigrationsPaired(t *testing.T) {
	names := map[string][]string{}
	for _, e := range []engine{sqliteEngine{}, &postgresEngine{}} {
		files, err := migrationFiles(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			names[e.name()] = append(names[e.name()], path.Base(f))
		}
	}
	if len(names["sqlite"]) < 6 || !reflect.DeepEqual(names["sqlite"], names["postgres"]) {
		t.Fatalf("migrations differ:\nsqlite   %v\npostgres %v", names["sqlite"], names["postgres"])
	}
}

// appliedMigrations lists the migrations a store recorded, in order.
func appliedMigrations(t *testing.T, db *DB) []string {
	t.Helper()
	names, err := queryStrings(context.Background(), db.r, `SELECT name FROM migrations ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestMigrateFromEmpty: an empty database gets every migration, recorded
// under the names earlier releases used, and opening it again, even from
// several processes at once, applies nothing twice.
func TestMigrateFromEmpty(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	// Three stores opened at once on the empty database: consoles
	// started together.
	var wg sync.WaitGroup
	dbs := make([]*DB, 3)
	errs := make([]error, 3)
	for i := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dbs[i], errs[i] = Open(ctx, dsn, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	db := dbs[0]
	files, _ := migrationFiles(db.e)
	var want []string
	for _, f := range files {
		want = append(want, migrationName(f))
	}
	if got := appliedMigrations(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	if want[0] != "migrations/001_initial.sql" {
		t.Fatalf("first migration recorded as %q", want[0])
	}
	if g, err := db.Generation(ctx); err != nil || g != 0 {
		t.Fatalf("generation = %d, %v", g, err)
	}
	// The store works: a change, a sign-in attempt, a token.
	org := mustOrg(t, db, "acme")
	if _, _, err := db.CreateToken(ctx, org.ID, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Reserve(ctx, Bucket{Key: "k", Burst: 1, Every: 1e9}); err != nil {
		t.Fatal(err)
	}
}

// openRelease opens a copy of the last release's database, which Open
// migrates.
func openRelease(t *testing.T) *DB {
	t.Helper()
	src, err := os.Open(releaseDB)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(t.TempDir(), "rampart.db")
	dst, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return openTestDSN(t, p)
}

// TestMigrateFromRelease: the last release's database, with rows in every
// table, migrates to this release's schema and keeps every row's meaning.
func TestMigrateFromRelease(t *testing.T) {
	db := openRelease(t)
	files, _ := migrationFiles(db.e)
	if got := appliedMigrations(t, db); len(got) != len(files) {
		t.Fatalf("applied %v, want %d migrations", got, len(files))
	}
	checkRelease(t, db)
}

// checkRelease checks a store holding the last release's data, through
// the store's API: every kind of row reads back as what it was.
func checkRelease(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	gen, err := db.Generation(ctx)
	if err != nil || gen != 17 {
		t.Fatalf("generation = %d, %v; want 17", gen, err)
	}
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Unreadable) != 0 {
		t.Fatalf("unreadable rows: %v", snap.Unreadable)
	}
	groups := map[string]Group{}
	for _, g := range snap.Groups {
		groups[g.Name] = g
	}
	// enable_default_security (true: SMTP blocked) became smtp_enabled.
	for name, smtp := range map[string]bool{"web": false, "mail": true, "théâtre": false, DefaultGroupName: false} {
		if g, ok := groups[name]; !ok || g.SMTPEnabled != smtp {
			t.Errorf("group %q = %+v, want SMTPEnabled %v", name, g, smtp)
		}
	}
	web := groups["web"]
	if positions(snap.Rules[web.ID]) != "1:192.0.2.0/24 2:0.0.0.0/0 3:2001:db8::/32 4:10.0.0.0/8" ||
		len(web.Servers) != 1 || web.InboundDefaultPolicy != Drop || !web.Stateful {
		t.Errorf("group web = %+v, rules %s", web, positions(snap.Rules[web.ID]))
	}
	if len(snap.Servers) != 3 {
		t.Errorf("servers = %+v", snap.Servers)
	}
	events, err := db.Events(ctx, web.OrganizationID, "fr-par-1", web.ID, 0)
	if err != nil || len(events) != 6 || events[0].Actor != "user ops@example.com" {
		t.Errorf("events of web = %d, %v", len(events), err)
	}
	tok, err := db.TokenBySecret(ctx, releaseSecret)
	if err != nil || tok.Description != "ci" || tok.OrganizationID != web.OrganizationID {
		t.Errorf("token: %+v, %v", tok, err)
	}
	// Emails compare without case, as COLLATE NOCASE did.
	if u, err := db.Authenticate(ctx, "ops@example.com", "correct horse battery"); err != nil || u.Email != "Ops@Example.com" {
		t.Errorf("authenticate: %+v, %v", u, err)
	}
	if _, err := db.CreateUser(ctx, web.OrganizationID, "OPS@example.COM", "long enough"); FieldMessage(err, "email") == "" {
		t.Errorf("a second user with the same email in another case: %v", err)
	}
	if data, ok, err := db.FindCtx(ctx, "session-token-of-the-fixture"); err != nil || !ok || string(data) != "\x00\x01gob data" {
		t.Errorf("session: %q %v %v", data, ok, err)
	}
	if s, err := db.Secret(ctx, "csrf", 32); err != nil || len(s) != 32 {
		t.Errorf("secret: %d bytes, %v", len(s), err)
	}
	// The next change takes the next generation.
	if _, err := db.CreateRule(ctx, web.OrganizationID, "fr-par-1", web.ID, RuleInput{IPRange: "203.0.113.0/24"}); err != nil {
		t.Fatal(err)
	}
	if gen, _ := db.Generation(ctx); gen != 18 {
		t.Errorf("generation after a change = %d, want 18", gen)
	}
}

// TestSchemasMatch: a database migrated on either engine has the same
// tables with the same columns, in the same order, and the same foreign
// keys, which is what copying between them relies on.
func TestSchemasMatch(t *testing.T) {
	if testdb.Engine() != "postgres" {
		t.Skip("compares with PostgreSQL: runs in the PostgreSQL pass")
	}
	ctx := context.Background()
	lite := openTestDSN(t, filepath.Join(t.TempDir(), "rampart.db"))
	pg := openTestDSN(t, testdb.Postgres(t))
	a, err := lite.e.tables(ctx, lite.r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pg.e.tables(ctx, pg.r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("schemas differ:\nsqlite   %+v\npostgres %+v", a, b)
	}
	if len(a) < 12 {
		t.Fatalf("only %d tables: %+v", len(a), a)
	}
}

// TestMigrationFilesEmbedded guards the embed pattern: every file of both
// folders is in the binary.
func TestMigrationFilesEmbedded(t *testing.T) {
	for _, dir := range []string{"migrations/sqlite", "migrations/postgres"} {
		onDisk, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		embedded, err := fs.Glob(migrationFS, dir+"/*")
		if err != nil {
			t.Fatal(err)
		}
		if len(onDisk) != len(embedded) {
			t.Errorf("%s: %d files on disk, %d embedded", dir, len(onDisk), len(embedded))
		}
	}
}
