package web

import (
	"testing"
	"time"
)

func TestLoginThrottleRefills(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	th := newLoginThrottle()
	th.now = func() time.Time { return now }
	keys := []string{"account ops@example.com", "address 192.0.2.1"}
	for i := 0; i < accountBurst; i++ {
		if w := th.wait(keys...); w != 0 {
			t.Fatalf("attempt %d throttled for %s", i+1, w)
		}
		th.fail(keys...)
	}
	w := th.wait(keys...)
	if w <= 0 || w > accountRefill {
		t.Fatalf("after %d failures: wait %s, want (0, %s]", accountBurst, w, accountRefill)
	}
	// Another account from the same address is not locked yet.
	if w := th.wait("account other@example.com", "address 192.0.2.1"); w != 0 {
		t.Fatalf("other account throttled for %s", w)
	}
	now = now.Add(w)
	if w := th.wait(keys...); w != 0 {
		t.Fatalf("after waiting, still throttled for %s", w)
	}
}
