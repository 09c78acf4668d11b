package store

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// logEntry makes an entry of group gid: an inbound TCP packet from
// 203.0.113.n to 192.0.2.1:22, dropped by the default policy when n is
// even, accepted by rule r otherwise.
func logEntry(gid string, n int, r string) LogEntry {
	e := LogEntry{GroupID: gid, Time: time.Unix(1_700_000_000+int64(n), 0).UTC(), Host: "h1", Direction: Inbound, Protocol: "TCP",
		Source: netip.AddrFrom4([4]byte{203, 0, 113, byte(n % 250)}), SourcePort: uint16(40000 + n%1000),
		Destination: netip.MustParseAddr("192.0.2.1"), DestinationPort: 22, Verdict: Drop, DecidedBy: Decider{Kind: "default_policy"}}
	if n%2 == 1 {
		e.Verdict, e.DecidedBy = Accept, Decider{Kind: "rule", RuleID: r, Position: 1}
	}
	return e
}

// TestLogEntries: entries are stored in one write per batch that does not
// move the generation, only for groups that exist, bounded per group to the
// newest MaxLogEntries (older pruned in the same write), and read back by
// group with since, verdict and ip, oldest first, with a Next that resumes
// exactly; another organization sees nothing; bad queries name their
// field.
func TestLogEntries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	db, a, b := f.db, f.stateful, f.stateless
	r := mustCreateRule(t, db, f.org, "fr-par-1", a.ID, RuleInput{Log: ptr(true)})
	gen0, _ := db.Generation(ctx)
	_, w0 := db.Transactions()

	// A batch of 1,000 in one write, entries of a group unknown left out.
	batch := make([]LogEntry, 0, 1001)
	for n := 1; n <= 1000; n++ {
		batch = append(batch, logEntry(a.ID, n, r.ID))
	}
	batch = append(batch, logEntry(uuid.NewString(), 1, r.ID))
	stored, err := db.AppendLogEntries(ctx, batch)
	if err != nil || stored != 1000 {
		t.Fatalf("append: %d, %v; want 1000 stored", stored, err)
	}
	if _, w1 := db.Transactions(); w1-w0 != 1 {
		t.Errorf("%d writes for one batch, want 1", w1-w0)
	}
	if gen, _ := db.Generation(ctx); gen != gen0 {
		t.Errorf("generation moved from %d to %d: writing the log is not a change", gen0, gen)
	}

	// Newest first page, oldest first within it.
	page, err := db.LogEntries(ctx, f.org, "fr-par-1", a.ID, LogQuery{PerPage: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := cursors(page.Entries); got != "998 999 1000" || page.Next != "1000" {
		t.Fatalf("newest page = %s next %s, want 998 999 1000 next 1000", got, page.Next)
	}
	e := page.Entries[2]
	if e.GroupID != a.ID || e.Host != "h1" || e.Verdict != Drop || e.DecidedBy.Kind != "default_policy" || e.Source.String() != "203.0.113.0" ||
		e.DestinationPort != 22 || e.Protocol != "TCP" || !e.Time.Equal(time.Unix(1_700_001_000, 0)) {
		t.Errorf("entry read back as %+v", e)
	}
	// Since, filtered: accepted entries from 203.0.113.1 (n = 1, 251, 501, 751).
	page, err = db.LogEntries(ctx, f.org, "fr-par-1", a.ID, LogQuery{Since: "1", Verdict: "accept", IP: "203.0.113.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cursors(page.Entries); got != "251 501 751" || page.Next != "1000" {
		t.Errorf("since 1, accept, 203.0.113.1 = %s next %s, want 251 501 751 next 1000", got, page.Next)
	}
	if d := page.Entries[0].DecidedBy; d.Kind != "rule" || d.RuleID != r.ID || d.Position != 1 {
		t.Errorf("decided_by = %+v", d)
	}
	// A full page's Next is its last entry: paging reads every entry once.
	var all []LogEntry
	for since := "0"; ; {
		page, err := db.LogEntries(ctx, f.org, "fr-par-1", a.ID, LogQuery{Since: since, PerPage: 300})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Entries...)
		if len(page.Entries) < 300 {
			break
		}
		since = page.Next
	}
	if len(all) != 1000 || all[0].Cursor != 1 || all[999].Cursor != 1000 {
		t.Errorf("paging read %d entries", len(all))
	}

	// The bound: 10,500 stored, the newest 10,000 kept, the other group's
	// entries untouched.
	if _, err := db.AppendLogEntries(ctx, []LogEntry{logEntry(b.ID, 2, "")}); err != nil {
		t.Fatal(err)
	}
	for n := 1001; n <= MaxLogEntries+500; n += 1000 {
		batch = batch[:0]
		for k := n; k < n+1000 && k <= MaxLogEntries+500; k++ {
			batch = append(batch, logEntry(a.ID, k, r.ID))
		}
		if _, err := db.AppendLogEntries(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var kept, oldest int64
	if err := db.queryRow(ctx, `SELECT count(*), min(id) FROM log_entries WHERE group_id = ?`, a.ID).Scan(&kept, &oldest); err != nil {
		t.Fatal(err)
	}
	// Cursors 1-1000 and 1002-10501 (1001 is the other group's): the
	// newest 10,000 start at 501.
	if kept != MaxLogEntries || oldest != 501 {
		t.Errorf("group holds %d entries from cursor %d, want %d from 501", kept, oldest, MaxLogEntries)
	}
	if page, _ := db.LogEntries(ctx, f.org, "fr-par-1", b.ID, LogQuery{}); cursors(page.Entries) != "1001" {
		t.Errorf("the other group's log = %s", cursors(page.Entries))
	}

	// Another organization's view, a zone not served, bad queries.
	if _, err := db.LogEntries(ctx, f.other, "fr-par-1", a.ID, LogQuery{}); ErrorCode(err) != CodeNotFound {
		t.Errorf("another organization's read: %v, want not found", err)
	}
	for _, c := range FieldCases {
		if c.Input != "logs" {
			continue
		}
		q := LogQuery{Since: c.Values["since"], Verdict: c.Values["verdict"], IP: c.Values["ip"]}
		if _, err := db.LogEntries(ctx, f.org, "fr-par-1", a.ID, q); FieldMessage(err, c.Field) == "" {
			t.Errorf("%v: %v, want a message naming %s", c.Values, err, c.Field)
		}
	}
	if _, err := db.LogEntries(ctx, f.org, "fr-par-1", a.ID, LogQuery{PerPage: MaxLogPerPage + 1}); FieldMessage(err, "per_page") == "" {
		t.Errorf("per_page %d: %v", MaxLogPerPage+1, err)
	}

	// Deleting a group deletes its log.
	if _, err := db.DeleteGroup(ctx, f.org, "fr-par-1", b.ID); ErrorCode(err) != CodeConflict {
		t.Fatalf("delete a group in use: %v", err) // the BareMetal server is in it
	}
	g := mustCreateGroup(t, db, f.org, "fr-par-1", GroupInput{Name: "gone"})
	if _, err := db.AppendLogEntries(ctx, []LogEntry{logEntry(g.ID, 2, "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteGroup(ctx, f.org, "fr-par-1", g.ID); err != nil {
		t.Fatal(err)
	}
	var left int
	db.queryRow(ctx, `SELECT count(*) FROM log_entries WHERE group_id = ?`, g.ID).Scan(&left)
	if left != 0 {
		t.Errorf("%d entries left after the group's deletion", left)
	}
}

func cursors(entries []LogEntry) string {
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = strconv.FormatInt(e.Cursor, 10)
	}
	return strings.Join(parts, " ")
}

// TestLogCursorAcrossHandles: two handles on one database (two consoles)
// write batches at the same time while a reader on each follows the log
// with Next: each reader sees every entry exactly once, cursors growing.
// With cursors from a sequence, a batch that took its cursors first but
// committed last would be skipped by a reader that had moved past them.
func TestLogCursorAcrossHandles(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	one := openTestDSN(t, dsn)
	two := openTestDSN(t, dsn)
	org := mustOrg(t, one, "acme").ID
	g := mustCreateGroup(t, one, org, "fr-par-1", GroupInput{Name: "web"})
	const writers, batches, size = 2, 20, 25
	var wg sync.WaitGroup
	for i, db := range []*DB{one, two} {
		wg.Go(func() {
			for k := 0; k < batches; k++ {
				batch := make([]LogEntry, size)
				for j := range batch {
					batch[j] = logEntry(g.ID, 2*(i*batches*size+k*size+j), "")
				}
				if _, err := db.AppendLogEntries(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	follow := func(db *DB) error {
		seen := map[int64]bool{}
		since, last := "0", int64(0)
		deadline := time.Now().Add(20 * time.Second)
		for len(seen) < writers*batches*size {
			if time.Now().After(deadline) {
				return fmt.Errorf("saw %d entries of %d", len(seen), writers*batches*size)
			}
			page, err := db.LogEntries(ctx, org, "fr-par-1", g.ID, LogQuery{Since: since, PerPage: 7})
			if err != nil {
				return err
			}
			for _, e := range page.Entries {
				if e.Cursor <= last || seen[e.Cursor] {
					return fmt.Errorf("cursor %d after %d", e.Cursor, last)
				}
				seen[e.Cursor], last = true, e.Cursor
			}
			since = page.Next
		}
		return nil
	}
	errs := make(chan error, 2)
	for _, db := range []*DB{one, two} {
		wg.Go(func() { errs <- follow(db) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestLogWriter: entries added at once are written a batch per write, and
// what does not fit the queue is dropped and counted, never blocking.
func TestLogWriter(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	org := mustOrg(t, db, "acme").ID
	g := mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: "web"})
	w := db.NewLogWriter()
	w.interval, w.batch, w.pending = time.Hour, 100, 250
	entries := make([]LogEntry, 300)
	for i := range entries {
		entries[i] = logEntry(g.ID, 2*i, "")
	}
	_, w0 := db.Transactions()
	w.Add(entries) // 250 queued, 50 dropped
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	// A full batch waiting does not wait for the interval (an hour here):
	// what is queued goes at once, a batch per write.
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Stored < 250 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := w.Stats(); st.Stored != 250 || st.Dropped != 50 {
		t.Errorf("stats %+v, want 250 stored and 50 dropped", st)
	}
	if _, w1 := db.Transactions(); w1-w0 != 3 {
		t.Errorf("%d writes for 250 entries in batches of 100, want 3", w1-w0)
	}
	// Less than a batch waits for the interval, or the end of Run.
	w.Add(entries[:10])
	time.Sleep(50 * time.Millisecond)
	if st := w.Stats(); st.Stored != 250 {
		t.Errorf("stored %d before the interval, want 250", st.Stored)
	}
	stop()
	<-done
	if st := w.Stats(); st.Stored != 260 {
		t.Errorf("stored %d after Run ended, want the 260 queued", st.Stored)
	}
}

// TestCountersLast: counts add up over hosts; a kernel count below the
// last one (the kernel's table made anew) is folded into the base, so
// nothing counted is lost; last_matched moves only with the packets; a
// reset zeroes the group on every host (the host whose kernel was reset
// too, the others through their base), is audited without moving the
// generation, and leaves other groups alone; counts of removed hosts and
// deleted groups go with them.
func TestCountersLast(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	db, g, other := f.db, f.stateful, f.stateless
	h1, err := db.EnsureHost(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	h2, _, err := db.CreateHost(ctx, "h2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := mustCreateRule(t, db, f.org, "fr-par-1", g.ID, RuleInput{})
	at := func(s int) time.Time { return time.Unix(1_700_000_000+int64(s), 0).UTC() }
	record := func(s int, host string, tag string, packets, bytes uint64) {
		t.Helper()
		if err := db.RecordCounters(ctx, at(s), HostCounters{HostID: host, Groups: map[string]map[string]Counter{
			g.ID: {tag: {packets, bytes}}, other.ID: {tag: {1, 1}}}}); err != nil {
			t.Fatal(err)
		}
	}
	want := func(step, tag string, packets, bytes uint64, matched int) {
		t.Helper()
		got, err := db.GroupCounters(ctx, f.org, "fr-par-1", g.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := got[tag]
		wantAt := time.Time{}
		if matched >= 0 {
			wantAt = at(matched)
		}
		if c.Packets != packets || c.Bytes != bytes || !c.LastMatched.Equal(wantAt) {
			t.Errorf("%s: %s = %d packets %d bytes, last matched %v; want %d, %d, %v", step, tag, c.Packets, c.Bytes, c.LastMatched, packets, bytes, wantAt)
		}
	}
	gen0, _ := db.Generation(ctx)
	record(1, h1.ID, r.ID, 10, 1000)
	record(2, h2.ID, r.ID, 5, 500)
	want("two hosts", r.ID, 15, 1500, 2)
	record(3, h1.ID, r.ID, 10, 1000)
	want("unchanged", r.ID, 15, 1500, 2)
	record(4, h1.ID, r.ID, 3, 300) // h1's table made anew: 10 folded in
	want("after h1's kernel started again", r.ID, 18, 1800, 4)
	record(5, h1.ID, r.ID, 4, 400)
	want("counting on", r.ID, 19, 1900, 5)
	record(6, h2.ID, "default_in", 0, 0)
	want("a tag that never matched", "default_in", 0, 0, -1)
	if gen, _ := db.Generation(ctx); gen != gen0 {
		t.Fatalf("generation moved from %d to %d: counts are not changes", gen0, gen)
	}

	// Reset, h1's kernel reset with it.
	if err := db.ResetCounters(WithActor(ctx, "user ops@example.com"), f.org, "fr-par-1", g.ID, h1.ID); err != nil {
		t.Fatal(err)
	}
	want("reset", r.ID, 0, 0, 5)
	record(7, h1.ID, r.ID, 2, 200) // h1 from zero
	record(8, h2.ID, r.ID, 7, 700) // h2 from 5: 2 since the reset
	want("after the reset", r.ID, 4, 400, 8)
	record(9, h2.ID, r.ID, 1, 100) // h2's table made anew
	want("h2 started again after the reset", r.ID, 5, 500, 9)
	if c, _ := db.GroupCounters(ctx, f.org, "fr-par-1", other.ID); c[r.ID].Packets != 2 {
		t.Errorf("the other group's count = %d, want 2 (not reset)", c[r.ID].Packets)
	}
	if gen, _ := db.Generation(ctx); gen != gen0 {
		t.Errorf("generation moved from %d to %d with a reset", gen0, gen)
	}
	events, err := db.Events(ctx, f.org, "fr-par-1", g.ID, 1)
	if err != nil || len(events) != 1 {
		t.Fatal(events, err)
	}
	if e := events[0]; e.Action != ActionResetCounters || e.Actor != "user ops@example.com" || e.Generation != gen0 ||
		!strings.Contains(string(e.Before), `"`+r.ID+`":{"Packets":19,"Bytes":1900}`) {
		t.Errorf("audit entry %+v %s", e, e.Before)
	}
	if v, _, _ := db.Versions(ctx, f.org, "fr-par-1", g.ID, Page{}); v[0].Generation > gen0 {
		t.Errorf("a reset made a version: %+v", v[0])
	}
	if err := db.ResetCounters(ctx, f.other, "fr-par-1", g.ID, ""); ErrorCode(err) != CodeNotFound {
		t.Errorf("another organization's reset: %v, want not found", err)
	}

	// The totals /metrics reads: with the rule's action and the policies.
	totals, err := db.CounterTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(totals, func(c CounterTotal) bool { return c.GroupID == g.ID && c.Tag == r.ID })
	if i < 0 || totals[i].Packets != 5 || totals[i].RuleAction != Accept || totals[i].Inbound != Accept {
		t.Errorf("totals = %+v", totals)
	}

	// Unknown hosts and groups are skipped; a removed host's counts go.
	if err := db.RecordCounters(ctx, at(10), HostCounters{HostID: "nowhere", Groups: map[string]map[string]Counter{g.ID: {r.ID: {100, 1}}}},
		HostCounters{HostID: h2.ID, Groups: map[string]map[string]Counter{uuid.NewString(): {r.ID: {100, 1}}}}); err != nil {
		t.Fatal(err)
	}
	want("unknown host and group", r.ID, 5, 500, 9)
	if _, err := db.RemoveHost(ctx, "h2"); err != nil {
		t.Fatal(err)
	}
	want("h2 removed", r.ID, 2, 200, 7)
}

// TestObserveFieldsKept: rules' log and groups' log_default_drops are
// Rampart fields: a set-all element or a patch that leaves them out keeps
// them; versions keep them, diffs name them and a revert restores them;
// a group from before the field reads as logging its default drops.
func TestObserveFieldsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	db, g := f.db, f.stateful
	if !g.LogDefaultDrops {
		t.Fatal("a new group does not log its default drops")
	}
	quiet := mustCreateGroup(t, db, f.org, "fr-par-1", GroupInput{Name: "quiet", LogDefaultDrops: ptr(false)})
	if quiet.LogDefaultDrops {
		t.Fatal("log_default_drops false not kept at creation")
	}
	r := mustCreateRule(t, db, f.org, "fr-par-1", g.ID, RuleInput{Log: ptr(true), DestPortFrom: ptr(22)})
	if !r.Log {
		t.Fatal("log not set at creation")
	}
	rules, err := db.SetRules(ctx, f.org, "fr-par-1", g.ID, []RuleInput{{ID: r.ID, IPRange: "0.0.0.0/0", Action: Drop}})
	if err != nil || !rules[len(rules)-1].Log {
		t.Fatalf("set-all without log: %+v %v", rules, err)
	}
	if r, err = db.UpdateRule(ctx, f.org, "fr-par-1", g.ID, r.ID, RulePatch{Action: ptr(Accept)}); err != nil || !r.Log {
		t.Fatalf("patch without log: %+v %v", r, err)
	}
	if _, err := db.UpdateGroup(ctx, f.org, "fr-par-1", g.ID, GroupPatch{Description: ptr("d")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Group(ctx, f.org, "fr-par-1", g.ID); !got.LogDefaultDrops {
		t.Error("a patch without log_default_drops changed it")
	}
	v1 := latestVersion(t, db, f.org, g.ID)
	if _, err := db.UpdateRule(ctx, f.org, "fr-par-1", g.ID, r.ID, RulePatch{Log: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateGroup(ctx, f.org, "fr-par-1", g.ID, GroupPatch{LogDefaultDrops: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	cmp, err := db.CompareVersions(ctx, f.org, "fr-par-1", g.ID, latestVersion(t, db, f.org, g.ID), v1)
	if err != nil {
		t.Fatal(err)
	}
	d := cmp.Diff
	if len(d.Changed) != 1 || !slices.Contains(d.Changed[0].Fields, "log") || len(d.Settings) != 1 || d.Settings[0].Field != "log_default_drops" {
		t.Errorf("diff = %+v", d)
	}
	reverted, rules, err := db.RevertGroup(ctx, f.org, "fr-par-1", g.ID, v1)
	if err != nil {
		t.Fatal(err)
	}
	if !reverted.LogDefaultDrops || !rules[len(rules)-1].Log {
		t.Errorf("revert to version %d: log_default_drops %v, log %v", v1, reverted.LogDefaultDrops, rules[len(rules)-1].Log)
	}
	// A version written before the field existed reads as true.
	if _, err := db.exec(ctx, `UPDATE group_versions SET settings = replace(settings, ',"log_default_drops":true', '') WHERE group_id = ?`, g.ID); err != nil {
		t.Fatal(err)
	}
	v, err := db.Version(ctx, f.org, "fr-par-1", g.ID, v1)
	if err != nil || !v.Settings.LogDefaultDrops {
		t.Errorf("a version without the field: %+v %v", v.Settings, err)
	}
}

func latestVersion(t *testing.T, db *DB, org, gid string) int {
	t.Helper()
	v, _, err := db.Versions(context.Background(), org, "fr-par-1", gid, Page{})
	if err != nil || len(v) == 0 {
		t.Fatal(v, err)
	}
	return v[0].Version
}

// TestObserveFieldsUnreadable: a stored log or log_default_drops that is
// not 0 or 1 (the schema refuses it; a database edited without its checks
// could hold one) marks the row unreadable, failing its group closed.
func TestObserveFieldsUnreadable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := mustCreateRule(t, f.db, f.org, "fr-par-1", f.stateless.ID, RuleInput{})
	var stmts []string
	switch f.db.Engine() {
	case "sqlite":
		stmts = []string{`PRAGMA ignore_check_constraints = ON`}
	case "postgres":
		stmts = []string{`ALTER TABLE rules DROP CONSTRAINT rules_log_check`,
			`ALTER TABLE security_groups DROP CONSTRAINT security_groups_log_default_drops_check`}
	}
	stmts = append(stmts, `UPDATE rules SET log = 2 WHERE id = '`+r.ID+`'`,
		`UPDATE security_groups SET log_default_drops = 7 WHERE id = '`+f.stateless.ID+`'`)
	if f.db.Engine() == "sqlite" {
		stmts = append(stmts, `PRAGMA ignore_check_constraints = OFF`)
	}
	for _, stmt := range stmts {
		if _, err := f.db.exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	snap, err := f.db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(snap.Unreadable[f.stateless.ID], "\n")
	for _, want := range []string{"rule " + r.ID + ": log", "group " + f.stateless.ID + ": log_default_drops"} {
		if !strings.Contains(got, want) {
			t.Errorf("unreadable = %q, want it to contain %q", got, want)
		}
	}
	// And the schema refuses it when its checks are on.
	if _, err := f.db.exec(ctx, `UPDATE rules SET log = 3 WHERE id = '`+r.ID+`'`); err == nil && f.db.Engine() == "sqlite" {
		t.Error("the schema took log = 3")
	}
}
