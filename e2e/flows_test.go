package e2e

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
)

// zone is where the flows work unless they test the zone itself.
const zone = "fr-par-1"

// TestSignIn is flow 1: a wrong password is refused with a message; the
// right one opens the security group list.
func TestSignIn(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "signin")
	p := newTab(t, srv)

	p.open("/security-groups", "redirected-to-sign-in")
	p.visible(p.role("heading", "Sign in to the console"), "the sign-in heading")

	p.fill("Email", a.Email)
	p.fill("Password", "not-"+a.Password)
	p.expectFailedLoad(http.StatusUnauthorized, "/login")
	p.click(p.button("Sign in"), "Sign in")
	p.visible(p.role("alert", nil), "the refusal of a wrong password")
	p.see("wrong-password")
	if err := expect.Page(p.Page).ToHaveURL(regexp.MustCompile(`/login`)); err != nil {
		t.Errorf("a wrong password left the sign-in page: %v", err)
	}

	p.fill("Email", a.Email)
	p.fill("Password", a.Password)
	p.click(p.button("Sign in"), "Sign in")
	p.visible(p.role("heading", "Security groups"), "the security groups heading")
	p.visible(p.text(a.Email), "the signed-in user's email")
	p.see("signed-in")

	p.click(p.button("Sign out"), "Sign out")
	p.visible(p.role("heading", "Sign in to the console"), "the sign-in page after signing out")
	p.see("signed-out")
}

// TestCreateGroup is flow 2: the form preselects the recommended
// configuration (inbound drop, SMTP blocked, stateful); the new group is
// listed in the zone it was created in, with its badges.
func TestCreateGroup(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "create")
	p := newTab(t, srv)
	p.signIn(a)
	p.see("groups-empty")

	p.click(p.link("+ Create a security group"), "Create a security group")
	p.visible(p.role("heading", "Create a security group"), "the create form")
	p.see("create-form")
	p.hasValue("Inbound default policy", "drop")
	p.hasValue("Outbound default policy", "accept")
	p.isChecked("Stateful", true)
	p.isChecked("Enable SMTP", false) // SMTP blocked by default

	// A group is created in the zone chosen in the form: take the second
	// zone, not the one the console shows.
	const name, other = "web-create", "nl-ams-1"
	p.fill("Name", name)
	p.fill("Description", "Front web servers")
	p.choose("Zone", other)
	p.click(p.button("Create security group"), "Create security group")
	p.visible(p.role("heading", regexp.MustCompile("^"+name)), "the new group's page")
	p.see("created")

	p.open("/security-groups?zone="+other, "list")
	row := p.groupRow(name)
	for _, cell := range []string{"Front web servers", other, "Stateful", "Drop", "Accept"} {
		p.visible(roleIn(row, "cell", cell), "the cell "+cell+" of the new group's row")
	}
	if got, want := p.cellTexts(row), []string{name, "Front web servers", other, "Stateful", "Drop", "Accept", "0"}; !slices.Equal(got[:7], want) {
		t.Errorf("row of %s = %q, want it to start with %q", name, got, want)
	}

	tok := srv.newToken(t, a.Org)
	g := srv.groupByName(t, tok, other, name)
	if !g.Stateful || g.InboundDefaultPolicy != "drop" || g.OutboundDefaultPolicy != "accept" || !g.EnableDefaultSecurity {
		t.Errorf("API: %+v, want stateful, inbound drop, outbound accept, SMTP blocked", g)
	}
	p.open("/security-groups?zone="+zone, "list-other-zone")
	if err := expect.Locator(p.link(name)).ToHaveCount(0); err != nil {
		t.Errorf("%s (created in %s) is listed in %s: %v", name, other, zone, err)
	}
}

