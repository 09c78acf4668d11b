package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBindingNeedsAGrant: binding a server to an interface or to the host
// itself needs a grant; another organization's interface answers exactly
// like a missing grant; an unknown host and a host outside every grant
// answer alike; the first organization may bind anything.
func TestBindingNeedsAGrant(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	first := mustOrg(t, db, "first").ID
	other := mustOrg(t, db, "other").ID
	third := mustOrg(t, db, "third").ID
	if _, err := db.EnsureHost(ctx, "console"); err != nil {
		t.Fatal(err)
	}
	h2, _, err := db.CreateHost(ctx, "edge-2", 0)
	if err != nil {
		t.Fatal(err)
	}

	// The first organization: everything, everywhere.
	mustCreateServer(t, db, first, "fr-par-1", ServerInput{Name: "a", Interface: "tap-a"})
	mustCreateServer(t, db, first, "fr-par-1", ServerInput{Name: "h", Local: true})

	refused := func(in ServerInput) error {
		t.Helper()
		before := dump(t, db)
		_, err := db.CreateServer(ctx, other, "fr-par-1", in)
		if dump(t, db) != before {
			t.Errorf("refused binding %+v wrote", in)
		}
		return err
	}
	noGrant := refused(ServerInput{Name: "x", Interface: "tap-b"})
	var se *Error
	if !errors.As(noGrant, &se) || se.Code != CodeForbidden || se.Resource != "interface" {
		t.Fatalf("without a grant: %v, want forbidden naming interface", noGrant)
	}
	if err := refused(ServerInput{Name: "x", Local: true}); ErrorCode(err) != CodeForbidden {
		t.Fatalf("local without a grant: %v", err)
	}

	if _, err := db.CreateGrant(ctx, other, "", []string{"tap-*"}, false); err != nil {
		t.Fatal(err)
	}
	mustCreateServer(t, db, other, "fr-par-1", ServerInput{Name: "b", Interface: "tap-b"})
	// tap-a is granted by pattern but the first organization holds it:
	// the answer is the missing grant's, to the byte.
	taken := refused(ServerInput{Name: "x", Interface: "tap-a"})
	want := refused(ServerInput{Name: "x", Interface: "tap-a"})
	if taken.Error() != want.Error() || ErrorCode(taken) != CodeForbidden {
		t.Fatalf("taken: %v", taken)
	}
	// Same wording as not granted, with the name sent.
	ng := refused(ServerInput{Name: "x", Interface: "vnet9"})
	if ng.Error() != replaceAll(taken.Error(), "tap-a", "vnet9") {
		t.Errorf("taken %q and not granted %q differ", taken, ng)
	}
	// On another host the same name is free.
	if _, err := db.CreateGrant(ctx, other, "edge-2", []string{"tap-a"}, true); err != nil {
		t.Fatal(err)
	}
	s := mustCreateServer(t, db, other, "fr-par-1", ServerInput{Name: "c", Interface: "tap-a", Host: "edge-2"})
	if s.HostID != h2.ID || s.Host != "edge-2" {
		t.Errorf("server host = %s %s, want edge-2", s.HostID, s.Host)
	}
	// A host outside every grant reads as one that does not exist.
	unknown := func(org, host string) string {
		_, err := db.CreateServer(ctx, org, "fr-par-1", ServerInput{Name: "y", Host: host})
		if ErrorCode(err) != CodeInvalid || FieldMessage(err, "host") == "" {
			t.Fatalf("host %s for %s: %v", host, org, err)
		}
		return replaceAll(FieldMessage(err, "host"), host, "H")
	}
	if a, b := unknown(third, "edge-2"), unknown(third, "nowhere"); a != b {
		t.Errorf("ungranted host %q and missing host %q differ", a, b)
	}
}

