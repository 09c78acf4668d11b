package explain

import (
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// propertySeed returns the seed of the property tests: fixed, so that a
// run is reproducible, or RAMPART_PROPERTY_SEED. Failures print it.
func propertySeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(20250905)
	if s := os.Getenv("RAMPART_PROPERTY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RAMPART_PROPERTY_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (RAMPART_PROPERTY_SEED=%d replays it)", seed, seed)
		}
	})
	return seed
}

func mustGroup(t *testing.T, g store.Group, rules []store.Rule) *Group {
	t.Helper()
	gc, sets := compile(t, g, rules)
	eg, err := NewGroup(g, rules, gc, sets...)
	if err != nil {
		t.Fatal(err)
	}
	return eg
}

// ruleIDs returns the IDs of the rules and SMTP rows of g's chains.
func ruleIDs(g *Group) []string {
	var out []string
	for _, c := range []*chain{&g.in, &g.out} {
		for _, ref := range c.refs {
			if ref.RuleID != "" {
				out = append(out, ref.RuleID)
			}
		}
	}
	return out
}

func findingsOf(a Analysis, kind FindingKind) map[string]Finding {
	out := map[string]Finding{}
	for _, f := range a.Findings {
		if f.Kind == kind {
			out[f.RuleID] = f
		}
	}
	return out
}

// TestPropertyWitnesses checks, on random groups, that every rule not
// reported shadowed has a witness that the tester says it decides, and
// that no packet is decided by a rule reported shadowed.
func TestPropertyWitnesses(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed(t), 1))
	witnesses, packets := 0, 0
	for i := range 400 {
		g, rules := randomGroup(rng, gA, 12)
		if i%2 == 1 {
			g, rules = denseGroup(rng, gA)
		}
		eg := mustGroup(t, g, rules)
		a := mustAnalyze(t, eg)
		shadowed := findingsOf(a, Shadowed)
		for _, id := range ruleIDs(eg) {
			w, ok := a.Witnesses[id]
			switch {
			case shadowed[id].RuleID != "" && ok:
				t.Fatalf("group %d: rule %s reported shadowed has witness %s", i, id, describe(w))
			case shadowed[id].RuleID != "":
			case !ok:
				t.Fatalf("group %d: rule %s neither shadowed nor witnessed", i, id)
			default:
				d, err := eg.Evaluate(w)
				if err != nil {
					t.Fatalf("group %d: witness %s of %s: %v", i, describe(w), id, err)
				}
				if d.DecidedBy.RuleID != id {
					t.Fatalf("group %d: witness %s of rule %s is decided by %+v", i, describe(w), id, d.DecidedBy)
				}
				witnesses++
			}
		}
		for range 200 {
			p := randomPacket(rng, rules, g.ID)
			d, err := eg.Evaluate(p)
			if err != nil {
				t.Fatalf("group %d: packet %s: %v", i, describe(p), err)
			}
			if _, ok := shadowed[d.DecidedBy.RuleID]; ok {
				t.Fatalf("group %d: rule %s reported shadowed decides %s", i, d.DecidedBy.RuleID, describe(p))
			}
			packets++
		}
	}
	t.Logf("%d witnesses and %d random packets checked", witnesses, packets)
}

// TestPropertyRedundant checks, on random groups, that deleting a rule
// reported redundant changes the verdict of no packet: the witnesses of
// every rule, before and after, and random packets near every rule.
func TestPropertyRedundant(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed(t), 2))
	checked := 0
	for i := range 300 {
		g, rules := randomGroup(rng, gA, 12)
		if i%2 == 1 {
			g, rules = denseGroup(rng, gA)
		}
		eg := mustGroup(t, g, rules)
		a := mustAnalyze(t, eg)
		for id := range findingsOf(a, Redundant) {
			without := positioned(g.ID, slices.DeleteFunc(slices.Clone(rules), func(r store.Rule) bool { return r.ID == id }))
			eg2 := mustGroup(t, g, without)
			var ps []Packet
			for _, w := range a.Witnesses {
				ps = append(ps, w)
			}
			for _, w := range mustAnalyze(t, eg2).Witnesses {
				ps = append(ps, w)
			}
			for range 150 {
				ps = append(ps, randomPacket(rng, rules, g.ID))
			}
			for _, p := range ps {
				d1, err1 := eg.Evaluate(p)
				d2, err2 := eg2.Evaluate(p)
				if err1 != nil || err2 != nil {
					t.Fatalf("group %d: %s: %v, %v", i, describe(p), err1, err2)
				}
				if d1.Verdict != d2.Verdict {
					t.Fatalf("group %d: deleting redundant rule %s turns %s from %s (by %+v) to %s (by %+v)",
						i, id, describe(p), d1.Verdict, d1.DecidedBy, d2.Verdict, d2.DecidedBy)
				}
				checked++
			}
		}
	}
	t.Logf("%d verdicts compared after deleting redundant rules", checked)
}