// TestAddRules is flow 3: inbound SSH and HTTP from 0.0.0.0/0 with the
// presets, an outbound rule by hand; each shows in order with its position.
func TestAddRules(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "rules")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-rules", true)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")

	p.preset("SSH")
	p.hasValue("From port", "22")
	p.hasValue("IP range", "0.0.0.0/0")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22")

	p.preset("HTTP")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 80")

	p.choose("Direction", "Outbound (from the servers)")
	p.choose("Action", "Accept")
	p.choose("Protocol", "UDP")
	p.fill("IP range", "9.9.9.9/32")
	p.fill("From port", "53")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("outbound", "3 Accept UDP 9.9.9.9 53")
	p.see("rules-added")

	// A bad rule is refused beside its field, and nothing is added.
	p.fill("IP range", "10.0.0.300/8")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/"+g.ID+"/rules")
	p.click(p.button("Add rule"), "Add rule")
	if err := expect.Locator(p.label("IP range")).ToHaveAttribute("aria-invalid", "true"); err != nil {
		t.Errorf("a bad IP range is not marked invalid: %v", err)
	}
	p.visible(p.text(regexp.MustCompile(`not a CIDR range`)), "the IP range's error")
	p.see("bad-rule")
	p.expectRules("outbound", "3 Accept UDP 9.9.9.9 53")

	p.reload("reloaded")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 80")
	p.expectRules("outbound", "3 Accept UDP 9.9.9.9 53")
	if got := srv.rules(t, tok, g.ID, "inbound"); len(got) != 2 {
		t.Errorf("API: %d inbound rules, want 2", len(got))
	}
}

// TestReorderRules is flow 4: move a rule with the keyboard, then by
// dragging a row; the order survives a reload and is what the API answers.
func TestReorderRules(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "reorder")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-reorder", true)
	for _, port := range []int{22, 80, 443} {
		srv.addRule(t, tok, g.ID, "inbound", port)
	}
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 80", "3 Accept TCP 0.0.0.0/0 443")
	if err := expect.Locator(p.inRules("inbound", "button", "Move rule 1 up")).ToBeDisabled(); err != nil {
		t.Errorf("the first rule can be moved up: %v", err)
	}

	// Keyboard: focus the button, press Enter.
	down := p.inRules("inbound", "button", "Move rule 1 down")
	if err := down.Focus(); err != nil {
		t.Fatalf("focus Move rule 1 down: %v", err)
	}
	if err := p.Keyboard().Press("Enter"); err != nil {
		t.Fatal(err)
	}
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 80", "2 Accept TCP 0.0.0.0/0 22", "3 Accept TCP 0.0.0.0/0 443")
	// The focus follows the rule, so that Enter moves it on.
	if err := expect.Locator(p.inRules("inbound", "button", "Move rule 2 down")).ToBeFocused(); err != nil {
		t.Errorf("after moving rule 1 down with the keyboard, the focus is not on its button: %v", err)
	}
	p.see("moved-with-keyboard")

	// Drag the last row onto the first one.
	rows := roleIn(p.rulesTable("inbound"), "row", nil)
	from := rows.Filter(playwright.LocatorFilterOptions{Has: p.role("cell", "443")})
	to := rows.Filter(playwright.LocatorFilterOptions{Has: p.role("cell", "80")})
	if err := from.DragTo(to); err != nil {
		t.Fatalf("drag the 443 rule onto the 80 one: %v", err)
	}
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 443", "2 Accept TCP 0.0.0.0/0 80", "3 Accept TCP 0.0.0.0/0 22")
	p.see("moved-by-dragging")

	p.reload("reloaded")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 443", "2 Accept TCP 0.0.0.0/0 80", "3 Accept TCP 0.0.0.0/0 22")

	var got []int
	for _, r := range srv.rules(t, tok, g.ID, "inbound") {
		if r.DestPortFrom == nil {
			t.Fatalf("API rule %s has no port", r.ID)
		}
		got = append(got, r.Position, *r.DestPortFrom)
	}
	if want := []int{1, 443, 2, 80, 3, 22}; !slices.Equal(got, want) {
		t.Errorf("API (position, port)... = %v, want %v", got, want)
	}
}

