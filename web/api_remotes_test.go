package web_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	instance "github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rampart-fw/rampart/store"
)

// TestSDKLeavesSetAndGroupRules: rules that match an IP set or a group are
// made with Rampart's fields; the official SDK decodes every answer that
// holds them, sees them as not editable with a range that matches nothing,
// and its set-alls (of the editable rules, as Terraform writes inline
// rules, or of everything it was shown) leave them as they are, where they
// are. Its PATCH of their range is refused by name rather than widening
// them.
func TestSDKLeavesSetAndGroupRules(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	ctx := context.Background()
	zone := scw.Zone("fr-par-1")
	g, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Zone: zone, Name: "web", Stateful: true,
		InboundDefaultPolicy: instance.SecurityGroupPolicyDrop, OutboundDefaultPolicy: instance.SecurityGroupPolicyAccept,
		EnableDefaultSecurity: scw.BoolPtr(false)})
	if err != nil {
		t.Fatal(err)
	}
	gid := g.SecurityGroup.ID
	lb, err := env.db.CreateGroup(ctx, env.org.ID, "fr-par-1", store.GroupInput{Name: "load balancers"})
	if err != nil {
		t.Fatal(err)
	}
	set, err := env.db.CreateIPSet(ctx, env.org.ID, "fr-par-1", store.IPSetInput{Name: "office", Entries: []string{"192.0.2.0/24", "2001:db8::/48"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + gid + "/rules"
	mk := func(body string) string {
		a := call(t, "POST", rules, body, env.auth())
		if a.status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", body, a.status, a.raw)
		}
		return field(a.body, "rule", "id").(string)
	}
	ssh := mk(`{"direction":"inbound","action":"accept","protocol":"TCP","ip_range":"10.0.0.0/8","dest_port_from":22}`)
	fromSet := mk(`{"direction":"inbound","action":"accept","protocol":"TCP","ip_set_id":"` + set.ID + `","dest_port_from":443}`)
	fromLB := mk(`{"direction":"inbound","action":"accept","protocol":"TCP","remote_security_group_id":"` + lb.ID + `","dest_port_from":8080,"dest_port_to":8090}`)
	http80 := mk(`{"direction":"inbound","action":"accept","protocol":"TCP","ip_range":"0.0.0.0/0","dest_port_from":80}`)

	// What the API says of them, raw.
	a := call(t, "GET", rules+"/"+fromSet, "", env.auth())
	if field(a.body, "rule", "ip_set_id") != set.ID || field(a.body, "rule", "ip_range") != "255.255.255.255/32" ||
		field(a.body, "rule", "editable") != false || field(a.body, "rule", "remote_security_group_id") != nil {
		t.Fatalf("set rule: %s", a.raw)
	}

	list := func() []*instance.SecurityGroupRule {
		t.Helper()
		resp, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{Zone: zone, SecurityGroupID: gid}, scw.WithAllPages())
		if err != nil {
			t.Fatalf("the SDK cannot decode the list: %v", err)
		}
		return resp.Rules
	}
	kept := func(label string, wantPos map[string]uint32) {
		t.Helper()
		for _, r := range list() {
			if r.ID == fromSet || r.ID == fromLB {
				if r.Editable || r.IPRange.String() != "255.255.255.255/32" || r.Action != instance.SecurityGroupRuleActionAccept {
					t.Errorf("%s: %+v", label, r)
				}
			}
			if want, ok := wantPos[r.ID]; ok && r.Position != want {
				t.Errorf("%s: rule %s at %d, want %d", label, r.ID, r.Position, want)
			}
			delete(wantPos, r.ID)
		}
		if len(wantPos) > 0 {
			t.Errorf("%s: rules gone: %v", label, wantPos)
		}
		for _, id := range []string{fromSet, fromLB} {
			r, err := api.GetSecurityGroupRule(&instance.GetSecurityGroupRuleRequest{Zone: zone, SecurityGroupID: gid, SecurityGroupRuleID: id})
			if err != nil {
				t.Fatalf("%s: the SDK cannot decode rule %s: %v", label, id, err)
			}
			if r.Rule.DestPortFrom == nil {
				t.Errorf("%s: rule %s lost its port", label, id)
			}
		}
		stored, err := env.db.Rules(ctx, env.org.ID, "fr-par-1", gid)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range stored {
			if r.ID == fromSet && (r.IPSetID != set.ID || r.DestPortFrom != 443) || r.ID == fromLB && (r.RemoteGroupID != lb.ID || r.DestPortTo != 8090) {
				t.Errorf("%s: stored %+v", label, r)
			}
		}
	}
	kept("created", map[string]uint32{ssh: 1, fromSet: 2, fromLB: 3, http80: 4})

	// Terraform's way: the editable rules only, reordered, one added.
	var editable []*instance.SetSecurityGroupRulesRequestRule
	for _, r := range list() {
		if r.Editable {
			editable = append([]*instance.SetSecurityGroupRulesRequestRule{setElement(r)}, editable...)
		}
	}
	port := uint32(25)
	editable = append(editable, &instance.SetSecurityGroupRulesRequestRule{Action: instance.SecurityGroupRuleActionDrop,
		Protocol: instance.SecurityGroupRuleProtocolTCP, Direction: instance.SecurityGroupRuleDirectionInbound,
		IPRange: mustCIDR(t, "0.0.0.0/0"), DestPortFrom: &port})
	for i, r := range editable {
		r.Position = uint32(i + 1) // positions as a list's order, as Terraform numbers its inline rules
	}
	if _, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{Zone: zone, SecurityGroupID: gid, Rules: editable}); err != nil {
		t.Fatalf("set-all of the editable rules: %v", err)
	}
	kept("after a set-all of the editable rules", map[string]uint32{http80: 1, fromSet: 2, fromLB: 3, ssh: 4})

	// Everything as it was shown, sent back (an SDK user's round trip).
	var all []*instance.SetSecurityGroupRulesRequestRule
	for _, r := range list() {
		all = append(all, setElement(r))
	}
	if _, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{Zone: zone, SecurityGroupID: gid, Rules: all}); err != nil {
		t.Fatalf("set-all of everything shown: %v", err)
	}
	kept("after a set-all of everything shown", map[string]uint32{http80: 1, fromSet: 2, fromLB: 3, ssh: 4})

	// Its PATCH of the range would turn the rule into a range rule: refused.
	_, err = api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{Zone: zone, SecurityGroupID: gid,
		SecurityGroupRuleID: fromSet, IPRange: &[]scw.IPNet{mustCIDR(t, "0.0.0.0/0")}[0]})
	var invalid *scw.InvalidArgumentsError
	if !errors.As(err, &invalid) || invalid.Details[0].ArgumentName != "ip_range" {
		t.Fatalf("PATCH of a set rule's range: %v", err)
	}
	kept("after a refused PATCH", map[string]uint32{fromSet: 2, fromLB: 3})
}