// cellPackets returns one new packet per cell of the chain's packet space:
// every rule's match is, per dimension, an interval, so cutting each
// dimension at every interval's ends gives cells that every rule matches
// wholly or not at all. The first point of each cell stands for it, which
// makes a check over these packets a proof over all packets.
func cellPackets(c *chain) []Packet {
	var out []Packet
	for _, fam := range []enforcer.Family{enforcer.FamilyIPv4, enforcer.FamilyIPv6} {
		space := [nDims]span{addrSpace(fam), addrSpace(fam), portSpace}
		var cuts [nDims][]u128
		for d := range nDims {
			cuts[d] = []u128{space[d].lo}
		}
		for i := range c.rules {
			for _, b := range matchBoxes(&c.rules[i], c.dir) {
				if b.fam != fam {
					continue
				}
				for d := range nDims {
					cuts[d] = append(cuts[d], b.dims[d].lo)
					if b.dims[d].hi != space[d].hi {
						cuts[d] = append(cuts[d], b.dims[d].hi.inc())
					}
				}
			}
		}
		for d := range nDims {
			slices.SortFunc(cuts[d], u128.cmp)
			cuts[d] = slices.Compact(cuts[d])
		}
		for _, remote := range cuts[dimRemote] {
			for _, local := range cuts[dimLocal] {
				p := Packet{Direction: c.dir, Remote: remote.addr(fam), Local: local.addr(fam), State: New}
				for _, proto := range []store.Protocol{store.TCP, store.UDP} {
					for _, port := range cuts[dimPort] {
						p.Protocol, p.Port = proto, uint16(port.lo)
						out = append(out, p)
					}
				}
				p.Port = 0
				for _, l4 := range []uint8{1, 58, otherL4} {
					p.Protocol = protocolOf(l4, p.Remote)
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// TestAnalyzeExhaustive proves the analysis of random small groups
// against brute force over the cells of their packet space: shadowed,
// redundant and conflict, with the rules each names.
func TestAnalyzeExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed(t), 3))
	counts := map[FindingKind]int{}
	cells := 0
	for i := range 1000 {
		g, rules := randomGroup(rng, gA, 12)
		if i%2 == 1 {
			g, rules = denseGroup(rng, gA)
		}
		eg := mustGroup(t, g, rules)
		got := map[finding]bool{}
		for _, f := range mustAnalyze(t, eg).Findings {
			if f.Kind != Broad {
				got[finding{f.RuleID, f.Kind, strings.Join(f.By, ",")}] = true
			}
		}
		want := map[finding]bool{}
		for _, c := range []*chain{&eg.in, &eg.out} {
			cells += len(cellPackets(c))
			for f := range oracle(t, g, rules, eg, c) {
				want[f] = true
				counts[f.kind]++
			}
		}
		for f := range want {
			if !got[f] {
				t.Errorf("group %d: missing finding %v", i, f)
			}
		}
		for f := range got {
			if !want[f] {
				t.Errorf("group %d: finding %v, which brute force does not find", i, f)
			}
		}
		if t.Failed() {
			for _, r := range rules {
				t.Logf("%s: %s %s %s %s %s %d-%d", r.ID, r.Direction, r.Protocol, r.Action, r.IPRange, r.DestIPRange, r.DestPortFrom, r.DestPortTo)
			}
			t.FailNow()
		}
	}
	t.Logf("brute force agrees over %d cells: %v", cells, counts)
}

// oracle returns the findings of the rules of chain c by brute force over
// its cells.
func oracle(t *testing.T, g store.Group, rules []store.Rule, eg *Group, c *chain) map[finding]bool {
	t.Helper()
	packets := cellPackets(c)
	index := map[string]int{}
	for i, ref := range c.refs {
		if ref.RuleID != "" {
			index[ref.RuleID] = i
		}
	}
	decider := make([]int, len(packets))
	for k, p := range packets {
		d, err := eg.Evaluate(p)
		if err != nil {
			t.Fatalf("%s: %v", describe(p), err)
		}
		decider[k] = slices.IndexFunc(d.Trace, func(s Step) bool { return s.Matched })
	}
	names := func(set map[int]bool) string {
		idx := slices.Sorted(func(yield func(int) bool) {
			for i := range set {
				if !yield(i) {
					return
				}
			}
		})
		var ids []string
		for _, i := range idx {
			if c.refs[i].RuleID != "" {
				ids = append(ids, c.refs[i].RuleID)
			}
		}
		return strings.Join(ids, ",")
	}
	out := map[finding]bool{}
	for i, ref := range c.refs {
		if ref.Kind != KindRule {
			continue
		}
		var decided []Packet
		before := map[int]bool{}   // earlier rules deciding packets that i matches
		opposite := map[int]bool{} // of which those of the opposite action
		for k, p := range packets {
			if decider[k] == i {
				decided = append(decided, p)
				continue
			}
			if part, _ := c.mismatch(&c.rules[i], packetOf(p)); part != "" {
				continue
			}
			before[decider[k]] = true
			if c.action(decider[k]) != c.action(i) {
				opposite[decider[k]] = true
			}
		}
		if len(decided) == 0 {
			out[finding{ref.RuleID, Shadowed, names(before)}] = true
			continue
		}
		if len(opposite) > 0 {
			out[finding{ref.RuleID, Conflict, names(opposite)}] = true
		}
		without := positioned(g.ID, slices.DeleteFunc(slices.Clone(rules), func(r store.Rule) bool { return r.ID == ref.RuleID }))
		eg2 := mustGroup(t, g, without)
		c2 := eg2.chain(c.dir)
		after := map[int]bool{} // in c's numbering
		redundant := true
		for _, p := range decided {
			d, err := eg2.Evaluate(p)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != c.action(i) {
				redundant = false
				break
			}
			j := slices.IndexFunc(d.Trace, func(s Step) bool { return s.Matched })
			if c2.refs[j].RuleID != "" {
				after[index[c2.refs[j].RuleID]] = true
			}
		}
		if redundant {
			out[finding{ref.RuleID, Redundant, names(after)}] = true
		}
	}
	return out
}

// TestAnalyzeLargeGroup bounds the analysis of a large group: the web
// layer runs it on every view of a group.
func TestAnalyzeLargeGroup(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed(t), 4))
	g := group(gA, true, store.Drop, store.Accept, true)
	rules := make([]store.Rule, 300)
	for i := range rules {
		rules[i] = randomRule(rng, "r"+strconv.Itoa(i+1))
	}
	rules = positioned(gA, rules)
	eg := mustGroup(t, g, rules)
	a := mustAnalyze(t, eg)
	kinds := map[FindingKind]int{}
	for _, f := range a.Findings {
		kinds[f.Kind]++
	}
	t.Logf("300 rules: %v, %d witnesses", kinds, len(a.Witnesses))
}

