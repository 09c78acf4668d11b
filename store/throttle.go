package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A Bucket is one token bucket of the sign-in throttle: Burst attempts at
// once, and one more every Every. Buckets live in the database, so that
// every console on it counts the same attempts.
type Bucket struct {
	Key   string // what it counts, such as "account ops@example.com"
	Burst int
	Every time.Duration
}

// bucketState is a bucket's row brought up to date.
type bucketState struct {
	Bucket
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func (b *bucketState) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(float64(b.Burst), b.tokens+float64(now.Sub(b.at))/float64(b.Every))
		b.at = now
	}
}

// wait returns how long until the bucket holds a whole token.
func (b *bucketState) wait() time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.Every))
}

// fullAt is when the bucket is full again, from when on its row may go.
func (b *bucketState) fullAt() time.Time {
	return b.at.Add(time.Duration((float64(b.Burst) - b.tokens) * float64(b.Every)))
}

// sweepEvery is how often a process drops the rows of full buckets.
const sweepEvery = time.Minute

// Reserve takes an attempt from every bucket before a password is checked,
// all or none, and returns a function that gives them back (a sign-in that
// succeeds is not held against the account). When a bucket is empty it
// takes nothing and returns how long to wait. Reserving before the check
// is what makes parallel attempts count: reading the buckets and spending
// only after the (slow) hash let 40 parallel attempts through where 5 are
// allowed.
func (db *DB) Reserve(ctx context.Context, buckets ...Bucket) (refund func(context.Context) error, wait time.Duration, err error) {
	for _, b := range buckets {
		if b.Key == "" || b.Burst < 1 || b.Every <= 0 {
			return nil, 0, fmt.Errorf("reserve: bucket %q of %d every %s", b.Key, b.Burst, b.Every)
		}
	}
	// Rows are locked in key order, so that two reservations sharing keys
	// cannot wait for each other.
	buckets = slices.Clone(buckets)
	slices.SortFunc(buckets, func(a, b Bucket) int { return strings.Compare(a.Key, b.Key) })
	buckets = slices.CompactFunc(buckets, func(a, b Bucket) bool { return a.Key == b.Key })
	db.sweepBuckets(ctx)
	err = db.write(ctx, func(tx *txn) error {
		now := db.Now()
		states, err := lockBuckets(ctx, tx, buckets, now)
		if err != nil {
			return err
		}
		for _, b := range states {
			wait = max(wait, b.wait())
		}
		if wait > 0 {
			return nil
		}
		for i := range states {
			states[i].tokens--
		}
		return saveBuckets(ctx, tx, states)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reserve sign-in attempt: %w", err)
	}
	if wait > 0 {
		return nil, wait, nil
	}
	return func(ctx context.Context) error {
		err := db.write(ctx, func(tx *txn) error {
			states, err := lockBuckets(ctx, tx, buckets, db.Now())
			if err != nil {
				return err
			}
			for i := range states {
				states[i].tokens = min(float64(states[i].Burst), states[i].tokens+1)
			}
			return saveBuckets(ctx, tx, states)
		})
		if err != nil {
			return fmt.Errorf("refund sign-in attempt: %w", err)
		}
		return nil
	}, 0, nil
}

// lockBuckets reads the buckets (sorted by key), creating the missing
// ones full, locks their rows until the transaction ends, and brings them
// up to now.
func lockBuckets(ctx context.Context, tx *txn, buckets []Bucket, now time.Time) ([]bucketState, error) {
	args := make([]any, len(buckets))
	for i, b := range buckets {
		// A missing row is a full bucket. ON CONFLICT DO NOTHING waits for
		// another console inserting the same key, then leaves its row.
		if _, err := tx.ExecContext(ctx, `INSERT INTO throttle (key, tokens, at, full_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO NOTHING`, b.Key, float64(b.Burst), formatTime(now), formatTime(now)); err != nil {
			return nil, err
		}
		args[i] = b.Key
	}
	rows, err := tx.QueryContext(ctx, `SELECT key, tokens, at FROM throttle WHERE key IN (`+placeholders(len(args))+`)
		ORDER BY key`+tx.e.lockRows(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	stored := map[string]bucketState{}
	for rows.Next() {
		var b bucketState
		var at string
		if err := rows.Scan(&b.Key, &b.tokens, &at); err != nil {
			return nil, err
		}
		b.at = parseTime(at)
		stored[b.Key] = b
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	states := make([]bucketState, len(buckets))
	for i, b := range buckets {
		s, ok := stored[b.Key]
		if !ok {
			return nil, fmt.Errorf("bucket %q vanished", b.Key)
		}
		s.Bucket = b
		s.refill(now)
		states[i] = s
	}
	return states, nil
}

func saveBuckets(ctx context.Context, tx *txn, states []bucketState) error {
	for _, b := range states {
		if _, err := tx.ExecContext(ctx, `UPDATE throttle SET tokens = ?, at = ?, full_at = ? WHERE key = ?`,
			b.tokens, formatTime(b.at), formatTime(b.fullAt()), b.Key); err != nil {
			return err
		}
	}
	return nil
}

// sweepBuckets drops the rows of buckets that are full again, at most once
// every sweepEvery per process, passing over rows that a sign-in holds. A
// failed sweep is tried again at the next.
func (db *DB) sweepBuckets(ctx context.Context) {
	now := time.Now()
	last := db.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !db.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := db.exec(ctx, `DELETE FROM throttle WHERE key IN (SELECT key FROM throttle WHERE full_at <= ?`+
		db.e.skipLocked()+`)`, formatTime(db.Now())); err != nil {
		db.lastSweep.Store(last)
	}
}
