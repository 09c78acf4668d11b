package web_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// TestTwoConsolesAsOne: two consoles (two servers, two stores, two
// reconcilers, as two `rampart serve` processes) on one database behave as
// one behind a load balancer: a session, a CSRF token and a sign-in
// throttle started on one hold on the other, what one changes the other
// shows and enforces, and a token revoked on one is refused by the other
// within a second.
func TestTwoConsolesAsOne(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t)
	one := startConsole(t, dsn, true, func(*web.Config) {})
	org, err := one.db.EnsureOrganization(ctx, "Acme Hosting")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.db.CreateUser(ctx, org.ID, consoleEmail, consolePassword); err != nil {
		t.Fatal(err)
	}
	one.org = org
	two := startConsole(t, dsn, true, func(*web.Config) {})
	two.org = org

	// Signed in on one, the same cookies (one site behind the balancer)
	// are signed in on two, and a form with one's CSRF token is taken.
	b1 := one.signedIn(t)
	b2 := two.browser(t)
	b2.c.Jar = b1.c.Jar
	wantStatus(t, b2.get("/security-groups", false), http.StatusOK)
	wantStatus(t, b1.get("/security-groups", false), http.StatusOK)
	if b1.token == "" {
		t.Fatal("no CSRF token on one's page")
	}
	b2.token = b1.token // the token one's page carries, posted to two
	p := b2.post("/security-groups/new", url.Values{"name": {"made on two"}, "inbound_default_policy": {"drop"},
		"outbound_default_policy": {"accept"}, "zone": {"fr-par-1"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	groups, _, err := one.db.Groups(ctx, org.ID, "fr-par-1", store.GroupFilter{Name: "made on two"})
	if err != nil || len(groups) != 1 {
		t.Fatalf("group made on two, read on one: %v, %v", groups, err)
	}

	// A change through one's API is read and enforced by two.
	tok, secret, err := one.db.CreateToken(ctx, org.ID, "ci")
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"X-Auth-Token": secret, "Content-Type": "application/json"}
	made := call(t, http.MethodPost, one.ts.URL+"/instance/v1/zones/fr-par-1/security_groups", `{"name":"api","project":"`+org.ID+`"}`, h)
	if made.status != http.StatusCreated && made.status != http.StatusOK {
		t.Fatalf("create through one: %d %s", made.status, made.raw)
	}
	id, _ := field(made.body, "security_group", "id").(string)
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := call(t, http.MethodGet, two.ts.URL+"/instance/v1/zones/fr-par-1/security_groups/"+id, "", h)
		if got.status == http.StatusOK && field(got.body, "security_group", "state") == "available" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group made through one not available on two: %d %s", got.status, got.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Revoked on one, refused by two within a second.
	if err := one.db.DeleteToken(ctx, org.ID, tok.AccessKey); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for call(t, http.MethodGet, two.ts.URL+"/instance/v1/zones/fr-par-1/security_groups", "", h).status != http.StatusUnauthorized {
		if time.Since(start) > time.Second {
			t.Fatal("token revoked on one still taken by two after a second")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Signed out on two, signed out on one.
	wantStatus(t, b2.post("/logout", nil, false, false), http.StatusSeeOther)
	if p := b1.get("/security-groups", false); p.status != http.StatusSeeOther {
		t.Fatalf("after signing out on two, one answers %d", p.status)
	}

	// Wrong passwords count on both: 5 for the account in all.
	statuses := map[int]int{}
	for i := range 8 {
		b := one.browser(t)
		if i%2 == 1 {
			b = two.browser(t)
		}
		b.get("/login", false)
		statuses[b.post("/login", url.Values{"email": {consoleEmail}, "password": {"wrong password"}}, false, false).status]++
	}
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 3 {
		t.Fatalf("statuses over two consoles = %v, want 5×401 and 3×429", statuses)
	}
}
