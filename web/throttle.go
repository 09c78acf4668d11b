package web

import (
	"strings"
	"sync"
	"time"
)

// Sign-in throttling: each attempt takes a token from the account's bucket
// and from the client address's before the password is checked; an empty
// bucket answers 429 until it refills. A sign-in that succeeds gives its
// tokens back, so that a user who types the password right is never
// locked out by their own success.
const (
	accountBurst  = 5
	accountRefill = 12 * time.Second // one more attempt every 12 s
	addressBurst  = 20
	addressRefill = 3 * time.Second
	maxThrottled  = 10000 // keys kept before full buckets are dropped

	// maxHashes password checks run at once; others wait up to hashWait
	// for a slot and are then told to retry (429).
	maxHashes = 2
	hashWait  = 5 * time.Second
)

// bucket is a token bucket that can give a token back, which
// golang.org/x/time/rate's limiter cannot once the reservation's time has
// passed (a password check takes tens of milliseconds).
type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
	burst  float64
	every  time.Duration // one token back every this long
}

func (b *bucket) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(b.burst, b.tokens+float64(now.Sub(b.at))/float64(b.every))
		b.at = now
	}
}

// wait returns how long until the bucket holds a whole token.
func (b *bucket) wait() time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(b.every))
}

type loginThrottle struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{buckets: map[string]*bucket{}, now: time.Now}
}

func (t *loginThrottle) get(key string, now time.Time) *bucket {
	if b, ok := t.buckets[key]; ok {
		b.refill(now)
		return b
	}
	if len(t.buckets) >= maxThrottled {
		// Full buckets carry no information: drop them to bound memory.
		for k, b := range t.buckets {
			if b.refill(now); b.tokens >= b.burst {
				delete(t.buckets, k)
			}
		}
	}
	burst, every := accountBurst, accountRefill
	if strings.HasPrefix(key, "address ") {
		burst, every = addressBurst, addressRefill
	}
	b := &bucket{tokens: float64(burst), at: now, burst: float64(burst), every: every}
	t.buckets[key] = b
	return b
}

// reserve takes an attempt from every key's bucket before the password is
// checked, and returns a function that gives them back. When any bucket is
// empty it takes nothing and returns how long to wait. Reserving before
// the check is what makes parallel attempts count: reading the buckets and
// spending only after the (slow) hash let 40 parallel attempts through
// where 5 are allowed.
func (t *loginThrottle) reserve(keys ...string) (refund func(), wait time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	bs := make([]*bucket, len(keys))
	for i, k := range keys {
		bs[i] = t.get(k, now)
		wait = max(wait, bs[i].wait())
	}
	if wait > 0 {
		return nil, wait
	}
	for _, b := range bs {
		b.tokens--
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, b := range bs {
			b.tokens = min(b.burst, b.tokens+1)
		}
	}, 0
}