// TestDeleteRule is flow 5: the X of a rule deletes it and the rest close
// up.
func TestDeleteRule(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "delete")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-delete", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	srv.addRule(t, tok, g.ID, "inbound", 80)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 22", "2 Accept TCP 0.0.0.0/0 80")

	p.click(p.inRules("inbound", "button", "Delete rule 1"), "Delete rule 1")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 80")
	p.see("deleted")
	p.reload("reloaded")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 80")
	if got := srv.rules(t, tok, g.ID, "inbound"); len(got) != 1 || *got[0].DestPortFrom != 80 || got[0].Position != 1 {
		t.Errorf("API rules after deleting rule 1 = %+v, want only port 80 at position 1", got)
	}
}

// TestOverview is flow 6: rename, change a default policy, enable SMTP,
// switch stateless and back.
func TestOverview(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "overview")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-overview", true)
	p := newTab(t, srv)
	p.signIn(a)
	p.openGroup(g, "group")
	p.visible(p.role("table", "SMTP rules (not editable)"), "the SMTP rules of a group that blocks SMTP")

	p.fill("Name", "web-renamed")
	p.choose("Inbound default policy", "Accept")
	p.check("Enable SMTP", true)
	p.save()
	p.visible(p.role("heading", regexp.MustCompile("^web-renamed")), "the new name in the heading")
	p.hasValue("Inbound default policy", "accept")
	p.isChecked("Enable SMTP", true)
	if err := expect.Locator(p.role("table", "SMTP rules (not editable)")).ToHaveCount(0); err != nil {
		t.Errorf("SMTP rules still shown with SMTP enabled: %v", err)
	}
	p.see("renamed-smtp-enabled")
	got := srv.group(t, tok, g.ID)
	if got.Name != "web-renamed" || got.InboundDefaultPolicy != "accept" || got.EnableDefaultSecurity {
		t.Errorf("API after saving: %+v, want name web-renamed, inbound accept, SMTP enabled", got)
	}

	p.check("Stateful", false)
	p.save()
	p.isChecked("Stateful", false)
	p.see("stateless")
	if srv.group(t, tok, g.ID).Stateful {
		t.Errorf("API: still stateful after switching to stateless")
	}
	p.check("Stateful", true)
	p.save()
	p.isChecked("Stateful", true)
	if !srv.group(t, tok, g.ID).Stateful {
		t.Errorf("API: still stateless after switching back to stateful")
	}

	p.open("/security-groups?zone="+zone, "list")
	row := p.groupRow("web-renamed")
	p.visible(roleIn(row, "cell", "Stateful"), "Stateful in the list")
	if got := p.cellTexts(row); len(got) < 6 || got[4] != "Accept" {
		t.Errorf("row = %q, want inbound default Accept", got)
	}
}

// TestOrganizationDefault is flow 7: setting a group as the organization
// default moves the badge from the previous default.
func TestOrganizationDefault(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "default")
	tok := srv.newToken(t, a.Org)
	first := srv.createGroup(t, tok, "default-first", true)
	second := srv.createGroup(t, tok, "default-second", true)
	p := newTab(t, srv)
	p.signIn(a)

	p.openGroup(first, "first")
	p.click(p.button("Set as organization default"), "Set as organization default")
	p.visible(p.role("heading", regexp.MustCompile("^default-first.*Organization default")), "the badge in the heading")
	p.open("/security-groups?zone="+zone, "first-is-default")
	p.hasDefaultBadge("default-first", true)
	p.hasDefaultBadge("default-second", false)

	p.openGroup(second, "second")
	p.click(p.button("Set as organization default"), "Set as organization default")
	p.visible(p.text("Servers registered without a group get this one."), "the default's note")
	p.open("/security-groups?zone="+zone, "second-is-default")
	p.hasDefaultBadge("default-first", false)
	p.hasDefaultBadge("default-second", true)

	if g := srv.group(t, tok, first.ID); g.OrganizationDefault {
		t.Errorf("API: %s is still the organization default", g.Name)
	}
	if g := srv.group(t, tok, second.ID); !g.OrganizationDefault {
		t.Errorf("API: %s is not the organization default", g.Name)
	}
}