// TestJoinTokens: a join token is redeemed once, and not after it
// expired.
func TestJoinTokens(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	h, secret, err := db.CreateHost(ctx, "edge-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.RedeemJoinToken(ctx, secret)
	if err != nil || got.ID != h.ID || got.EnrolledAt.IsZero() {
		t.Fatalf("redeem: %+v %v", got, err)
	}
	if _, err := db.RedeemJoinToken(ctx, secret); ErrorCode(err) != CodeUnauthorized {
		t.Fatalf("second redeem: %v, want refused", err)
	}
	_, secret, err = db.NewJoinToken(ctx, "edge-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	db.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := db.RedeemJoinToken(ctx, secret); ErrorCode(err) != CodeUnauthorized {
		t.Fatalf("expired redeem: %v, want refused", err)
	}
}

// TestHostsAndReports: the first host is the default; servers without a
// host are on it and follow it when it changes; reports never move the
// generation; a host with servers, or the default among others, is kept.
func TestHostsAndReports(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	org := mustOrg(t, db, "acme").ID
	a, err := db.EnsureHost(ctx, "a")
	if err != nil || !a.Default {
		t.Fatalf("first host: %+v %v", a, err)
	}
	b, _, err := db.CreateHost(ctx, "b", 0)
	if err != nil || b.Default {
		t.Fatalf("second host: %+v %v", b, err)
	}
	s := mustCreateServer(t, db, org, "fr-par-1", ServerInput{Name: "vm", Interface: "vnet1"})
	if s.HostID != a.ID {
		t.Fatalf("server host = %s, want the default %s", s.HostID, a.ID)
	}
	if _, err := db.RemoveHost(ctx, "a"); ErrorCode(err) != CodeConflict {
		t.Fatalf("remove a host with servers: %v", err)
	}
	if _, err := db.SetDefaultHost(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	snap, _ := db.Snapshot(ctx)
	if len(snap.ForHost(b.ID).Servers) != 1 || len(snap.ForHost(a.ID).Servers) != 0 {
		t.Fatalf("after the default moved: b has %d servers, a %d", len(snap.ForHost(b.ID).Servers), len(snap.ForHost(a.ID).Servers))
	}
	gen, _ := db.Generation(ctx)
	if err := db.RecordHostReport(ctx, b.ID, HostReport{LastSeen: time.Now(), Version: "v1", AppliedGeneration: gen,
		Groups: map[string]GroupReport{"g": {AppliedGeneration: 3, Error: "boom"}}}); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.Generation(ctx); after != gen {
		t.Errorf("a report moved the generation from %d to %d", gen, after)
	}
	reports, err := db.HostReports(ctx)
	if err != nil || reports[b.ID].Version != "v1" || reports[b.ID].Groups["g"].Error != "boom" {
		t.Fatalf("reports = %+v %v", reports, err)
	}
	// Only the reports newer than those known are read again.
	seenA := time.Now().Add(-time.Minute).UTC().Truncate(time.Microsecond)
	if err := db.RecordHostReport(ctx, a.ID, HostReport{LastSeen: seenA, Version: "v0",
		Groups: map[string]GroupReport{"g": {AppliedGeneration: 2}}}); err != nil {
		t.Fatal(err)
	}
	newer, present, err := db.HostReportsNewer(ctx, map[string]time.Time{a.ID: seenA, b.ID: seenA})
	if err != nil || len(newer) != 1 || newer[b.ID].Groups["g"].Error != "boom" || !present[a.ID] || !present[b.ID] || len(present) != 2 {
		t.Fatalf("newer than a's report: %+v, present %v, %v", newer, present, err)
	}
	newer, _, err = db.HostReportsNewer(ctx, map[string]time.Time{a.ID: seenA.Add(-time.Microsecond), b.ID: time.Now().Add(time.Hour)})
	if err != nil || len(newer) != 1 || newer[a.ID].Version != "v0" || newer[a.ID].Groups["g"].AppliedGeneration != 2 {
		t.Fatalf("newer than what was known of a: %+v, %v", newer, err)
	}
	if _, err := db.RemoveHost(ctx, "a"); err != nil {
		t.Fatalf("remove a host without servers: %v", err)
	}
}

func replaceAll(s, old, new string) string { return strings.ReplaceAll(s, old, new) }
