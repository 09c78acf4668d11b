package web

import (
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/explain"
	"github.com/rampart-fw/rampart/store"
)

// chainsEnforcer is an Enforcer whose Chains answers what a test says.
type chainsEnforcer struct {
	Enforcer
	chains enforcer.GroupChains
	ok     bool
}

func (e chainsEnforcer) Chains(string) (enforcer.GroupChains, bool) { return e.chains, e.ok }

func (e chainsEnforcer) GroupSets(string) []enforcer.Set { return nil }

// TestExplainGroupChains: the tester answers from the reconciler's chains
// only when they were compiled from the generation the request read, and
// otherwise from that generation compiled on the spot; either way it
// agrees with the rules read.
func TestExplainGroupChains(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "r.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org, _ := db.EnsureOrganization(ctx, "acme")
	g, err := db.CreateGroup(ctx, org.ID, "fr-par-1", store.GroupInput{Name: "web", InboundDefaultPolicy: store.Drop})
	if err != nil {
		t.Fatal(err)
	}
	port := 22
	if _, err := db.CreateRule(ctx, org.ID, "fr-par-1", g.ID, store.RuleInput{Direction: store.Inbound, Protocol: store.TCP,
		Action: store.Accept, IPRange: "0.0.0.0/0", DestPortFrom: &port}); err != nil {
		t.Fatal(err)
	}
	// A rule on an IP set: compiled on the spot, it needs the set's
	// entries, read from the store.
	set, err := db.CreateIPSet(ctx, org.ID, "fr-par-1", store.IPSetInput{Name: "office", Entries: []string{"198.51.100.0/24", "2001:db8::7"}})
	if err != nil {
		t.Fatal(err)
	}
	http80 := 80
	if _, err := db.CreateRule(ctx, org.ID, "fr-par-1", g.ID, store.RuleInput{Direction: store.Inbound, Protocol: store.TCP,
		Action: store.Accept, IPSetID: &set.ID, DestPortFrom: &http80}); err != nil {
		t.Fatal(err)
	}
	g, rules, err := db.GroupRules(ctx, org.ID, "fr-par-1", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Chains that accept everything: recognisable when used.
	in, out := enforcer.ChainNames(g.ID)
	acceptAll := func(gen int64) enforcer.GroupChains {
		all := []enforcer.Rule{{Tag: enforcer.TagDefaultIn, Verdict: enforcer.Verdict{Kind: "accept"}}}
		return enforcer.GroupChains{GroupID: g.ID, Generation: gen, In: enforcer.Chain{Name: in, Rules: all},
			Out: enforcer.Chain{Name: out, Rules: []enforcer.Rule{{Tag: enforcer.TagDefaultOut, Verdict: enforcer.Verdict{Kind: "accept"}}}}}
	}
	tests := []struct {
		name   string
		chains enforcer.GroupChains
		ok     bool
		want   store.Policy // for TCP port 23, which the stored rules drop
	}{
		{"the reconciler's, of this generation", acceptAll(g.Generation), true, store.Accept},
		{"the reconciler's, of an older generation", acceptAll(g.Generation - 1), true, store.Drop},
		{"the reconciler's, of a later generation", acceptAll(g.Generation + 1), true, store.Drop},
		{"none yet", enforcer.GroupChains{}, false, store.Drop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{enf: chainsEnforcer{chains: tt.chains, ok: tt.ok}, db: db}
			eg, err := s.explainGroup(ctx, g, rules)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == store.Drop { // compiled on the spot: the set's entries count
				for remote, want := range map[string]store.Policy{"198.51.100.9": store.Accept, "2001:db8::7": store.Accept, "203.0.113.1": store.Drop} {
					d, err := eg.Evaluate(explain.Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: netip.MustParseAddr(remote), Port: 80})
					if err != nil || d.Verdict != want {
						t.Errorf("TCP 80 from %s: %s (%v), want %s", remote, d.Verdict, err, want)
					}
				}
			}
			d, err := eg.Evaluate(explain.Packet{Direction: store.Inbound, Protocol: store.TCP,
				Remote: netip.MustParseAddr("192.0.2.1"), Port: 23})
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tt.want {
				t.Errorf("verdict = %s, want %s", d.Verdict, tt.want)
			}
		})
	}
	// What is compiled on the spot is what the reconciler compiles.
	snap, err := db.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs := enforcer.Compile(snap)
	want, _ := rs.Group(g.ID)
	remotes, err := db.RemotesOf(ctx, editable(rules))
	if err != nil {
		t.Fatal(err)
	}
	got, sets := compileGroup(g, editable(rules), remotes)
	if !equalChains(got, want) {
		t.Errorf("compiled alone:\n%+v\nfrom the whole store:\n%+v", got, want)
	}
	if wantSets := rs.GroupSets(g.ID); len(sets) != len(wantSets) || len(sets) == 0 || !reflect.DeepEqual(sets, wantSets) {
		t.Errorf("sets compiled alone %+v, from the whole store %+v", sets, wantSets)
	}
}

func equalChains(a, b enforcer.GroupChains) bool {
	eq := func(x, y []enforcer.Rule) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a.GroupID == b.GroupID && a.Generation == b.Generation && a.In.Name == b.In.Name && a.Out.Name == b.Out.Name &&
		eq(a.In.Rules, b.In.Rules) && eq(a.Out.Rules, b.Out.Rules)
}

// TestAnalysisCache: an analysis is computed once per group generation.
func TestAnalysisCache(t *testing.T) {
	var c analysisCache
	c.put("g", 2, explain.Analysis{Findings: []explain.Finding{{RuleID: "r"}}}, nil)
	if _, _, ok := c.get("g", 1); ok {
		t.Error("generation 1 found after generation 2 was stored")
	}
	if a, err, ok := c.get("g", 2); !ok || err != nil || len(a.Findings) != 1 {
		t.Errorf("get = %v, %v, %v", a, err, ok)
	}
	c.put("g", 1, explain.Analysis{}, nil) // a slower request for an older generation
	if a, _, ok := c.get("g", 2); !ok || len(a.Findings) != 1 {
		t.Error("an older generation replaced a newer one")
	}
}