// TestServers is flow 8: register an Instance and a BareMetal server, link
// and unlink the Instance, and see the refusals that keep a BareMetal
// server out of stateful groups.
func TestServers(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "servers")
	tok := srv.newToken(t, a.Org)
	stateful := srv.createGroup(t, tok, "srv-stateful", true)
	stateless := srv.createGroup(t, tok, "srv-stateless", false)
	p := newTab(t, srv)
	p.signIn(a)

	p.open("/servers?zone="+zone, "servers-empty")
	p.fill("Name", "vm-1")
	p.choose("Type", "Instance")
	p.fill("Host interface", "vnet1")
	p.fill("Addresses", "192.0.2.11, 2001:db8::11")
	p.choose("Security group", "Organization default of the zone")
	p.click(p.button("Register server"), "Register server")
	vm := p.serverRow("vm-1")
	p.visible(roleIn(vm, "cell", "Instance"), "vm-1's type")
	p.see("instance-registered")
	defaultName := p.cellTexts(vm)[4]
	if defaultName == "" {
		t.Fatalf("vm-1 has no security group: %q", p.cellTexts(vm))
	}

	p.fill("Name", "metal-1")
	p.choose("Type", "BareMetal")
	p.fill("Host interface", "eno2")
	p.fill("Addresses", "192.0.2.21")
	p.chooseLike("Security group", regexp.MustCompile(`^srv-stateless \(`))
	p.click(p.button("Register server"), "Register server")
	metal := p.serverRow("metal-1")
	p.visible(roleIn(metal, "cell", "BareMetal"), "metal-1's type")
	p.visible(roleIn(metal, "link", "srv-stateless"), "metal-1's group")
	p.see("baremetal-registered")

	// Link the Instance to the stateful group.
	p.openGroup(stateful, "stateful-group")
	p.chooseLike("Server", regexp.MustCompile(`^vm-1 \(Instance`))
	p.click(p.button("Add server"), "Add server")
	members := p.role("table", "Servers of this group")
	p.visible(roleIn(members, "link", "vm-1"), "vm-1 among the group's servers")
	p.see("instance-linked")
	if g := srv.group(t, tok, stateful.ID); len(g.Servers) != 1 || g.Servers[0].Name != "vm-1" {
		t.Errorf("API: servers of %s = %+v, want vm-1", g.Name, g.Servers)
	}

	// Unlink it: it goes back to the default group.
	p.click(p.button("Unlink server vm-1"), "Unlink server vm-1")
	if err := expect.Locator(roleIn(members, "link", "vm-1")).ToHaveCount(0); err != nil {
		t.Errorf("vm-1 still listed after unlinking: %v", err)
	}
	p.see("instance-unlinked")
	p.open("/servers?zone="+zone, "servers-after-unlink")
	p.visible(roleIn(p.serverRow("vm-1"), "link", defaultName), "vm-1 back in "+defaultName)

	// A BareMetal server cannot join a stateful group.
	p.openGroup(stateful, "stateful-group-again")
	p.chooseLike("Server", regexp.MustCompile(`^metal-1 \(BareMetal`))
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/"+stateful.ID+"/servers")
	p.click(p.button("Add server"), "Add server")
	if err := expect.Locator(p.label("Server")).ToHaveAccessibleDescription(regexp.MustCompile(`(?i)baremetal|stateful`)); err != nil {
		p.visible(p.role("alert", nil).Filter(playwright.LocatorFilterOptions{HasText: regexp.MustCompile(`(?i)baremetal|stateful`)}),
			"the refusal to link a BareMetal server to a stateful group")
	}
	p.see("baremetal-refused")
	if g := srv.group(t, tok, stateless.ID); len(g.Servers) != 1 || g.Servers[0].Name != "metal-1" {
		t.Errorf("API: servers of %s = %+v, want metal-1 still there", g.Name, g.Servers)
	}

	// Nor can the stateless group holding it become stateful.
	p.openGroup(stateless, "stateless-group")
	p.check("Stateful", true)
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/"+stateless.ID)
	p.save()
	p.visible(p.role("region", "Overview").GetByText(regexp.MustCompile(`(?i)baremetal.*metal-1|metal-1.*baremetal`)),
		"the refusal to make a group holding a BareMetal server stateful")
	p.see("stateful-refused")
	if srv.group(t, tok, stateless.ID).Stateful {
		t.Errorf("API: %s became stateful with a BareMetal server", stateless.Name)
	}
}

