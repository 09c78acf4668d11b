package explain

import (
	"net/netip"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// Fixed group IDs keep chain names and SMTP row IDs stable in failures.
const (
	gA = "aaaaaaaa-0000-4000-8000-000000000001"
	gB = "bbbbbbbb-0000-4000-8000-000000000002"
)

func group(id string, stateful bool, in, out store.Policy, smtp bool) store.Group {
	return store.Group{ID: id, Name: id[:8], Stateful: stateful, InboundDefaultPolicy: in,
		OutboundDefaultPolicy: out, SMTPEnabled: !smtp, Generation: 1}
}

func rule(id string, dir store.Direction, proto store.Protocol, action store.Policy, ipRange string, from, to uint16) store.Rule {
	return store.Rule{ID: id, Direction: dir, Protocol: proto, Action: action,
		IPRange: netip.MustParsePrefix(ipRange), DestPortFrom: from, DestPortTo: to, Editable: true}
}

func in(id string, proto store.Protocol, action store.Policy, ipRange string, from, to uint16) store.Rule {
	return rule(id, store.Inbound, proto, action, ipRange, from, to)
}

func out(id string, proto store.Protocol, action store.Policy, ipRange string, from, to uint16) store.Rule {
	return rule(id, store.Outbound, proto, action, ipRange, from, to)
}

// dest narrows r's local side.
func dest(r store.Rule, prefix string) store.Rule {
	r.DestIPRange = netip.MustParsePrefix(prefix)
	return r
}

// positioned numbers rules 1..N in the order given, as the store does.
func positioned(groupID string, rules []store.Rule) []store.Rule {
	out := make([]store.Rule, len(rules))
	for i, r := range rules {
		r.GroupID, r.Position = groupID, i+1
		out[i] = r
	}
	return out
}

// compile returns the compiled chains of g with rules (already positioned)
// and the sets they match, with the test sets and members (testIPSets,
// testMembers).
func compile(tb testing.TB, g store.Group, rules []store.Rule) (enforcer.GroupChains, []enforcer.Set) {
	tb.Helper()
	rs := enforcer.Compile(store.Snapshot{Generation: 1, Groups: []store.Group{g}, Rules: map[string][]store.Rule{g.ID: rules},
		IPSets: testIPSets, Members: testMembers})
	gc, ok := rs.Group(g.ID)
	if !ok || rs.Errors[g.ID] != nil {
		tb.Fatalf("group %s not compiled: %v", g.ID, rs.Errors[g.ID])
	}
	return gc, rs.GroupSets(g.ID)
}

// build positions rules, compiles g and returns the explainer's group.
func build(tb testing.TB, g store.Group, rules ...store.Rule) *Group {
	tb.Helper()
	rules = positioned(g.ID, rules)
	gc, sets := compile(tb, g, rules)
	eg, err := NewGroup(g, rules, gc, sets...)
	if err != nil {
		tb.Fatal(err)
	}
	return eg
}

// fromSet is rule r with IP set setID as its remote side.
func fromSet(r store.Rule, setID string) store.Rule {
	r.IPRange, r.IPSetID = netip.Prefix{}, setID
	return r
}

// fromGroup is rule r with group groupID's servers as its remote side.
func fromGroup(r store.Rule, groupID string) store.Rule {
	r.IPRange, r.RemoteGroupID = netip.Prefix{}, groupID
	return r
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// smtpID returns the ID of SMTP row pos (1..6) of group id.
func smtpID(id string, pos int) string { return store.SMTPRules(id)[pos-1].ID }

func mustAnalyze(tb testing.TB, g *Group) Analysis {
	tb.Helper()
	a, err := g.Analyze()
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
