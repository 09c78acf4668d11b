package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// Two stores opened on one database stand for two consoles (two
// processes) on it: nothing is shared between them but the database.

// TestReadsDoNotWaitForWrites: while a change holds its transaction open,
// reads are answered at once with the last committed state, on both
// engines (SQLite's read-only connections beside the writer; PostgreSQL's
// pool).
func TestReadsDoNotWaitForWrites(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "before"})
	_, secret, err := db.CreateToken(ctx, org, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CommitCtx(ctx, "s1", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	changed := make(chan error, 1)
	go func() {
		changed <- db.change(ctx, func(tx *txn, gen int64) error {
			if _, err := tx.ExecContext(ctx, `UPDATE security_groups SET name = 'during', generation = ? WHERE id = ?`, gen, g.ID); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	reads := []struct {
		name string
		read func(ctx context.Context) error
	}{
		{"Group", func(ctx context.Context) error {
			got, err := db.Group(ctx, org, "fr-par-1", g.ID)
			if err == nil && got.Name != "before" {
				err = fmt.Errorf("name %q, want the committed %q", got.Name, "before")
			}
			return err
		}},
		{"Snapshot", func(ctx context.Context) error { _, err := db.Snapshot(ctx); return err }},
		{"Groups", func(ctx context.Context) error {
			_, _, err := db.Groups(ctx, org, "fr-par-1", GroupFilter{})
			return err
		}},
		{"Generation", func(ctx context.Context) error { _, err := db.Generation(ctx); return err }},
		{"FindCtx", func(ctx context.Context) error { _, _, err := db.FindCtx(ctx, "s1"); return err }},
		{"TokenBySecret", func(ctx context.Context) error { _, err := db.TokenBySecret(ctx, secret); return err }},
	}
	for _, r := range reads {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		err := r.read(rctx)
		cancel()
		if err != nil {
			t.Errorf("%s during a write: %v (after %s)", r.name, err, time.Since(start).Round(time.Millisecond))
		}
	}
	close(release)
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Group(ctx, org, "fr-par-1", g.ID); got.Name != "during" {
		t.Fatalf("after the commit: name %q", got.Name)
	}
}

// waitWake waits up to limit for a watcher's signal, and returns how long
// it took.
func waitWake(t *testing.T, ch <-chan struct{}, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-ch:
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("no wake-up within %s", limit)
		return 0
	}
}

// drain empties a watcher's pending signal.
func drain(ch <-chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// TestWatchWakesOtherStores: a change through one store wakes the
// watchers of another on the same database. On PostgreSQL the
// notification does it, well before the periodic check (set to 10 s);
// SQLite has no notifications, and its check does it.
func TestWatchWakesOtherStores(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a := openTestDSN(t, dsn)
	limit, check := 100*time.Millisecond, 10*time.Second
	if a.Engine() == "sqlite" {
		limit, check = time.Second, 200*time.Millisecond
	}
	b := openTestDSN(t, dsn, WithCheckInterval(check))
	ch, stop := b.Watch()
	defer stop()
	org := mustOrg(t, a, "acme").ID
	var worst time.Duration
	for i := range 5 {
		drain(ch)
		start := time.Now()
		mustCreateGroup(t, a, org, "fr-par-1", GroupInput{Name: fmt.Sprintf("g%d", i)})
		waitWake(t, ch, limit)
		worst = max(worst, time.Since(start))
	}
	t.Logf("%s: slowest wake-up of another store %s (check every %s)", a.Engine(), worst, check)
	// What the other store reads after waking is the change.
	if g, _ := b.Generation(ctx); g != 6 {
		t.Fatalf("generation read by the other store = %d, want 6", g)
	}
}

// TestCheckFindsUnannouncedChanges: a change whose announcement is lost
// (here a generation moved by hand, without one) wakes the watchers at
// the next periodic check.
func TestCheckFindsUnannouncedChanges(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a := openTestDSN(t, dsn)
	b := openTestDSN(t, dsn, WithCheckInterval(200*time.Millisecond))
	ch, stop := b.Watch()
	defer stop()
	drain(ch)
	if _, err := a.exec(ctx, `UPDATE generation SET value = value + 1 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	waitWake(t, ch, time.Second)
}

// TestTokenRevokedAcrossStores: a token that another console has in its
// cache is refused there within a second of being revoked here.
func TestTokenRevokedAcrossStores(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a := openTestDSN(t, dsn)
	b := openTestDSN(t, dsn, WithCheckInterval(10*time.Second))
	org := mustOrg(t, a, "acme").ID
	tok, secret, err := a.CreateToken(ctx, org, "ci")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := a.CreateToken(ctx, org, "kept")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, other} {
		if _, err := b.TokenBySecret(ctx, s); err != nil { // now in b's cache
			t.Fatal(err)
		}
	}
	if err := a.DeleteToken(ctx, org, tok.AccessKey); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := b.TokenBySecret(ctx, secret)
		if ErrorCode(err) == CodeUnauthorized {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("revoked token still accepted by the other store after %s", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%s: revoked token refused by the other store after %s", a.Engine(), time.Since(start))
	if _, err := b.TokenBySecret(ctx, other); err != nil {
		t.Fatalf("a token not revoked: %v", err)
	}
}

// TestSessionsShared: a session made through one console is found by
// another, and once deleted (signed out) by neither.
func TestSessionsShared(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a, b := openTestDSN(t, dsn), openTestDSN(t, dsn)
	if err := a.CommitCtx(ctx, "tok", []byte{0, 1, 2}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if data, ok, err := b.FindCtx(ctx, "tok"); err != nil || !ok || string(data) != "\x00\x01\x02" {
		t.Fatalf("other console: %q %v %v", data, ok, err)
	}
	if err := a.DeleteCtx(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.FindCtx(ctx, "tok"); err != nil || ok {
		t.Fatalf("signed-out session still found by the other console: %v %v", ok, err)
	}
	sa, err := a.Secret(ctx, "csrf", 32)
	if err != nil {
		t.Fatal(err)
	}
	if sb, err := b.Secret(ctx, "csrf", 32); err != nil || string(sa) != string(sb) {
		t.Fatalf("consoles have different secrets: %v", err)
	}
}

// TestChangesSerialisedAcrossStores: changes sent at once through two
// stores commit one after the other: the generation counts each once,
// without gaps, the audit log has one generation per change, and rule
// positions stay 1..N.
func TestChangesSerialisedAcrossStores(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a, b := openTestDSN(t, dsn), openTestDSN(t, dsn)
	org := mustOrg(t, a, "acme").ID
	g := mustCreateGroup(t, a, org, "fr-par-1", GroupInput{})
	start, _ := a.Generation(ctx)
	const perStore = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*perStore)
	for _, db := range []*DB{a, b} {
		for i := range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.CreateRule(ctx, org, "fr-par-1", g.ID, RuleInput{IPRange: fmt.Sprintf("10.%d.0.0/16", i), Position: 1 + i%3})
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	end, _ := b.Generation(ctx)
	if end != start+2*perStore {
		t.Fatalf("generation went from %d to %d for %d changes", start, end, 2*perStore)
	}
	rules, err := b.Rules(ctx, org, "fr-par-1", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rules {
		if r.Position != i+1 {
			t.Fatalf("positions %s", positions(rules))
		}
	}
	events, err := b.Events(ctx, org, "fr-par-1", g.ID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var gens []int64
	for _, e := range events {
		if e.Generation > start {
			gens = append(gens, e.Generation)
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	for i, gen := range gens {
		if gen != start+1+int64(i) {
			t.Fatalf("event generations %v: not one per change from %d", gens, start+1)
		}
	}
	// Newer events have larger IDs: the log's order is the commit order.
	for i := 1; i < len(events); i++ {
		if events[i].ID >= events[i-1].ID || events[i].Generation > events[i-1].Generation {
			t.Fatalf("event %d (id %d, generation %d) listed after %d (id %d, generation %d)",
				i, events[i].ID, events[i].Generation, i-1, events[i-1].ID, events[i-1].Generation)
		}
	}
}

// TestReportsDoNotMoveTheGeneration: writes that are not changes
// (sessions, secrets, sign-in attempts) leave the generation alone.
func TestReportsDoNotMoveTheGeneration(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	before, _ := db.Generation(ctx)
	if err := db.CommitCtx(ctx, "s", []byte("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Secret(ctx, "k", 8); err != nil {
		t.Fatal(err)
	}
	refund, _, err := db.Reserve(ctx, Bucket{Key: "account a", Burst: 5, Every: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := refund(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.Generation(ctx); after != before {
		t.Fatalf("generation moved from %d to %d", before, after)
	}
}

// TestDriverErrorsTranslated: what each driver reports for a unique
// violation is the same "table.column" to the store.
func TestDriverErrorsTranslated(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	mustOrg(t, db, "acme")
	b := mustOrg(t, db, "globex")
	_, err := db.exec(ctx, `UPDATE organizations SET name = 'acme' WHERE id = ?`, b.ID)
	if got := db.uniqueViolation(err); got != "organizations.name" {
		t.Fatalf("unique violation %q from %v", got, err)
	}
	if db.uniqueViolation(errors.New("organizations.name")) != "" {
		t.Fatal("a plain error read as a violation")
	}
	if err := db.driverError(errors.New("x")); ErrorCode(err) != "" {
		t.Fatalf("plain error translated: %v", err)
	}
	if db.Engine() != "postgres" {
		return // SQLite's equivalent, SQLITE_BUSY, takes busy_timeout (5 s) to come
	}
	// A lock the database gives up waiting for is a conflict to send
	// again, with the driver's error still wrapped.
	holder, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `SELECT value FROM generation WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	err = db.write(ctx, func(tx *txn) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '50ms'`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE generation SET value = value WHERE id = 1`)
		return err
	})
	if ErrorCode(err) != CodeConflict || db.e.classify(err).kind != errRetry {
		t.Fatalf("lock timeout: %v", err)
	}
}

// TestListenerReconnects: when the listening connection is lost (here
// ended by the server), the store makes it again, wakes its watchers for
// what it may have missed, and hears the next changes at once.
func TestListenerReconnects(t *testing.T) {
	if testdb.Engine() != "postgres" {
		t.Skip("notifications are PostgreSQL's")
	}
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a := openTestDSN(t, dsn)
	b := openTestDSN(t, dsn, WithCheckInterval(10*time.Second))
	ch, stop := b.Watch()
	defer stop()
	drain(ch)
	var ended int
	if err := a.queryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'rampart listen' AND datname = current_database()`).Scan(&ended); err != nil || ended < 2 {
		t.Fatalf("ended %d listening connections: %v", ended, err)
	}
	waitWake(t, ch, 2*time.Second) // back, and woken for what it may have missed
	org := mustOrg(t, a, "acme").ID
	// Reconnection takes a backoff's time: allow for it, then a change
	// must be heard well within the 10 s check.
	var took time.Duration
	for i := range 20 {
		drain(ch)
		start := time.Now()
		mustCreateGroup(t, a, org, "fr-par-1", GroupInput{Name: fmt.Sprintf("g%d", i)})
		select {
		case <-ch:
			took = time.Since(start)
		case <-time.After(500 * time.Millisecond):
			continue
		}
		break
	}
	if took == 0 || took > 100*time.Millisecond {
		t.Fatalf("after reconnecting, a change was heard after %s", took)
	}
}
