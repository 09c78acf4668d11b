package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// TestBindingTenancy extends the tenancy sweep to bindings: without a
// grant, no interface and no local (403 permissions_denied naming the
// field), and an interface another organization holds answers exactly as
// one never granted, to the byte: nothing is learned of others.
func TestBindingTenancy(t *testing.T) {
	env := newTestEnv(t) // "acme", the first organization: granted everything
	ctx := context.Background()
	base := env.url + "/instance/v1/zones/fr-par-1/servers"
	if a := call(t, "POST", base, `{"name":"a","interface":"tap-shared"}`, env.auth()); a.status != http.StatusCreated {
		t.Fatalf("first organization: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", base, `{"name":"h","local":true}`, env.auth()); a.status != http.StatusCreated {
		t.Fatalf("first organization, local: %d %s", a.status, a.raw)
	}
	_, _, secretB := env.newOrg(t, "globex")
	_, _, secretC := env.newOrg(t, "initech")
	authB := map[string]string{"X-Auth-Token": secretB, "Content-Type": "application/json"}
	authC := map[string]string{"X-Auth-Token": secretC, "Content-Type": "application/json"}
	gen := env.generation(t)
	for _, tc := range []struct{ body, field string }{
		{`{"name":"x","interface":"tap-free"}`, "interface"},
		{`{"name":"x","local":true}`, "local"},
		{`{"name":"x","interface":"tap-shared"}`, "interface"},
	} {
		a := call(t, "POST", base, tc.body, authB)
		if a.status != http.StatusForbidden || field(a.body, "type") != "permissions_denied" ||
			!strings.Contains(a.raw, `"resource":"`+tc.field+`"`) {
			t.Errorf("%s: %d %s, want 403 permissions_denied naming %s", tc.body, a.status, a.raw, tc.field)
		}
	}
	// B may bind tap-*: tap-shared, which acme holds, answers as for C,
	// which may bind nothing.
	orgB, _ := env.db.EnsureOrganization(ctx, "globex")
	if _, err := env.db.CreateGrant(ctx, orgB.ID, "", []string{"tap-*"}, true); err != nil {
		t.Fatal(err)
	}
	taken := call(t, "POST", base, `{"name":"x","interface":"tap-shared"}`, authB)
	notGranted := call(t, "POST", base, `{"name":"x","interface":"tap-shared"}`, authC)
	if taken.status != http.StatusForbidden || taken.raw != notGranted.raw {
		t.Errorf("held by another organization:\n%d %s\nnot granted:\n%d %s", taken.status, taken.raw, notGranted.status, notGranted.raw)
	}
	localTaken := call(t, "POST", base, `{"name":"x","local":true}`, authB)
	localNot := call(t, "POST", base, `{"name":"x","local":true}`, authC)
	if localTaken.status != http.StatusForbidden || localTaken.raw != localNot.raw {
		t.Errorf("local held by another organization:\n%s\nnot granted:\n%s", localTaken.raw, localNot.raw)
	}
	if after := env.generation(t); after != gen+1 { // the grant only
		t.Errorf("generation moved from %d to %d: a refused binding wrote", gen, after)
	}
	if a := call(t, "POST", base, `{"name":"b","interface":"tap-free"}`, authB); a.status != http.StatusCreated {
		t.Errorf("granted interface: %d %s", a.status, a.raw)
	}
	// A host outside every grant answers as one that does not exist.
	if _, err := env.db.EnsureHost(ctx, "console"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.db.CreateHost(ctx, "edge", 0); err != nil {
		t.Fatal(err)
	}
	outside := call(t, "POST", base, `{"name":"x","host":"edge"}`, authC)
	missing := call(t, "POST", base, `{"name":"x","host":"edgx"}`, authC)
	if outside.status != http.StatusBadRequest || strings.ReplaceAll(outside.raw, "edge", "H") != strings.ReplaceAll(missing.raw, "edgx", "H") {
		t.Errorf("host outside every grant:\n%s\nmissing host:\n%s", outside.raw, missing.raw)
	}
}

// TestConsoleOperatorArea: the first user is an operator and sees the
// Operator area (hosts, organizations, users, grants); other users do not,
// and its pages answer them 404.
func TestConsoleOperatorArea(t *testing.T) {
	env := newConsoleEnv(t, false)
	ctx := context.Background()
	b := env.signedIn(t) // the first user: an operator
	p := b.get("/security-groups", false)
	if p.doc.Find(`nav[aria-label=Operator] a[href="/operator/hosts"]`).Length() != 1 {
		t.Fatal("no Operator area for the first user")
	}
	if _, err := env.db.EnsureHost(ctx, "console"); err != nil {
		t.Fatal(err)
	}
	p = b.post("/operator/hosts", url.Values{"name": {"edge-1"}}, false, false)
	wantStatus(t, p, http.StatusOK)
	token := strings.TrimSpace(p.doc.Find("#join-token").Text())
	if token == "" || p.doc.Find(`tr[data-host="edge-1"]`).Length() != 1 {
		t.Fatalf("no join token or host row: %s", p.body)
	}
	if _, err := env.db.RedeemJoinToken(ctx, token); err != nil {
		t.Errorf("the token shown does not redeem: %v", err)
	}
	p = b.post("/operator/hosts", url.Values{"name": {"bad name!"}}, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if msg := fieldError(p, "h-name"); msg == "" {
		t.Error("bad host name: no message beside the field")
	}

	other, err := env.db.EnsureOrganization(ctx, "Globex")
	if err != nil {
		t.Fatal(err)
	}
	p = b.post("/operator/grants", url.Values{"org": {other.ID}, "host": {"edge-1"}, "interfaces": {"tap-g-*, vnet9"}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	grants, _ := env.db.Grants(ctx, other.ID)
	if len(grants) != 1 || grants[0].HostName != "edge-1" || len(grants[0].Interfaces) != 2 {
		t.Fatalf("grants = %+v", grants)
	}
	p = b.post("/operator/grants", url.Values{"org": {other.ID}, "interfaces": {"tap 1"}}, false, false)
	wantStatus(t, p, http.StatusUnprocessableEntity)
	if fieldError(p, "gr-interfaces") == "" {
		t.Error("bad pattern: no message beside the field")
	}

	p = b.post("/operator/users", url.Values{"email": {"member@globex.test"}, "password": {"a long password"}, "org": {other.ID}}, false, false)
	wantStatus(t, p, http.StatusSeeOther)
	for _, path := range []string{"/operator/hosts", "/operator/organizations", "/operator/users", "/operator/grants"} {
		wantStatus(t, b.get(path, false), http.StatusOK)
	}

	// A member: no Operator area, and its pages do not exist for them.
	m := env.browser(t)
	m.get("/login", false)
	wantStatus(t, m.post("/login", url.Values{"email": {"member@globex.test"}, "password": {"a long password"}}, false, false), http.StatusSeeOther)
	if m.get("/security-groups", false).doc.Find(`nav[aria-label=Operator]`).Length() != 0 {
		t.Error("a member sees the Operator area")
	}
	for _, path := range []string{"/operator/hosts", "/operator/organizations", "/operator/users", "/operator/grants"} {
		wantStatus(t, m.get(path, false), http.StatusNotFound)
	}
	gen, _ := env.db.Generation(ctx)
	wantStatus(t, m.post("/operator/hosts", url.Values{"name": {"sneaky"}}, false, false), http.StatusNotFound)
	if after, _ := env.db.Generation(ctx); after != gen {
		t.Error("a member's post to the Operator area wrote")
	}
	_ = store.HostPending
}
