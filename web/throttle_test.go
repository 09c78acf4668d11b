package web

import (
	"sync"
	"testing"
	"time"
)

func TestLoginThrottleRefills(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newLoginThrottle()
	th.now = func() time.Time { return now }
	keys := []string{"account ops@example.com", "address 192.0.2.1"}
	for i := 0; i < accountBurst; i++ {
		if _, w := th.reserve(keys...); w != 0 {
			t.Fatalf("attempt %d throttled for %s", i+1, w)
		}
	}
	_, w := th.reserve(keys...)
	if w <= 0 || w > accountRefill {
		t.Fatalf("after %d failures: wait %s, want (0, %s]", accountBurst, w, accountRefill)
	}
	// Another account from the same address is not locked yet.
	if _, w := th.reserve("account other@example.com", "address 192.0.2.1"); w != 0 {
		t.Fatalf("other account throttled for %s", w)
	}
	now = now.Add(w)
	if _, w := th.reserve(keys...); w != 0 {
		t.Fatalf("after waiting, still throttled for %s", w)
	}
}

// TestSignInThrottleReservesBeforeChecking (hardening finding 2): attempts
// made at once each take their token before the password is checked, so
// that 40 parallel attempts let exactly the bucket's 5 through; a success
// gives its token back.
func TestSignInThrottleReservesBeforeChecking(t *testing.T) {
	th := newLoginThrottle()
	keys := []string{"account ops@example.com", "address 192.0.2.1"}
	var mu sync.Mutex
	passed := 0
	var wg sync.WaitGroup
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, w := th.reserve(keys...); w == 0 {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if passed != accountBurst {
		t.Fatalf("%d attempts passed, want %d", passed, accountBurst)
	}
	th2 := newLoginThrottle()
	for range 2 * accountBurst {
		refund, w := th2.reserve(keys...)
		if w != 0 {
			t.Fatalf("successful sign-ins throttled: wait %s", w)
		}
		refund()
	}
}
