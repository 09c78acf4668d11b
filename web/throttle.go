package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in throttling: each failed attempt spends a token of the account's
// bucket and of the client address's; an empty bucket answers 429 until it
// refills. Successful sign-ins spend nothing, so a user who types the
// password right is never locked out by their own success.
const (
	accountBurst  = 5
	accountRefill = 12 * time.Second // one more attempt every 12 s
	addressBurst  = 20
	addressRefill = 3 * time.Second
	maxThrottled  = 10000 // keys kept before full buckets are dropped
)

type loginThrottle struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	now     func() time.Time
}

func newLoginThrottle() *loginThrottle {
	return &loginThrottle{buckets: map[string]*rate.Limiter{}, now: time.Now}
}

func (t *loginThrottle) limiter(key string) *rate.Limiter {
	if l, ok := t.buckets[key]; ok {
		return l
	}
	if len(t.buckets) >= maxThrottled {
		// Full buckets carry no information: drop them to bound memory.
		now := t.now()
		for k, l := range t.buckets {
			if l.TokensAt(now) >= float64(l.Burst()) {
				delete(t.buckets, k)
			}
		}
	}
	burst, every := accountBurst, accountRefill
	if len(key) > 8 && key[:8] == "address " {
		burst, every = addressBurst, addressRefill
	}
	l := rate.NewLimiter(rate.Every(every), burst)
	t.buckets[key] = l
	return l
}

// wait returns how long the caller must wait before another attempt for
// any of keys, or 0.
func (t *loginThrottle) wait(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var longest time.Duration
	for _, k := range keys {
		l := t.limiter(k)
		if l.TokensAt(now) >= 1 {
			continue
		}
		r := l.ReserveN(now, 1)
		if d := r.DelayFrom(now); d > longest {
			longest = d
		}
		r.CancelAt(now)
	}
	return longest
}

// fail records a failed attempt against every key.
func (t *loginThrottle) fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		t.limiter(k).AllowN(now, 1)
	}
}