// TestTokens is flow 9: a generated token's secret is shown once, works
// against the API, and stops working once revoked.
func TestTokens(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "tokens")
	p := newTab(t, srv)
	p.signIn(a)
	p.click(p.link("API tokens"), "API tokens")
	p.visible(p.role("heading", "API tokens"), "the tokens page")
	p.see("tokens-empty")

	p.fill("Description", "e2e client")
	p.click(p.button("Generate token"), "Generate token")
	shown := p.role("status", nil).Filter(playwright.LocatorFilterOptions{HasText: "generated"})
	p.visible(shown, "the new token")
	p.see("token-generated")
	text, err := shown.InnerText()
	if err != nil {
		t.Fatal(err)
	}
	secret := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).FindString(text)
	access := regexp.MustCompile(`SCW[A-Z0-9]{17}`).FindString(text)
	if secret == "" || access == "" {
		t.Fatalf("no access key and secret key in %q", text)
	}
	groups := "/instance/v1/zones/" + zone + "/security_groups"
	if code := srv.api(t, http.MethodGet, groups, secret, nil, nil); code != http.StatusOK {
		t.Errorf("GET %s with the new secret = %d, want 200", groups, code)
	}

	p.reload("tokens-reloaded")
	p.visible(roleIn(p.role("table", "API tokens"), "cell", access), "the token in the list")
	if strings.Contains(mustText(t, p.main()), secret) {
		t.Errorf("the secret is shown again after a reload")
	}

	p.click(p.button("Revoke token "+access), "Revoke token")
	if err := expect.Locator(roleIn(p.role("table", "API tokens"), "cell", access)).ToHaveCount(0); err != nil {
		t.Errorf("the revoked token is still listed: %v", err)
	}
	p.see("token-revoked")
	if !p.confirmed(regexp.MustCompile(`(?i)revoke.*` + access)) {
		t.Errorf("revoking %s asked for no confirmation", access)
	}
	if code := srv.api(t, http.MethodGet, groups, secret, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET %s with a revoked secret = %d, want 401", groups, code)
	}
}

