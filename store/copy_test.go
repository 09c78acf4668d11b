package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// populate puts rows in every table of db through the store's API, and
// returns the secret of a token that stays valid.
func populate(t *testing.T, db *DB) string {
	t.Helper()
	ctx := WithActor(context.Background(), "user ops@example.com")
	acme, globex := mustOrg(t, db, "acme").ID, mustOrg(t, db, "globex").ID
	if _, err := db.CreateGrant(ctx, globex, "", []string{"vnet*"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, acme, "Ops@Example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	_, secret, err := db.CreateToken(ctx, acme, "ci")
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := db.CreateToken(ctx, globex, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteToken(ctx, globex, gone.AccessKey); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		org := []string{acme, globex}[i%2]
		zone := []string{"fr-par-1", "nl-ams-1"}[i%2]
		g := mustCreateGroup(t, db, org, zone, GroupInput{Name: fmt.Sprintf("théâtre %d", i), Tags: []string{"École", fmt.Sprint(i)},
			Stateful: i%3 == 0, SMTPEnabled: i%2 == 0, InboundDefaultPolicy: Drop})
		for j := range i {
			mustCreateRule(t, db, org, zone, g.ID, RuleInput{IPRange: fmt.Sprintf("10.%d.%d.0/24", i, j), DestPortFrom: ptr(1000 + j), Position: j % 2})
		}
		mustCreateServer(t, db, org, zone, ServerInput{Name: fmt.Sprintf("vm%d", i), Interface: fmt.Sprintf("vnet%d", i),
			Addresses: []string{fmt.Sprintf("192.0.2.%d", i), "2001:db8::1"}, Tags: []string{"blue"}, SecurityGroupID: g.ID})
	}
	mustCreateServer(t, db, acme, "fr-par-1", ServerInput{Name: "host", Local: true})
	if err := db.CommitCtx(ctx, "session", []byte{0, 0xff, 'x'}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Secret(ctx, "csrf", 32); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Reserve(ctx, Bucket{Key: "account ops@example.com", Burst: 5, Every: time.Minute}); err != nil {
		t.Fatal(err)
	}
	return secret
}

// checkCopied compares two stores through the store's API, object by
// object: the snapshot (groups, rules, servers), every group's audit log,
// users, tokens, sessions and secrets.
func checkCopied(t *testing.T, a, b *DB) {
	t.Helper()
	ctx := context.Background()
	sa, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalise(sa), normalise(sb)) {
		t.Fatalf("snapshots differ:\n%+v\n%+v", sa, sb)
	}
	for _, g := range sa.Groups {
		ea, err := a.Events(ctx, g.OrganizationID, g.Zone, g.ID, 1000)
		if err != nil {
			t.Fatal(err)
		}
		eb, err := b.Events(ctx, g.OrganizationID, g.Zone, g.ID, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ea, eb) {
			t.Fatalf("events of group %s differ", g.ID)
		}
		ua, _ := a.Users(ctx, g.OrganizationID)
		ub, _ := b.Users(ctx, g.OrganizationID)
		ta, _ := a.Tokens(ctx, g.OrganizationID)
		tb, _ := b.Tokens(ctx, g.OrganizationID)
		if !reflect.DeepEqual(ua, ub) || !reflect.DeepEqual(ta, tb) {
			t.Fatalf("users or tokens of organization %s differ", g.OrganizationID)
		}
	}
}

// TestCopySQLiteToPostgres: a populated SQLite database copied whole into
// PostgreSQL compares equal row by row and object by object, and the
// copy goes on from where the source was.
func TestCopySQLiteToPostgres(t *testing.T) {
	if testdb.Engine() != "postgres" {
		t.Skip("copies into PostgreSQL: runs in the PostgreSQL pass")
	}
	ctx := context.Background()
	lite := openTestDSN(t, filepath.Join(t.TempDir(), "rampart.db"))
	secret := populate(t, lite)
	pg := openTestDSN(t, testdb.Postgres(t))
	watch, stop := pg.Watch()
	defer stop()
	counts, err := Copy(ctx, lite, pg)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"generation", "organizations", "users", "tokens", "security_groups", "rules",
		"servers", "sessions", "secrets", "events", "throttle", "revocations"} {
		if counts[table] == 0 {
			t.Errorf("no rows copied into %s: %v", table, counts)
		}
	}
	if _, ok := counts["migrations"]; ok {
		t.Error("the migrations' record was copied")
	}
	if err := Compare(ctx, lite, pg); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, lite, pg)
	waitWake(t, watch, time.Second) // the copy is a change to its watchers

	// The copy is a working store: credentials, sessions, and the next
	// change with the next generation and the next event ID.
	if _, err := pg.TokenBySecret(ctx, secret); err != nil {
		t.Fatalf("token: %v", err)
	}
	if _, err := pg.Authenticate(ctx, "OPS@example.com", "correct horse"); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if _, ok, err := pg.FindCtx(ctx, "session"); !ok || err != nil {
		t.Fatalf("session: %v %v", ok, err)
	}
	gen, _ := lite.Generation(ctx)
	org, _ := pg.EnsureOrganization(ctx, "acme")
	g := mustCreateGroup(t, pg, org.ID, "fr-par-1", GroupInput{Name: "after the copy"})
	if g.Generation != gen+1 {
		t.Fatalf("first change on the copy has generation %d, want %d", g.Generation, gen+1)
	}
	events, err := pg.Events(ctx, org.ID, "fr-par-1", g.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	var maxID int64
	lite.queryRow(ctx, `SELECT max(id) FROM events`).Scan(&maxID)
	if len(events) != 1 || events[0].ID <= maxID {
		t.Fatalf("new event %+v, want an ID after the copied %d", events, maxID)
	}
	// Now they differ, and Compare says where.
	err = Compare(ctx, lite, pg)
	if err == nil || !strings.Contains(err.Error(), "security_groups id=\""+g.ID+"\": only in the second") {
		t.Fatalf("compare after a change: %v", err)
	}
}

// TestCopyRelease: the last release's SQLite database, migrated, moves to
// PostgreSQL whole.
func TestCopyRelease(t *testing.T) {
	if testdb.Engine() != "postgres" {
		t.Skip("copies into PostgreSQL: runs in the PostgreSQL pass")
	}
	ctx := context.Background()
	lite := openRelease(t)
	pg := openTestDSN(t, testdb.Postgres(t))
	if _, err := Copy(ctx, lite, pg); err != nil {
		t.Fatal(err)
	}
	if err := Compare(ctx, lite, pg); err != nil {
		t.Fatal(err)
	}
	checkRelease(t, pg)
}

// TestCopyRefusesUsedTarget: a copy goes into a database where nothing
// was ever changed, and leaves any other as it was.
func TestCopyRefusesUsedTarget(t *testing.T) {
	ctx := context.Background()
	src := openTestDSN(t, filepath.Join(t.TempDir(), "src.db"))
	populate(t, src)
	dst := openTestDB(t)
	mustOrg(t, dst, "already here")
	before := dump(t, dst)
	if _, err := Copy(ctx, src, dst); ErrorCode(err) != CodeConflict {
		t.Fatalf("copy into a used database: %v", err)
	}
	if dump(t, dst) != before {
		t.Fatal("a refused copy wrote")
	}
}

// TestCopyBetweenSQLiteFiles: the copy is the engines' common code; from
// one SQLite file to another it compares equal too.
func TestCopyBetweenSQLiteFiles(t *testing.T) {
	ctx := context.Background()
	src := openTestDSN(t, filepath.Join(t.TempDir(), "src.db"))
	populate(t, src)
	dst := openTestDSN(t, filepath.Join(t.TempDir(), "dst.db"))
	if _, err := Copy(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	if err := Compare(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	checkCopied(t, src, dst)
	// A row of a table whose key is two columns (a group's versions):
	// named by both, found whichever order the engines read rows in.
	var gid string
	if err := dst.queryRow(ctx, `SELECT group_id FROM group_versions WHERE version = 2 LIMIT 1`).Scan(&gid); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.exec(ctx, `UPDATE group_versions SET summary = 'edited' WHERE group_id = ? AND version = 1`, gid); err != nil {
		t.Fatal(err)
	}
	err := Compare(ctx, src, dst)
	if want := `group_versions group_id="` + gid + `" version=1: `; err == nil || !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "group_versions") != 1 {
		t.Fatalf("compare after editing a version: %v, want one difference at %q", err, want)
	}
}

// TestBackup: a SQLite backup is a private file that opens as the same
// database; an existing file is not overwritten; PostgreSQL points to
// pg_dump.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestDSN(t, filepath.Join(dir, "rampart.db"))
	populate(t, db)
	to := filepath.Join(dir, "backup.db")
	if err := db.Backup(ctx, to); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(to)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %o, want 600", fi.Mode().Perm())
	}
	if err := db.Backup(ctx, to); err == nil {
		t.Fatal("backup over an existing file")
	}
	copyDB := openTestDSN(t, to)
	if err := Compare(ctx, db, copyDB); err != nil {
		t.Fatal(err)
	}
	if testdb.Engine() == "postgres" {
		pg := openTestDB(t)
		if err := pg.Backup(ctx, filepath.Join(dir, "pg.db")); err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Fatalf("backup of PostgreSQL: %v", err)
		}
	}
}