// TestAnalyzeBoundsSound proves that the analysis of rules on large sets,
// taken as bounds (entryBounds), only reports what is true: with every
// set of more than one interval taken as bounds, each finding of random
// groups is one that brute force over the exact cells finds too (the
// rules it names may differ: bounds may name more or fewer), and every
// witness is decided by its rule.
func TestAnalyzeBoundsSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(propertySeed(t), 5))
	defer func(n int) { maxExactSpans = n }(maxExactSpans)
	counts := map[FindingKind]int{}
	missed := 0
	for i := range 600 {
		g, rules := randomGroup(rng, gA, 12)
		if i%2 == 1 {
			g, rules = denseGroup(rng, gA)
		}
		maxExactSpans = 256
		exact := mustGroup(t, g, rules)
		want := map[[2]string]bool{}
		for _, c := range []*chain{&exact.in, &exact.out} {
			for f := range oracle(t, g, rules, exact, c) {
				want[[2]string{f.rule, string(f.kind)}] = true
			}
		}
		maxExactSpans = 1
		eg := mustGroup(t, g, rules)
		a := mustAnalyze(t, eg)
		for _, f := range a.Findings {
			if f.Kind == Broad {
				continue
			}
			if !want[[2]string{f.RuleID, string(f.Kind)}] {
				t.Fatalf("group %d: finding %s %s (%s), which brute force does not find", i, f.RuleID, f.Kind, f.Message)
			}
			counts[f.Kind]++
		}
		missed += len(want)
		for id, w := range a.Witnesses {
			d, err := eg.Evaluate(w)
			if err != nil || d.DecidedBy.RuleID != id {
				t.Fatalf("group %d: witness %s of %s decided by %+v (%v)", i, describe(w), id, d.DecidedBy, err)
			}
		}
	}
	t.Logf("with bounds: %v (brute force: %d findings in all)", counts, missed)
}