// TestSyncState is flow 10 in preview mode: a changed group reaches
// "available" (shown "In sync"), and the console says plainly that
// nothing is enforced.
func TestSyncState(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "sync")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-sync", true)
	p := newTab(t, srv)
	p.signIn(a)
	p.visible(p.text("Preview: not enforced."), "the preview banner")
	p.openGroup(g, "group")
	p.preset("HTTPS")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP 0.0.0.0/0 443")
	p.expectState(g, "In sync")
	p.see("in-sync")
	srv.waitState(t, tok, g.ID, "available")
	// The preview is not part of the Rules section that adding a rule
	// refreshes: reload to see it.
	p.reload("reloaded")
	p.click(p.text("nftables ruleset of this group"), "the nftables preview")
	p.visible(p.text(regexp.MustCompile(`dport 443`)), "the rule in the nftables preview")
	p.see("nft-preview")

	// The list refreshes its badges with one request every 2 s, not one
	// per group, and a change made elsewhere is in the next poll's answer,
	// swapped into the list.
	var mu sync.Mutex
	var polls, perGroup int
	changed := make(chan struct{}, 1)
	p.OnResponse(func(r playwright.Response) {
		path := strings.SplitN(r.URL(), "?", 2)[0]
		switch {
		case strings.HasSuffix(path, "/security-groups/states"):
			mu.Lock()
			polls++
			mu.Unlock()
			// Off the event's goroutine: reading the body is a round
			// trip to the browser.
			go func() {
				body, _ := r.Text()
				if strings.Contains(body, `id="state-`+g.ID+`"`) && strings.Contains(body, "hx-swap-oob") {
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}()
		case strings.HasSuffix(path, "/state"):
			mu.Lock()
			perGroup++
			mu.Unlock()
		}
	})
	p.open("/security-groups?zone="+zone, "groups-polling")
	time.Sleep(4500 * time.Millisecond)
	mu.Lock()
	if polls < 2 || perGroup != 0 {
		t.Errorf("in 4.5 s the list polled its states %d times (want 2) and single badges %d times (want 0)", polls, perGroup)
	}
	mu.Unlock()
	select {
	case <-changed:
		t.Fatal("a poll answered the badge of a group that did not change and is in sync")
	default:
	}
	if code := srv.api(t, http.MethodPatch, groupPath(g.ID), tok.SecretKey, map[string]any{"name": "web-sync-renamed"}, nil); code != http.StatusOK {
		t.Fatalf("rename the group: %d", code)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no poll answered the changed group's badge")
	}
	p.visible(p.Locator(`[data-group="`+g.ID+`"] #state-`+g.ID), "the swapped badge in its row")
	p.see("groups-polled")
}

// TestAccessibility is flow 11: every page of the console, in each of its
// states, has no serious or critical axe-core violation (see checks each
// page; the other flows check the pages they visit too).
func TestAccessibility(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "a11y")
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "a11y-group", true)
	srv.addRule(t, tok, g.ID, "inbound", 22)
	srv.addRule(t, tok, g.ID, "outbound", 443)
	p := newTab(t, srv)

	p.open("/login", "login")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/login")
	p.click(p.button("Sign in"), "Sign in with nothing filled")
	for _, field := range []string{"Email", "Password"} {
		if err := expect.Locator(p.label(field)).ToHaveAccessibleDescription(regexp.MustCompile(`\S`)); err != nil {
			t.Errorf("an empty %s is not described by an error: %v", field, err)
		}
	}
	p.see("login-errors")
	p.signIn(a)
	p.see("groups")
	p.open("/security-groups/new?zone="+zone, "new-group")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/security-groups/new")
	p.click(p.button("Create security group"), "Create security group with no name")
	p.visible(p.text("a name is required"), "the name's error")
	p.see("new-group-errors")
	p.openGroup(g, "group")
	p.click(p.text("nftables ruleset of this group"), "the nftables preview")
	p.see("group-nft-open")
	p.click(p.inRules("inbound", "link", "Edit rule 1"), "Edit rule 1")
	p.visible(p.button("Save"), "the rule being edited")
	p.see("group-edit-rule")
	p.open("/servers?zone="+zone, "servers")
	p.expectFailedLoad(http.StatusUnprocessableEntity, "/servers")
	p.click(p.button("Register server"), "Register server with no name")
	p.see("servers-errors")
	p.fill("Name", "a11y-vm")
	p.fill("Host interface", "tap0")
	p.click(p.button("Register server"), "Register server")
	p.click(p.link("Edit server a11y-vm"), "Edit server a11y-vm")
	p.visible(p.role("heading", "Edit server"), "the server's page")
	p.see("server")
	p.open("/tokens", "tokens")
	p.click(p.button("Generate token"), "Generate token")
	p.see("tokens-generated")
	const missing = "/security-groups/00000000-0000-0000-0000-000000000000"
	p.expectFailedLoad(http.StatusNotFound, missing)
	if _, err := p.Goto(missing + "?zone=" + zone); err != nil {
		t.Fatal(err)
	}
	p.see("group-not-found")
}

// ---- helpers ----------------------------------------------------------

