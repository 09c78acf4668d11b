package enforcer

import "slices"

// rulesetDiff is what an incremental apply must send to turn prev into next.
type rulesetDiff struct {
	addChains     []Chain  // chains of new groups, with their rules
	replaceChains []Chain  // existing chains whose rules changed: flush + re-add
	delChains     []string // chains of removed groups
	delTo, addTo  []MapElem
	delFrom       []MapElem
	addFrom       []MapElem
	touched       map[string]bool // group IDs whose kernel state this diff changes
}

func (d *rulesetDiff) empty() bool {
	return len(d.addChains)+len(d.replaceChains)+len(d.delChains)+
		len(d.delTo)+len(d.addTo)+len(d.delFrom)+len(d.addFrom) == 0
}

// diffRulesets compares two Rulesets. Base chains and sets never change, so
// only group chains, host chains and map elements are compared.
func diffRulesets(prev, next *Ruleset) rulesetDiff {
	d := rulesetDiff{touched: map[string]bool{}}
	chainGroup := map[string]string{} // chain name -> group ID, for attribution
	for _, rs := range []*Ruleset{prev, next} {
		for _, g := range rs.Groups {
			chainGroup[g.In.Name], chainGroup[g.Out.Name] = g.GroupID, g.GroupID
		}
	}

	prevGroups := make(map[string]GroupChains, len(prev.Groups))
	for _, g := range prev.Groups {
		prevGroups[g.GroupID] = g
	}
	nextIDs := make(map[string]bool, len(next.Groups))
	for _, g := range next.Groups {
		nextIDs[g.GroupID] = true
		old, ok := prevGroups[g.GroupID]
		if !ok {
			d.addChains = append(d.addChains, g.In, g.Out)
			d.touched[g.GroupID] = true
			continue
		}
		for _, pair := range [][2]Chain{{old.In, g.In}, {old.Out, g.Out}} {
			if !slices.Equal(pair[0].Rules, pair[1].Rules) {
				d.replaceChains = append(d.replaceChains, pair[1])
				d.touched[g.GroupID] = true
			}
		}
	}
	for _, g := range prev.Groups {
		if !nextIDs[g.GroupID] {
			d.delChains = append(d.delChains, g.In.Name, g.Out.Name)
		}
	}
	for _, pair := range [][2]Chain{{prev.HostIn, next.HostIn}, {prev.HostOut, next.HostOut}} {
		if !slices.Equal(pair[0].Rules, pair[1].Rules) {
			d.replaceChains = append(d.replaceChains, pair[1])
			for _, rs := range [][]Rule{pair[0].Rules, pair[1].Rules} {
				for _, r := range rs {
					if g := chainGroup[r.Verdict.Chain]; g != "" {
						d.touched[g] = true
					}
				}
			}
		}
	}
	d.delTo, d.addTo = diffElems(prev.ToServer, next.ToServer)
	d.delFrom, d.addFrom = diffElems(prev.FromServer, next.FromServer)
	for _, list := range [][]MapElem{d.delTo, d.addTo, d.delFrom, d.addFrom} {
		for _, e := range list {
			if g := chainGroup[e.Chain]; g != "" {
				d.touched[g] = true
			}
		}
	}
	return d
}

// diffElems returns the elements to delete and to add; an element whose
// verdict changed is in both (deleted, then added, in the same batch).
func diffElems(prev, next []MapElem) (del, add []MapElem) {
	old := make(map[string]string, len(prev))
	for _, e := range prev {
		old[e.IfName] = e.Chain
	}
	seen := make(map[string]bool, len(next))
	for _, e := range next {
		seen[e.IfName] = true
		c, ok := old[e.IfName]
		switch {
		case !ok:
			add = append(add, e)
		case c != e.Chain:
			del = append(del, MapElem{IfName: e.IfName, Chain: c})
			add = append(add, e)
		}
	}
	for _, e := range prev {
		if !seen[e.IfName] {
			del = append(del, e)
		}
	}
	return del, add
}