func setElement(r *instance.SecurityGroupRule) *instance.SetSecurityGroupRulesRequestRule {
	id, pos, editable := r.ID, r.Position, r.Editable
	return &instance.SetSecurityGroupRulesRequestRule{ID: &id, Action: r.Action, Protocol: r.Protocol, Direction: r.Direction,
		IPRange: r.IPRange, DestPortFrom: r.DestPortFrom, DestPortTo: r.DestPortTo, Position: pos, Editable: &editable}
}

// TestRemoteRulesAPI: a rule's set or group must be the organization's, in
// the zone (another organization's is answered as one that does not
// exist); a set or group that rules use cannot be deleted (409 naming the
// groups); the text form carries them.
func TestRemoteRulesAPI(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	other, _, otherSecret := env.newOrg(t, "globex")
	theirs, err := env.db.CreateIPSet(ctx, other.ID, "fr-par-1", store.IPSetInput{Name: "theirs", Entries: []string{"198.51.100.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := env.db.CreateIPSet(ctx, env.org.ID, "fr-par-1", store.IPSetInput{Name: "mine", Entries: []string{"192.0.2.0/24"}})
	if err != nil {
		t.Fatal(err)
	}
	g := env.createGroup(t, `{"name":"web"}`)
	rules := env.url + "/instance/v1/zones/fr-par-1/security_groups/" + g + "/rules"
	missing := call(t, "POST", rules, `{"direction":"inbound","action":"accept","protocol":"TCP","ip_set_id":"00000000-0000-4000-8000-000000000000"}`, env.auth())
	foreign := call(t, "POST", rules, `{"direction":"inbound","action":"accept","protocol":"TCP","ip_set_id":"`+theirs.ID+`"}`, env.auth())
	if missing.status != 400 || foreign.status != 400 || !strings.Contains(foreign.raw, `"argument_name":"ip_set_id"`) ||
		strings.Replace(foreign.raw, theirs.ID, "X", -1) != strings.Replace(missing.raw, "00000000-0000-4000-8000-000000000000", "X", -1) {
		t.Fatalf("another organization's set:\n%d %s\nmissing:\n%d %s", foreign.status, foreign.raw, missing.status, missing.raw)
	}
	if a := call(t, "POST", rules, `{"direction":"inbound","action":"accept","protocol":"TCP","ip_range":"0.0.0.0/0","ip_set_id":"`+mine.ID+`"}`, env.auth()); a.status != 400 ||
		!strings.Contains(a.raw, `"argument_name":"ip_range"`) {
		t.Fatalf("range and set: %d %s", a.status, a.raw)
	}
	if a := call(t, "POST", rules, `{"direction":"inbound","action":"drop","protocol":"ANY","ip_set_id":"`+mine.ID+`"}`, env.auth()); a.status != 201 {
		t.Fatalf("set rule: %d %s", a.status, a.raw)
	}
	a := call(t, "DELETE", env.url+"/instance/v1/zones/fr-par-1/ip_sets/"+mine.ID, "", env.auth())
	if a.status != http.StatusConflict || !strings.Contains(a.raw, "web ("+g+")") {
		t.Fatalf("delete a set in use: %d %s", a.status, a.raw)
	}
	// The other organization sees neither the set nor the group.
	if a := call(t, "GET", env.url+"/instance/v1/zones/fr-par-1/ip_sets/"+mine.ID, "", map[string]string{"X-Auth-Token": otherSecret}); a.status != 404 {
		t.Fatalf("their view of my set: %d", a.status)
	}
	text := callRaw(t, "GET", rules, "", with(env.auth(), "Accept", "text/plain")).body
	if text != "inbound drop ANY from set:"+mine.ID+"\n" {
		t.Fatalf("text form: %q", text)
	}
}

func mustCIDR(t *testing.T, s string) scw.IPNet {
	t.Helper()
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	return scw.IPNet{IPNet: *n}
}