// hasValue checks the value of the field labelled label.
func (p *tab) hasValue(label, want string) {
	p.t.Helper()
	if err := expect.Locator(p.label(label)).ToHaveValue(want); err != nil {
		p.t.Errorf("%q: %v", label, err)
	}
}

// isChecked checks the checkbox labelled label.
func (p *tab) isChecked(label string, want bool) {
	p.t.Helper()
	if err := expect.Locator(p.label(label)).ToBeChecked(playwright.LocatorAssertionsToBeCheckedOptions{Checked: playwright.Bool(want)}); err != nil {
		p.t.Errorf("%q checked = %v wanted: %v", label, want, err)
	}
}

// reload reloads the page and looks at it.
func (p *tab) reload(name string) {
	p.t.Helper()
	if _, err := p.Reload(); err != nil {
		p.t.Fatalf("reload: %v", err)
	}
	p.see(name)
}

// openGroup opens a group's detail page.
func (p *tab) openGroup(g apiGroup, name string) {
	p.t.Helper()
	p.open("/security-groups/"+g.ID+"?zone="+zone, name)
	p.visible(p.role("heading", regexp.MustCompile("^"+regexp.QuoteMeta(g.Name))), "the heading of "+g.Name)
}

// save submits the Overview form.
func (p *tab) save() {
	p.t.Helper()
	p.click(p.button("Save changes"), "Save changes")
	if err := p.WaitForLoadState(); err != nil {
		p.t.Fatal(err)
	}
}

// preset clicks a rule preset.
func (p *tab) preset(name string) {
	p.t.Helper()
	p.click(roleIn(p.role("group", "Presets"), "button", name), "the "+name+" preset")
}

// groupRow is the list's row of the group named name.
func (p *tab) groupRow(name string) playwright.Locator {
	p.t.Helper()
	row := roleIn(p.role("table", "Security groups"), "row", nil).Filter(playwright.LocatorFilterOptions{Has: p.link(name)})
	p.visible(row, "the row of "+name)
	return row
}

// serverRow is the server list's row of the server named name.
func (p *tab) serverRow(name string) playwright.Locator {
	p.t.Helper()
	row := roleIn(p.role("table", "Servers"), "row", nil).Filter(playwright.LocatorFilterOptions{Has: p.link(name)})
	p.visible(row, "the row of "+name)
	return row
}

// cellTexts returns the texts of a row's cells.
func (p *tab) cellTexts(row playwright.Locator) []string {
	p.t.Helper()
	texts, err := roleIn(row, "cell", nil).AllInnerTexts()
	if err != nil {
		p.t.Fatalf("read a row: %v", err)
	}
	for i := range texts {
		texts[i] = strings.Join(strings.Fields(texts[i]), " ")
	}
	return texts
}

// hasDefaultBadge checks whether the list shows the organization default
// badge beside a group.
func (p *tab) hasDefaultBadge(name string, want bool) {
	p.t.Helper()
	badge := p.groupRow(name).GetByText("Organization default", playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)})
	n := 0
	if want {
		n = 1
	}
	if err := expect.Locator(badge).ToHaveCount(n); err != nil {
		p.t.Errorf("%s: organization default badge shown = %v wanted: %v", name, want, err)
	}
}

// rulesTable is the table of a direction's rules.
func (p *tab) rulesTable(direction string) playwright.Locator {
	return p.role("table", strings.ToUpper(direction[:1])+direction[1:]+" rules")
}

// inRules finds an element of a direction's rule table, as a person
// looks in the table they mean.
func (p *tab) inRules(direction, role, name string) playwright.Locator {
	return roleIn(p.rulesTable(direction), role, name)
}

