package bench

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/rampart-fw/rampart/store"
)

// Scale is one point of the benchmark matrix.
type Scale struct {
	Servers, Groups, Rules int // rules per group
}

func (s Scale) String() string {
	return fmt.Sprintf("%d servers × %d groups × %d rules", s.Servers, s.Groups, s.Rules)
}

// TotalRules is the number of editable rules of the scale point.
func (s Scale) TotalRules() int { return s.Groups * s.Rules }

// ruleSpec is the i-th rule of group g: half inbound, half outbound; TCP,
// UDP (port ranges), ICMP and ANY in turn; one range in five IPv6.
func ruleSpec(g, i int) (dir store.Direction, proto store.Protocol, action store.Policy, cidr string, from, to int) {
	dir = store.Inbound
	if i%2 == 1 {
		dir = store.Outbound
	}
	cidr = fmt.Sprintf("10.%d.%d.0/24", g%250, i%250)
	if i%5 == 4 {
		cidr = fmt.Sprintf("2001:db8:%x:%x::/64", g, i)
	}
	switch i % 4 {
	case 0:
		return dir, store.TCP, store.Accept, cidr, 1000 + i, 0
	case 1:
		return dir, store.UDP, store.Drop, cidr, 2000 + i, 2100 + i
	case 2:
		return dir, store.ICMP, store.Accept, cidr, 0, 0
	}
	return dir, store.ANY, store.Drop, cidr, 0, 0
}

// GroupID is the ID of the g-th synthetic group.
func GroupID(g int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", g, g) }

// IfName is the interface of the s-th synthetic server.
func IfName(s int) string { return fmt.Sprintf("vm%d", s) }

// Snapshot returns a synthetic desired state at scale sc: every group
// stateful, inbound drop, SMTP blocked; server s in group s mod groups,
// behind interface vm<s>. It is what Populate writes into a store.
func Snapshot(sc Scale) store.Snapshot {
	snap := store.Snapshot{Generation: 1, Rules: map[string][]store.Rule{}}
	for g := 0; g < sc.Groups; g++ {
		id := GroupID(g)
		snap.Groups = append(snap.Groups, store.Group{
			ID: id, Name: fmt.Sprintf("group-%d", g), Stateful: true,
			InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept,
			Generation: 1,
		})
		for i := 0; i < sc.Rules; i++ {
			dir, proto, action, cidr, from, to := ruleSpec(g, i)
			r := store.Rule{
				ID: fmt.Sprintf("%s-r%03d", id[:8], i), GroupID: id,
				Direction: dir, Protocol: proto, Action: action,
				IPRange: netip.MustParsePrefix(cidr), DestPortFrom: uint16(from), DestPortTo: uint16(to),
				Position: i + 1, Editable: true,
			}
			snap.Rules[id] = append(snap.Rules[id], r)
		}
	}
	for s := 0; s < sc.Servers; s++ {
		snap.Servers = append(snap.Servers, store.Server{
			ID: fmt.Sprintf("srv-%05d", s), Name: fmt.Sprintf("server-%d", s),
			Type: store.Instance, Interface: IfName(s),
			SecurityGroup: store.ServerRef{ID: GroupID(s % sc.Groups)},
		})
	}
	return snap
}

// RuleInputs returns the store input of n synthetic rules of group g.
func RuleInputs(g, n int) []store.RuleInput {
	ins := make([]store.RuleInput, n)
	for i := range ins {
		dir, proto, action, cidr, from, to := ruleSpec(g, i)
		ins[i] = store.RuleInput{Direction: dir, Protocol: proto, Action: action, IPRange: cidr}
		if from != 0 {
			f := from
			ins[i].DestPortFrom = &f
		}
		if to != 0 {
			t := to
			ins[i].DestPortTo = &t
		}
	}
	return ins
}

// Dataset is a store filled at a scale point.
type Dataset struct {
	DB     *store.DB
	Org    store.Organization
	Zone   string
	Groups []store.Group // in creation order
	Secret string        // an API token of Org
}

// Populate creates a store at dsn (a SQLite path or a postgres:// URL of
// an empty database) and fills it at scale sc through the store's public
// methods: one organization, sc.Groups groups of sc.Rules rules (as in
// Snapshot) and sc.Servers servers spread over them.
func Populate(ctx context.Context, dsn string, sc Scale) (*Dataset, error) {
	db, err := store.Open(ctx, dsn, []string{"fr-par-1", "nl-ams-1"})
	if err != nil {
		return nil, err
	}
	ds := &Dataset{DB: db, Zone: "fr-par-1"}
	fail := func(err error) (*Dataset, error) {
		db.Close()
		return nil, err
	}
	if ds.Org, err = db.EnsureOrganization(ctx, "bench"); err != nil {
		return fail(err)
	}
	_, ds.Secret, err = db.CreateToken(ctx, ds.Org.ID, "bench")
	if err != nil {
		return fail(err)
	}
	for g := 0; g < sc.Groups; g++ {
		grp, err := db.CreateGroup(ctx, ds.Org.ID, ds.Zone, store.GroupInput{
			Name: fmt.Sprintf("group-%d", g), Description: "benchmark group", Stateful: true,
			InboundDefaultPolicy: store.Drop, OutboundDefaultPolicy: store.Accept,
		})
		if err != nil {
			return fail(fmt.Errorf("populate: %w", err))
		}
		if sc.Rules > 0 {
			if _, err := db.SetRules(ctx, ds.Org.ID, ds.Zone, grp.ID, RuleInputs(g, sc.Rules)); err != nil {
				return fail(fmt.Errorf("populate rules: %w", err))
			}
		}
		ds.Groups = append(ds.Groups, grp)
	}
	for s := 0; s < sc.Servers; s++ {
		if _, err := db.CreateServer(ctx, ds.Org.ID, ds.Zone, store.ServerInput{
			Name: fmt.Sprintf("server-%d", s), Type: store.Instance, Interface: IfName(s),
			SecurityGroupID: ds.Groups[s%len(ds.Groups)].ID,
		}); err != nil {
			return fail(fmt.Errorf("populate servers: %w", err))
		}
	}
	return ds, nil
}
