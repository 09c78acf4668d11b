package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
)

// The console's sizes (web/throttle.go).
const (
	testAccountBurst  = 5
	testAccountRefill = 12 * time.Second
)

func signInBuckets(account, address string) []Bucket {
	return []Bucket{
		{Key: "account " + account, Burst: testAccountBurst, Every: testAccountRefill},
		{Key: "address " + address, Burst: 20, Every: 3 * time.Second},
	}
}

func TestThrottleRefills(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Unix(1_700_000_000, 0)
	db.Now = func() time.Time { return now }
	keys := signInBuckets("ops@example.com", "192.0.2.1")
	for i := 0; i < testAccountBurst; i++ {
		if _, w, err := db.Reserve(ctx, keys...); err != nil || w != 0 {
			t.Fatalf("attempt %d throttled for %s (%v)", i+1, w, err)
		}
	}
	_, w, err := db.Reserve(ctx, keys...)
	if err != nil || w <= 0 || w > testAccountRefill {
		t.Fatalf("after %d failures: wait %s (%v), want (0, %s]", testAccountBurst, w, err, testAccountRefill)
	}
	// Another account from the same address is not locked yet.
	if _, w, err := db.Reserve(ctx, signInBuckets("other@example.com", "192.0.2.1")...); err != nil || w != 0 {
		t.Fatalf("other account throttled for %s (%v)", w, err)
	}
	now = now.Add(w)
	if _, w, err := db.Reserve(ctx, keys...); err != nil || w != 0 {
		t.Fatalf("after waiting, still throttled for %s (%v)", w, err)
	}
}

// TestThrottleReservesBeforeChecking (hardening finding 2): attempts made
// at once each take their token before the password is checked, so that
// 40 parallel attempts let exactly the bucket's 5 through; a success gives
// its token back.
func TestThrottleReservesBeforeChecking(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	keys := signInBuckets("ops@example.com", "192.0.2.1")
	var mu sync.Mutex
	passed := 0
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, w, err := db.Reserve(ctx, keys...)
			if err != nil {
				t.Error(err)
				return
			}
			if w == 0 {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != testAccountBurst {
		t.Fatalf("%d attempts passed, want %d", passed, testAccountBurst)
	}
	keys = signInBuckets("second@example.com", "192.0.2.2")
	for range 2 * testAccountBurst {
		refund, w, err := db.Reserve(ctx, keys...)
		if err != nil || w != 0 {
			t.Fatalf("successful sign-ins throttled: wait %s (%v)", w, err)
		}
		if err := refund(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestThrottleShared: consoles on one database count the same attempts:
// an attacker does not get 5 tries per console.
func TestThrottleShared(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	a, b := openTestDSN(t, dsn), openTestDSN(t, dsn)
	keys := signInBuckets("ops@example.com", "192.0.2.1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for i := range 20 {
		db := a
		if i%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, w, err := db.Reserve(ctx, keys...); err == nil && w == 0 {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != testAccountBurst {
		t.Fatalf("%d attempts passed through two consoles, want %d", passed, testAccountBurst)
	}
}

// TestThrottleDropsFullBuckets: the rows of buckets that are full again go,
// so that the table stays as small as the attempts of the last minutes.
func TestThrottleDropsFullBuckets(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	now := time.Unix(1_700_000_000, 0)
	db.Now = func() time.Time { return now }
	for _, k := range []string{"a", "b", "c"} {
		if _, _, err := db.Reserve(ctx, Bucket{Key: k, Burst: 2, Every: time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		if err := db.queryRow(ctx, `SELECT count(*) FROM throttle`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
	now = now.Add(time.Second) // a, b and c are full again
	db.lastSweep.Store(0)      // the last sweep was long ago
	if _, _, err := db.Reserve(ctx, Bucket{Key: "d", Burst: 2, Every: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d rows after the sweep, want 1 (d)", n)
	}
}