// ruleRows returns the rows of a direction's rule table as "position
// action protocol range ports".
func (p *tab) ruleRows(direction string) ([]string, error) {
	rows := roleIn(p.rulesTable(direction), "row", nil)
	texts, err := rows.AllInnerTexts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, text := range texts[min(1, len(texts)):] { // the first row is the header
		cells := strings.Split(text, "\t")
		if len(cells) < 5 {
			continue // "No inbound rule"
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		out = append(out, strings.Join(cells[:5], " "))
	}
	return out, nil
}

// expectRules waits until a direction's rule table shows want.
func (p *tab) expectRules(direction string, want ...string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := p.ruleRows(direction)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s rules shown = %q (%v), want %q", direction, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// expectState waits until a group's state badge shows label.
func (p *tab) expectState(g apiGroup, label string) {
	p.t.Helper()
	badge := p.main().GetByText(label, playwright.LocatorGetByTextOptions{Exact: playwright.Bool(true)}).First()
	if err := expect.Locator(badge).ToBeVisible(); err != nil {
		p.t.Errorf("state of %s: %q not shown: %v", g.Name, label, err)
	}
}

func mustText(t *testing.T, l playwright.Locator) string {
	t.Helper()
	s, err := l.InnerText()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOperatorArea: an operator adds a host (its join token shown once)
// and grants an organization interfaces on it; every page of the Operator
// area passes axe.
func TestOperatorArea(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "ops", "--operator")
	p := newTab(t, srv)
	p.signIn(a)
	p.click(p.link("Hosts"), "the Operator area's Hosts")
	p.see("hosts")
	p.fill("Name", "e2e-edge")
	p.click(p.button("Add host"), "Add host")
	p.visible(p.text("Host e2e-edge added."), "the join token")
	p.see("host-added")
	p.click(p.link("Grants"), "Grants")
	p.fill("Interfaces", "tap-e2e-*")
	p.click(p.main().GetByRole("button", playwright.LocatorGetByRoleOptions{Name: "Grant", Exact: playwright.Bool(true)}), "Grant")
	p.visible(p.role("cell", "tap-e2e-*"), "the grant")
	p.see("grants")
	p.click(p.link("Organizations"), "Organizations")
	p.see("organizations")
	p.click(p.link("Users"), "Users")
	p.see("users")
}

// TestIPSetsPage: an IP set is created by pasting a list (overlaps
// merged), opened and edited; both pages pass axe.
func TestIPSetsPage(t *testing.T) {
	srv := suite.srv
	a := srv.newAccount(t, "sets")
	p := newTab(t, srv)
	p.signIn(a)
	p.click(p.link("IP sets"), "IP sets")
	p.see("ip-sets")
	p.fill("Name", "office")
	if err := p.label("Entries").Fill("203.0.113.0/25\n203.0.113.128/25\n2001:db8::/48, 198.51.100.7"); err != nil {
		t.Fatal(err)
	}
	p.click(p.button("Create IP set"), "Create IP set")
	p.visible(p.text("created with 3 entries"), "the set's flash")
	p.see("ip-set")
	if v, err := p.label("Entries").InputValue(); err != nil || !strings.Contains(v, "203.0.113.0/24") {
		t.Errorf("entries = %q (%v), want the halves merged into 203.0.113.0/24", v, err)
	}

	// The set in a rule, and a rule that names another group.
	tok := srv.newToken(t, a.Org)
	g := srv.createGroup(t, tok, "web-sets", true)
	srv.createGroup(t, tok, "lb-sets", true)
	p.openGroup(g, "group")
	p.choose("Or an IP set", "office")
	p.fill("From port", "22")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP IP set office 22")
	p.choose("Or the servers of a group", "lb-sets")
	p.fill("From port", "8080")
	p.click(p.button("Add rule"), "Add rule")
	p.expectRules("inbound", "1 Accept TCP IP set office 22", "2 Accept TCP group lb-sets 8080")
	p.see("set-and-group-rules")

	// From the rule to the set, which lists the group among its users.
	p.click(p.inRules("inbound", "link", "IP set office"), "the set's link")
	p.visible(p.GetByTestId("used-by").GetByRole("link", playwright.LocatorGetByRoleOptions{Name: "web-sets"}), "the set's user")
	p.see("ip-set-used")
}
