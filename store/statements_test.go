package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestStatementsReused: on SQLite a query run again is served by the
// statement the pool prepared, in and out of transactions; the same text
// run while its rows are still open in a transaction runs unprepared
// beside them (one prepared statement has one cursor), and both read
// every row.
func TestStatementsReused(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if db.Engine() == "postgres" {
		// pgx caches PostgreSQL's statements itself.
		if db.rs != nil || db.ws != nil {
			t.Fatal("PostgreSQL's pools have a statement cache of ours")
		}
		return
	}
	if db.rs == nil || db.ws == nil {
		t.Fatal("SQLite's pools cache no statements")
	}
	org := mustOrg(t, db, "acme").ID
	var want []string
	for i := range 3 {
		want = append(want, mustCreateGroup(t, db, org, "fr-par-1", GroupInput{Name: fmt.Sprintf("g%d", i)}).Name)
	}
	slices.Sort(want)
	const q = `SELECT name FROM security_groups WHERE organization_id = ? ORDER BY name`
	names := func(r interface {
		Next() bool
		Scan(...any) error
		Err() error
	}) []string {
		var out []string
		for r.Next() {
			var n string
			if err := r.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The first run asks the pool to prepare it; wait until it has.
	deadline := time.Now().Add(5 * time.Second)
	for db.rs.get(db.e.rebind(q)) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the statement was never prepared")
		}
		time.Sleep(time.Millisecond)
	}
	err := db.read(ctx, func(tx *txn) error {
		outer, err := tx.QueryContext(ctx, q, org)
		if err != nil {
			return err
		}
		defer outer.Close()
		if tx.bound[q] == nil || !tx.busy[q] {
			t.Fatalf("the outer query did not run prepared (bound %v, busy %v)", tx.bound[q] != nil, tx.busy[q])
		}
		var got []string
		for outer.Next() {
			var n string
			if err := outer.Scan(&n); err != nil {
				return err
			}
			got = append(got, n)
			inner, err := tx.QueryContext(ctx, q, org)
			if err != nil {
				return err
			}
			if inner.release != nil {
				t.Fatal("the inner query shares the outer one's open statement")
			}
			if in := names(inner); !slices.Equal(in, want) {
				t.Fatalf("inner query read %v, want %v", in, want)
			}
			inner.Close()
		}
		if !slices.Equal(got, want) {
			t.Fatalf("outer query read %v, want %v", got, want)
		}
		if tx.busy[q] {
			t.Fatal("the statement is still marked busy after its rows ended")
		}
		// Free again: the next run is the prepared statement.
		again, err := tx.QueryContext(ctx, q, org)
		if err != nil {
			return err
		}
		defer again.Close()
		if again.release == nil {
			t.Fatal("a freed statement was not reused")
		}
		if n := names(again); !slices.Equal(n, want) {
			t.Fatalf("read %v, want %v", n, want)
		}
		return outer.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	// QueryRow with no row, and outside a transaction.
	var n string
	if err := db.read(ctx, func(tx *txn) error {
		return tx.QueryRowContext(ctx, q, "nobody").Scan(&n)
	}); err == nil || err.Error() != "sql: no rows in result set" {
		t.Fatalf("a row of nothing: %v", err)
	}
	r, err := db.query(ctx, q, org)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := names(r); !slices.Equal(got, want) {
		t.Fatalf("outside a transaction: %v, want %v", got, want)
	}
}
