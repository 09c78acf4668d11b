package enforcer

import (
	"net/netip"
	"slices"
)

// rulesetDiff is what an incremental apply must send to turn prev into next.
//
// A batch applies it in this order, so that every name a message uses
// exists when the kernel reads it and nothing is deleted while in use:
// objects added, sets added (with their elements), set elements deleted
// then added, chains added (a group's log chains before the chains that go
// to them), chains replaced, map elements, chains deleted, sets deleted,
// objects deleted. The kernel applies the batch as one transaction: a
// packet meets either the old elements of a set or the new ones, never a
// mix, so a packet both allow is never dropped.
type rulesetDiff struct {
	addSets       []Set      // sets a rule now matches, whole
	setElems      []elemDiff // sets both hold whose elements changed
	delSets       []string   // sets no rule matches any more
	addObjects    []Object
	addChains     []Chain  // chains of new groups, and new log chains, with their rules
	replaceChains []Chain  // existing chains whose rules changed: flush + re-add
	delChains     []string // chains of removed groups, and log chains no rule uses
	delTo, addTo  []MapElem
	delFrom       []MapElem
	addFrom       []MapElem
	delObjects    []Object        // objects no rule uses any more
	touched       map[string]bool // group IDs whose kernel state this diff changes
}

// elemDiff is the change of one set's elements: del and add are sorted,
// and disjoint from each other.
type elemDiff struct {
	set      Set // the set as next holds it
	del, add []netip.Prefix
}

func (d *rulesetDiff) empty() bool {
	return len(d.addObjects)+len(d.addChains)+len(d.replaceChains)+len(d.delChains)+
		len(d.delTo)+len(d.addTo)+len(d.delFrom)+len(d.addFrom)+len(d.delObjects)+
		len(d.addSets)+len(d.setElems)+len(d.delSets) == 0
}

// diffSets adds what turns prev's sets into next's: walked side by side
// by name, elements by a sorted merge (O(n), nothing when the two share
// their elements). It returns the names of the sets whose contents
// changed, for attribution to the groups that match them.
func (d *rulesetDiff) diffSets(prev, next []Set) []string {
	var changed []string
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || i < len(prev) && prev[i].Name < next[j].Name:
			d.delSets = append(d.delSets, prev[i].Name)
			i++
		case i == len(prev) || next[j].Name < prev[i].Name:
			d.addSets = append(d.addSets, next[j])
			changed = append(changed, next[j].Name)
			j++
		default:
			p, n := prev[i], next[j]
			// A set's name says its family and kind (IPSetNames):
			// only its elements can differ.
			if !sameSlice(p.Elems, n.Elems) {
				del, add := diffSorted(p.Elems, n.Elems, ComparePrefixes)
				if len(del)+len(add) > 0 {
					d.setElems = append(d.setElems, elemDiff{set: n, del: del, add: add})
					changed = append(changed, n.Name)
				}
			}
			i++
			j++
		}
	}
	return changed
}

// diffRulesets compares two Rulesets. Base chains and sets never change, so
// only group chains, host chains and map elements are compared. Both
// Rulesets hold their groups ordered by ID and their map elements ordered by
// interface, so they are walked side by side; chains shared by both (a
// Compiler reuses the chains of unchanged groups) compare by identity.
func diffRulesets(prev, next *Ruleset) rulesetDiff {
	d := rulesetDiff{touched: map[string]bool{}}
	i, j := 0, 0
	for i < len(prev.Groups) || j < len(next.Groups) {
		switch {
		case j == len(next.Groups) || i < len(prev.Groups) && prev.Groups[i].GroupID < next.Groups[j].GroupID:
			g := prev.Groups[i]
			d.delChains = append(d.delChains, g.In.Name, g.Out.Name)
			for _, c := range g.LogChains {
				d.delChains = append(d.delChains, c.Name)
			}
			d.delObjects = append(d.delObjects, g.Objects...)
			i++
		case i == len(prev.Groups) || next.Groups[j].GroupID < prev.Groups[i].GroupID:
			g := next.Groups[j]
			d.addObjects = append(d.addObjects, g.Objects...)
			d.addChains = append(append(d.addChains, g.LogChains...), g.In, g.Out)
			d.touched[g.GroupID] = true
			j++
		default:
			if d.diffGroup(prev.Groups[i], next.Groups[j]) {
				d.touched[next.Groups[j].GroupID] = true
			}
			i++
			j++
		}
	}
	// Attribution of host chains and map elements to groups, built only
	// when one of them changed.
	var chainGroup map[string]string
	attribute := func(chain string) {
		if chainGroup == nil {
			chainGroup = map[string]string{}
			for _, rs := range []*Ruleset{prev, next} {
				for _, g := range rs.Groups {
					chainGroup[g.In.Name], chainGroup[g.Out.Name] = g.GroupID, g.GroupID
				}
			}
		}
		if g := chainGroup[chain]; g != "" {
			d.touched[g] = true
		}
	}
	for _, pair := range [][2]Chain{{prev.HostIn, next.HostIn}, {prev.HostOut, next.HostOut}} {
		if !sameRules(pair[0].Rules, pair[1].Rules) {
			d.replaceChains = append(d.replaceChains, pair[1])
			for _, rs := range [][]Rule{pair[0].Rules, pair[1].Rules} {
				for _, r := range rs {
					attribute(r.Verdict.Chain)
				}
			}
		}
	}
	if changed := d.diffSets(prev.Sets, next.Sets); len(changed) > 0 {
		// The groups whose chains match a changed set: their state
		// depends on this batch too.
		c := map[string]bool{}
		for _, name := range changed {
			c[name] = true
		}
		for _, g := range next.Groups {
			for _, name := range chainSets(g) {
				if c[name] {
					d.touched[g.GroupID] = true
					break
				}
			}
		}
	}
	d.delTo, d.addTo = diffElems(prev.ToServer, next.ToServer)
	d.delFrom, d.addFrom = diffElems(prev.FromServer, next.FromServer)
	for _, list := range [][]MapElem{d.delTo, d.addTo, d.delFrom, d.addFrom} {
		for _, e := range list {
			attribute(e.Chain)
		}
	}
	return d
}

