package web

import (
	"strings"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// Sign-in throttling: each attempt takes a token from the account's bucket
// and from the client address's before the password is checked; an empty
// bucket answers 429 until it refills. A sign-in that succeeds gives its
// tokens back, so that a user who types the password right is never
// locked out by their own success. The buckets live in the store
// (store.DB.Reserve), so that consoles sharing a database count the same
// attempts; this file holds their sizes.
const (
	accountBurst  = 5
	accountRefill = 12 * time.Second // one more attempt every 12 s
	addressBurst  = 20
	addressRefill = 3 * time.Second

	// maxHashes password checks run at once; others wait up to hashWait
	// for a slot and are then told to retry (429).
	maxHashes = 2
	hashWait  = 5 * time.Second
)

// signInBuckets are the buckets one sign-in attempt takes from: the
// account's (by email, without case) and the client address's.
func signInBuckets(email, addr string) []store.Bucket {
	return []store.Bucket{
		{Key: "account " + strings.ToLower(email), Burst: accountBurst, Every: accountRefill},
		{Key: "address " + addr, Burst: addressBurst, Every: addressRefill},
	}
}
