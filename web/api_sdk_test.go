package web_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	instance "github.com/scaleway/scaleway-sdk-go/api/instance/v1"
	"github.com/scaleway/scaleway-sdk-go/scw"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/testdb"
	"github.com/rampart-fw/rampart/store"
	"github.com/rampart-fw/rampart/web"
)

// testEnv is a real server on a temporary SQLite file, with the enforcer in
// preview mode, and an organization with an API token.
type testEnv struct {
	srv    *web.Server
	db     *store.DB
	url    string
	org    store.Organization
	secret string
	access string
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := store.Open(ctx, testdb.DSN(tb), []string{"fr-par-1", "nl-ams-1"})
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend, err := enforcer.Open(enforcer.ModePreview)
	if err != nil {
		tb.Fatal(err)
	}
	rec := enforcer.NewReconciler(db, backend, logger)
	done := make(chan struct{})
	go func() { rec.Run(ctx); close(done) }()
	srv, err := web.New(web.Config{Store: db, Enforcer: rec, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	tb.Cleanup(func() {
		ts.Close()
		cancel()
		<-done
		db.Close()
	})
	env := &testEnv{srv: srv, db: db, url: ts.URL}
	env.org, env.access, env.secret = env.newOrg(tb, "acme")
	return env
}

func (env *testEnv) newOrg(tb testing.TB, name string) (store.Organization, string, string) {
	tb.Helper()
	org, err := env.db.EnsureOrganization(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	tok, secret, err := env.db.CreateToken(context.Background(), org.ID, "test")
	if err != nil {
		tb.Fatal(err)
	}
	return org, tok.AccessKey, secret
}

// sdk returns the official Scaleway client pointed at the test server.
func (env *testEnv) sdk(tb testing.TB) *instance.API {
	tb.Helper()
	client, err := scw.NewClient(
		scw.WithAPIURL(env.url),
		scw.WithAuth(env.access, env.secret),
		scw.WithDefaultProjectID(env.org.ID),
		scw.WithDefaultZone(scw.ZoneFrPar1),
	)
	if err != nil {
		tb.Fatal(err)
	}
	return instance.NewAPI(client)
}

func (env *testEnv) generation(tb testing.TB) int64 {
	tb.Helper()
	g, err := env.db.Generation(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// waitAvailable polls as the SDK's own tests do: ten times, 100 ms apart.
func waitAvailable(t *testing.T, api *instance.API, id string) *instance.SecurityGroup {
	t.Helper()
	for i := 0; i <= 10; i++ {
		resp, err := api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: id})
		if err != nil {
			t.Fatal(err)
		}
		if resp.SecurityGroup.State == instance.SecurityGroupStateAvailable {
			return resp.SecurityGroup
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s not available after 1 s", id)
	return nil
}

func TestSDKSecurityGroupLifecycle(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)

	// The body of the SDK's own TestAPI_UpdateSecurityGroup.
	created, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{
		Name:                  "name",
		Description:           "description",
		Stateful:              true,
		InboundDefaultPolicy:  instance.SecurityGroupPolicyAccept,
		OutboundDefaultPolicy: instance.SecurityGroupPolicyDrop,
	})
	if err != nil {
		t.Fatal(err)
	}
	sg := created.SecurityGroup
	checks := []struct {
		field     string
		got, want any
	}{
		{"name", sg.Name, "name"},
		{"description", sg.Description, "description"},
		{"organization", sg.Organization, env.org.ID},
		{"project", sg.Project, env.org.ID},
		{"stateful", sg.Stateful, true},
		{"inbound_default_policy", sg.InboundDefaultPolicy, instance.SecurityGroupPolicyAccept},
		{"outbound_default_policy", sg.OutboundDefaultPolicy, instance.SecurityGroupPolicyDrop},
		{"organization_default set", sg.OrganizationDefault != nil, true},
		{"project_default", sg.ProjectDefault, false},
		{"enable_default_security", sg.EnableDefaultSecurity, true},
		{"zone", sg.Zone, scw.ZoneFrPar1},
		{"tags", len(sg.Tags), 0},
		{"servers", len(sg.Servers), 0},
		{"creation_date set", sg.CreationDate != nil && !sg.CreationDate.IsZero(), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("created %s = %v, want %v", c.field, c.got, c.want)
		}
	}
	if *sg.OrganizationDefault {
		t.Error("organization_default = true, want false")
	}
	waitAvailable(t, api, sg.ID)

	accept, drop := instance.SecurityGroupPolicyAccept, instance.SecurityGroupPolicyDrop
	updated, err := api.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{
		SecurityGroupID:       sg.ID,
		Name:                  scw.StringPtr("new_name"),
		Description:           scw.StringPtr("new_description"),
		Stateful:              scw.BoolPtr(false),
		InboundDefaultPolicy:  drop,
		OutboundDefaultPolicy: accept,
		ProjectDefault:        scw.BoolPtr(false),
		Tags:                  scw.StringsPtr([]string{"foo", "bar"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	u := updated.SecurityGroup
	if u.Name != "new_name" || u.Description != "new_description" || u.Stateful ||
		u.InboundDefaultPolicy != drop || u.OutboundDefaultPolicy != accept || u.ProjectDefault || *u.OrganizationDefault {
		t.Fatalf("updated = %+v", u)
	}
	if len(u.Tags) != 2 || u.Tags[0] != "foo" || u.Tags[1] != "bar" {
		t.Fatalf("tags = %v, want [foo bar] in order", u.Tags)
	}
	if !u.ModificationDate.After(*sg.ModificationDate) && !u.ModificationDate.Equal(*sg.ModificationDate) {
		t.Fatalf("modification_date went back")
	}
	// A partial update leaves the other fields alone.
	again, err := api.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{SecurityGroupID: sg.ID, EnableDefaultSecurity: scw.BoolPtr(false)})
	if err != nil {
		t.Fatal(err)
	}
	if a := again.SecurityGroup; a.Name != "new_name" || a.EnableDefaultSecurity || a.InboundDefaultPolicy != drop {
		t.Fatalf("after partial update: %+v", a)
	}
	waitAvailable(t, api, sg.ID)

	if err := api.DeleteSecurityGroup(&instance.DeleteSecurityGroupRequest{SecurityGroupID: sg.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: sg.ID})
	var nf *scw.ResourceNotFoundError
	if !errors.As(err, &nf) || nf.Resource != "instance_security_group" || nf.ResourceID != sg.ID {
		t.Fatalf("get after delete: %v, want ResourceNotFoundError", err)
	}
}

func TestSDKListFiltersAndPaging(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	names := []string{"web-1", "web-2", "db-1", "db-2", "cache"}
	for i, n := range names {
		req := &instance.CreateSecurityGroupRequest{Name: n, Tags: []string{"env"}}
		if i%2 == 0 {
			req.Tags = append(req.Tags, "even")
		}
		if _, err := api.CreateSecurityGroup(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "ams", Zone: scw.ZoneNlAms1}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  instance.ListSecurityGroupsRequest
		opts []scw.RequestOption
		want int
	}{
		{"all of the zone", instance.ListSecurityGroupsRequest{}, nil, 5},
		{"other zone", instance.ListSecurityGroupsRequest{Zone: scw.ZoneNlAms1}, nil, 1},
		{"name", instance.ListSecurityGroupsRequest{Name: scw.StringPtr("web")}, nil, 2},
		{"tags, all must match", instance.ListSecurityGroupsRequest{Tags: []string{"env", "even"}}, nil, 3},
		{"project", instance.ListSecurityGroupsRequest{Project: scw.StringPtr(env.org.ID)}, nil, 5},
		{"project_default", instance.ListSecurityGroupsRequest{ProjectDefault: scw.BoolPtr(true)}, nil, 0},
		{"one page", instance.ListSecurityGroupsRequest{PerPage: scw.Uint32Ptr(2)}, nil, 2},
		{"last page", instance.ListSecurityGroupsRequest{PerPage: scw.Uint32Ptr(2), Page: scw.Int32Ptr(3)}, nil, 1},
		{"all pages", instance.ListSecurityGroupsRequest{PerPage: scw.Uint32Ptr(2)}, []scw.RequestOption{scw.WithAllPages()}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			resp, err := api.ListSecurityGroups(&req, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.SecurityGroups); got != tt.want {
				t.Fatalf("got %d groups, want %d", got, tt.want)
			}
		})
	}
	resp, err := api.ListSecurityGroups(&instance.ListSecurityGroupsRequest{PerPage: scw.Uint32Ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.TotalCount != 5 {
		t.Fatalf("total_count = %d, want 5 (X-Total-Count)", resp.TotalCount)
	}
}

func TestSDKRules(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "rules", Stateful: true, EnableDefaultSecurity: scw.BoolPtr(false)})
	if err != nil {
		t.Fatal(err)
	}
	gid := sg.SecurityGroup.ID
	_, host, _ := net.ParseCIDR("8.8.8.8/32")
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	create := func(ipnet *net.IPNet, from, to uint32, pos uint32) *instance.SecurityGroupRule {
		t.Helper()
		req := &instance.CreateSecurityGroupRuleRequest{
			SecurityGroupID: gid, Direction: instance.SecurityGroupRuleDirectionInbound,
			Protocol: instance.SecurityGroupRuleProtocolTCP, IPRange: scw.IPNet{IPNet: *ipnet},
			Action: instance.SecurityGroupRuleActionAccept, Position: pos,
		}
		if from != 0 {
			req.DestPortFrom = scw.Uint32Ptr(from)
		}
		if to != 0 {
			req.DestPortTo = scw.Uint32Ptr(to)
		}
		resp, err := api.CreateSecurityGroupRule(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Rule
	}
	order := func() []string {
		t.Helper()
		resp, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: gid})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i, r := range resp.Rules {
			if int(r.Position) != i+1 {
				t.Fatalf("rule %d has position %d", i, r.Position)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	r1 := create(host, 1, 1024, 1)
	if r1.IPRange.String() != "8.8.8.8/32" || *r1.DestPortFrom != 1 || *r1.DestPortTo != 1024 || r1.Position != 1 || !r1.Editable {
		t.Fatalf("created rule = %+v", r1)
	}
	r2 := create(all, 22, 0, 0) // appended
	r3 := create(all, 80, 80, 1)
	if r2.Position != 2 || r3.Position != 1 || r3.DestPortTo != nil {
		t.Fatalf("positions: r2 %d (want 2), r3 %d (want 1), r3 to %v (want nil)", r2.Position, r3.Position, r3.DestPortTo)
	}
	if got := order(); len(got) != 3 || got[0] != r3.ID || got[1] != r1.ID || got[2] != r2.ID {
		t.Fatalf("order after insert at 1 = %v", got)
	}
	// Move r3 to the end through PATCH position.
	if _, err := api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{SecurityGroupID: gid, SecurityGroupRuleID: r3.ID, Position: scw.Uint32Ptr(3)}); err != nil {
		t.Fatal(err)
	}
	if got := order(); got[0] != r1.ID || got[1] != r2.ID || got[2] != r3.ID {
		t.Fatalf("order after move = %v", got)
	}

	// The four cases of the SDK's own TestAPI_UpdateSecurityGroupRule.
	_, one, _ := net.ParseCIDR("1.1.1.1/32")
	upd, err := api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{
		SecurityGroupID: gid, SecurityGroupRuleID: r1.ID, Action: instance.SecurityGroupRuleActionDrop,
		IPRange: &scw.IPNet{IPNet: *one}, DestPortFrom: scw.Uint32Ptr(1), DestPortTo: scw.Uint32Ptr(2048),
		Protocol: instance.SecurityGroupRuleProtocolUDP, Direction: instance.SecurityGroupRuleDirectionOutbound,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := upd.Rule; r.Action != "drop" || r.IPRange.String() != "1.1.1.1/32" || *r.DestPortFrom != 1 || *r.DestPortTo != 2048 ||
		r.Protocol != "UDP" || r.Direction != "outbound" || r.Position != 1 {
		t.Fatalf("simple update = %+v", r)
	}
	upd, err = api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{
		SecurityGroupID: gid, SecurityGroupRuleID: r1.ID, DestPortFrom: scw.Uint32Ptr(22), DestPortTo: scw.Uint32Ptr(22),
	})
	if err != nil || *upd.Rule.DestPortFrom != 22 || upd.Rule.DestPortTo != nil {
		t.Fatalf("single port = %+v, %v", upd.Rule, err)
	}
	upd, err = api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{
		SecurityGroupID: gid, SecurityGroupRuleID: r2.ID, Protocol: instance.SecurityGroupRuleProtocolICMP,
	})
	if r := upd.Rule; err != nil || r.Protocol != "ICMP" || r.DestPortFrom != nil || r.DestPortTo != nil || r.Action != "accept" || r.Direction != "inbound" {
		t.Fatalf("switch to ICMP = %+v, %v", r, err)
	}
	upd, err = api.UpdateSecurityGroupRule(&instance.UpdateSecurityGroupRuleRequest{
		SecurityGroupID: gid, SecurityGroupRuleID: r3.ID, DestPortFrom: scw.Uint32Ptr(0), DestPortTo: scw.Uint32Ptr(0),
	})
	if r := upd.Rule; err != nil || r.DestPortFrom != nil || r.DestPortTo != nil || r.Protocol != "TCP" {
		t.Fatalf("remove ports = %+v, %v", r, err)
	}
	got, err := api.GetSecurityGroupRule(&instance.GetSecurityGroupRuleRequest{SecurityGroupID: gid, SecurityGroupRuleID: r1.ID})
	if err != nil || got.Rule.ID != r1.ID || got.Rule.Protocol != "UDP" {
		t.Fatalf("get rule = %+v, %v", got, err)
	}

	// Set-all: keep r2 (updated), add one, drop r1 and r3.
	set, err := api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{SecurityGroupID: gid, Rules: []*instance.SetSecurityGroupRulesRequestRule{
		{Action: "accept", Protocol: "TCP", Direction: "inbound", IPRange: scw.IPNet{IPNet: *all}, DestPortFrom: scw.Uint32Ptr(443)},
		{ID: &r2.ID, Action: "drop", Protocol: "ICMP", Direction: "inbound", IPRange: scw.IPNet{IPNet: *host}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 || set.Rules[0].Position != 1 || *set.Rules[0].DestPortFrom != 443 ||
		set.Rules[1].ID != r2.ID || set.Rules[1].Action != "drop" || set.Rules[1].Position != 2 {
		t.Fatalf("set-all answer = %+v %+v", set.Rules[0], set.Rules[1])
	}
	if ids := order(); len(ids) != 2 || ids[1] != r2.ID {
		t.Fatalf("after set-all: %v", ids)
	}
	if err := api.DeleteSecurityGroupRule(&instance.DeleteSecurityGroupRuleRequest{SecurityGroupID: gid, SecurityGroupRuleID: set.Rules[0].ID}); err != nil {
		t.Fatal(err)
	}
	if ids := order(); len(ids) != 1 || ids[0] != r2.ID {
		t.Fatalf("after delete: %v (positions must close the gap)", ids)
	}

	// SMTP blocked: six non-editable rules, numbered apart.
	if _, err := api.UpdateSecurityGroup(&instance.UpdateSecurityGroupRequest{SecurityGroupID: gid, EnableDefaultSecurity: scw.BoolPtr(true)}); err != nil {
		t.Fatal(err)
	}
	list, err := api.ListSecurityGroupRules(&instance.ListSecurityGroupRulesRequest{SecurityGroupID: gid})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Rules) != 7 || list.TotalCount != 7 {
		t.Fatalf("with SMTP blocked: %d rules, want 7", len(list.Rules))
	}
	for i, r := range list.Rules[:6] {
		if r.Editable || r.Position != uint32(i+1) || r.Action != "drop" || r.Direction != "outbound" || r.Protocol != "TCP" {
			t.Fatalf("SMTP rule %d = %+v", i, r)
		}
	}
	if list.Rules[6].ID != r2.ID || list.Rules[6].Position != 1 || !list.Rules[6].Editable {
		t.Fatalf("editable rule after SMTP rules = %+v", list.Rules[6])
	}
	// A set-all that sends the SMTP rules back leaves them alone.
	var back []*instance.SetSecurityGroupRulesRequestRule
	for _, r := range list.Rules {
		id := r.ID
		back = append(back, &instance.SetSecurityGroupRulesRequestRule{ID: &id, Action: r.Action, Protocol: r.Protocol,
			Direction: r.Direction, IPRange: r.IPRange, DestPortFrom: r.DestPortFrom, DestPortTo: r.DestPortTo,
			Position: r.Position, Editable: scw.BoolPtr(r.Editable)})
	}
	set, err = api.SetSecurityGroupRules(&instance.SetSecurityGroupRulesRequest{SecurityGroupID: gid, Rules: back})
	if err != nil || len(set.Rules) != 7 {
		t.Fatalf("set-all round trip: %v, %d rules", err, len(set.Rules))
	}
	def, err := api.ListDefaultSecurityGroupRules(&instance.ListDefaultSecurityGroupRulesRequest{})
	if err != nil || len(def.Rules) != 6 {
		t.Fatalf("default rules: %v, %+v", err, def)
	}
	waitAvailable(t, api, gid)
}

func TestSDKServers(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	a, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "a", Stateful: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	created, err := api.CreateServer(&instance.CreateServerRequest{Name: "vm-1", Tags: []string{"web"}, SecurityGroup: &a.SecurityGroup.ID})
	if err != nil {
		t.Fatal(err)
	}
	srv := created.Server
	if srv.SecurityGroup == nil || srv.SecurityGroup.ID != a.SecurityGroup.ID || srv.SecurityGroup.Name != "a" ||
		srv.Zone != scw.ZoneFrPar1 || srv.Project != env.org.ID || srv.Organization != env.org.ID {
		t.Fatalf("created server = %+v", srv)
	}
	second, err := api.CreateServer(&instance.CreateServerRequest{Name: "vm-2"})
	if err != nil {
		t.Fatal(err)
	}
	if second.Server.SecurityGroup.Name != store.DefaultGroupName {
		t.Fatalf("server without group got %q, want the default", second.Server.SecurityGroup.Name)
	}
	got, err := api.GetServer(&instance.GetServerRequest{ServerID: srv.ID})
	if err != nil || got.Server.Name != "vm-1" || len(got.Server.Tags) != 1 {
		t.Fatalf("get server = %+v, %v", got, err)
	}
	list, err := api.ListServers(&instance.ListServersRequest{})
	if err != nil || len(list.Servers) != 2 || list.TotalCount != 2 || list.Servers[0].ID != second.Server.ID {
		t.Fatalf("list servers (newest first) = %+v, %v", list, err)
	}
	moved, err := api.UpdateServer(&instance.UpdateServerRequest{ServerID: srv.ID,
		SecurityGroup: &instance.SecurityGroupTemplate{ID: b.SecurityGroup.ID}, Tags: scw.StringsPtr([]string{})})
	if err != nil {
		t.Fatal(err)
	}
	if moved.Server.SecurityGroup.ID != b.SecurityGroup.ID || moved.Server.Tags == nil || len(moved.Server.Tags) != 0 {
		t.Fatalf("moved server = %+v", moved.Server)
	}
	ga, _ := api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: a.SecurityGroup.ID})
	gb, _ := api.GetSecurityGroup(&instance.GetSecurityGroupRequest{SecurityGroupID: b.SecurityGroup.ID})
	if len(ga.SecurityGroup.Servers) != 0 || len(gb.SecurityGroup.Servers) != 1 || gb.SecurityGroup.Servers[0].ID != srv.ID {
		t.Fatalf("servers after move: a %v, b %v", ga.SecurityGroup.Servers, gb.SecurityGroup.Servers)
	}
	// A group with a server cannot be deleted.
	err = api.DeleteSecurityGroup(&instance.DeleteSecurityGroupRequest{SecurityGroupID: b.SecurityGroup.ID})
	var re *scw.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 {
		t.Fatalf("delete group in use: %v, want 409", err)
	}
	if err := api.DeleteServer(&instance.DeleteServerRequest{ServerID: srv.ID}); err != nil {
		t.Fatal(err)
	}
	if err := api.DeleteSecurityGroup(&instance.DeleteSecurityGroupRequest{SecurityGroupID: b.SecurityGroup.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = api.GetServer(&instance.GetServerRequest{ServerID: srv.ID})
	var nf *scw.ResourceNotFoundError
	if !errors.As(err, &nf) || nf.Resource != "instance_server" {
		t.Fatalf("deleted server: %v", err)
	}
}

func TestSDKTypedErrors(t *testing.T) {
	env := newTestEnv(t)
	api := env.sdk(t)
	sg, err := api.CreateSecurityGroup(&instance.CreateSecurityGroupRequest{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, bad, _ := net.ParseCIDR("0.0.0.0/0")
	_, err = api.CreateSecurityGroupRule(&instance.CreateSecurityGroupRuleRequest{
		SecurityGroupID: sg.SecurityGroup.ID, Protocol: "ICMP", Direction: "inbound", Action: "accept",
		IPRange: scw.IPNet{IPNet: *bad}, DestPortFrom: scw.Uint32Ptr(22),
	})
	var ia *scw.InvalidArgumentsError
	if !errors.As(err, &ia) || len(ia.Details) != 1 || ia.Details[0].ArgumentName != "dest_port_from" {
		t.Fatalf("ports on ICMP: %v, want InvalidArgumentsError naming dest_port_from", err)
	}
	badClient, _ := scw.NewClient(scw.WithAPIURL(env.url), scw.WithAuth(env.access, "00000000-0000-0000-0000-000000000000"),
		scw.WithDefaultProjectID(env.org.ID), scw.WithDefaultZone(scw.ZoneFrPar1))
	_, err = instance.NewAPI(badClient).ListSecurityGroups(&instance.ListSecurityGroupsRequest{})
	var da *scw.DeniedAuthenticationError
	if !errors.As(err, &da) {
		t.Fatalf("wrong secret: %v, want DeniedAuthenticationError", err)
	}
}