// diffGroup adds what turns old into g, the same group, and reports
// whether anything did change.
func (d *rulesetDiff) diffGroup(old, g GroupChains) bool {
	n := len(d.addObjects) + len(d.addChains) + len(d.replaceChains) + len(d.delChains) + len(d.delObjects)
	if !(len(old.Objects) > 0 && len(g.Objects) > 0 && &old.Objects[0] == &g.Objects[0] && len(old.Objects) == len(g.Objects)) {
		del, add := diffSorted(old.Objects, g.Objects, compareObjects)
		d.addObjects = append(d.addObjects, add...)
		d.delObjects = append(d.delObjects, del...)
	}
	for _, pair := range [2][2]Chain{{old.In, g.In}, {old.Out, g.Out}} {
		if !sameRules(pair[0].Rules, pair[1].Rules) {
			d.replaceChains = append(d.replaceChains, pair[1])
		}
	}
	i, j := 0, 0
	for i < len(old.LogChains) || j < len(g.LogChains) {
		switch {
		case j == len(g.LogChains) || i < len(old.LogChains) && old.LogChains[i].Name < g.LogChains[j].Name:
			d.delChains = append(d.delChains, old.LogChains[i].Name)
			i++
		case i == len(old.LogChains) || g.LogChains[j].Name < old.LogChains[i].Name:
			d.addChains = append(d.addChains, g.LogChains[j])
			j++
		default:
			if !sameRules(old.LogChains[i].Rules, g.LogChains[j].Rules) {
				d.replaceChains = append(d.replaceChains, g.LogChains[j])
			}
			i++
			j++
		}
	}
	return len(d.addObjects)+len(d.addChains)+len(d.replaceChains)+len(d.delChains)+len(d.delObjects) != n
}

// diffSorted returns the elements of sorted list a missing from sorted
// list b (del) and those of b missing from a (add).
func diffSorted[T any](a, b []T, cmp func(x, y T) int) (del, add []T) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && cmp(a[i], b[j]) < 0:
			del = append(del, a[i])
			i++
		case i == len(a) || cmp(b[j], a[i]) < 0:
			add = append(add, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return del, add
}

// sameRules reports whether two chains hold the same rules: at once when
// they share their backing array, else rule by rule.
func sameRules(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
}

// diffElems returns the elements to delete and to add; an element whose
// verdict changed is in both (deleted, then added, in the same batch). Both
// lists are ordered by interface, as Compile makes them.
func diffElems(prev, next []MapElem) (del, add []MapElem) {
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		switch {
		case j == len(next) || i < len(prev) && prev[i].IfName < next[j].IfName:
			del = append(del, prev[i])
			i++
		case i == len(prev) || next[j].IfName < prev[i].IfName:
			add = append(add, next[j])
			j++
		default:
			if prev[i].Chain != next[j].Chain {
				del = append(del, prev[i])
				add = append(add, next[j])
			}
			i++
			j++
		}
	}
	return del, add
}
