package explain

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// Rules on IP sets and groups. The compiler turns such a rule into one
// kernel rule per kernel set it matches (addresses and networks, per
// family), one after the other, with the same verdict: together they match
// the union of what each matches. The explainer takes them as one entry,
// so that a trace has one step per rule of the group and decided_by names
// the rule, and looks an address up in a set by binary search over its
// sorted intervals.

// addrSet is the contents of a kernel set as disjoint intervals, sorted.
type addrSet struct {
	fam   enforcer.Family
	spans []span
}

func newAddrSet(s enforcer.Set) *addrSet {
	as := &addrSet{fam: s.Family, spans: make([]span, 0, len(s.Elems))}
	for _, p := range s.Elems {
		as.spans = append(as.spans, prefixSpan(p))
	}
	slices.SortFunc(as.spans, func(a, b span) int { return a.lo.cmp(b.lo) })
	return as
}

// contains reports whether v is in one of the set's intervals: a binary
// search, whatever the set's size.
func (s *addrSet) contains(v u128) bool {
	i := sort.Search(len(s.spans), func(i int) bool { return s.spans[i].hi.cmp(v) >= 0 })
	return i < len(s.spans) && s.spans[i].lo.cmp(v) <= 0
}

// entry is one rule of a chain as the explainer sees it: one kernel rule,
// or the consecutive kernel rules compiled from one rule on a set or a
// group (alternatives: the entry matches when one of them does).
type entry struct {
	alts []enforcer.Rule
	sets []*addrSet // per alternative, the set of its remote side, or nil
	// remote names the set or group of a set rule, for reasons.
	remote string
}

// first returns the entry's first kernel rule: its verdict and the
// matches all alternatives share.
func (e *entry) first() enforcer.Rule { return e.alts[0] }

// isSet reports whether the entry matches a set or a group.
func (e *entry) isSet() bool { return e.sets[0] != nil }

// entries groups a chain's kernel rules into entries: consecutive rules
// with the same tag, verdict and log chain that each match a set on their
// remote side are one rule's alternatives.
func entries(dir store.Direction, rules []enforcer.Rule, sets map[string]*addrSet, names map[string]string) ([]entry, error) {
	var out []entry
	for i, r := range rules {
		name := r.SAddrSet
		if dir == store.Outbound {
			name = r.DAddrSet
		}
		var set *addrSet
		if name != "" {
			set = sets[name]
			if set == nil {
				return nil, fmt.Errorf("rule %d (%s): the contents of set %s were not given", i+1, r.Tag, name)
			}
			if set.fam != r.Family {
				return nil, fmt.Errorf("rule %d (%s): set %s is of another family", i+1, r.Tag, name)
			}
		}
		if n := len(out); n > 0 && set != nil && out[n-1].isSet() {
			prev := out[n-1].first()
			if prev.Tag == r.Tag && prev.Verdict == r.Verdict && prev.Log == r.Log {
				out[n-1].alts = append(out[n-1].alts, r)
				out[n-1].sets = append(out[n-1].sets, set)
				continue
			}
		}
		e := entry{alts: []enforcer.Rule{r}, sets: []*addrSet{set}}
		if set != nil {
			e.remote = names[r.Tag]
			if e.remote == "" {
				e.remote = "set " + name
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// remoteNames says, by rule ID, what a rule on a set or a group matches,
// for the reasons of a trace.
func remoteNames(rules []store.Rule) map[string]string {
	out := map[string]string{}
	for _, r := range rules {
		switch {
		case r.IPSetID != "":
			out[r.ID] = "IP set " + r.IPSetID
		case r.RemoteGroupID != "":
			out[r.ID] = "the addresses of security group " + r.RemoteGroupID + "'s servers"
		}
	}
	return out
}

// setsByName indexes the sets given to NewGroup.
func setsByName(sets []enforcer.Set) map[string]*addrSet {
	out := make(map[string]*addrSet, len(sets))
	for _, s := range sets {
		out[s.Name] = newAddrSet(s)
	}
	return out
}

// familySpans returns the union of the entry's sets of family fam, as
// sorted disjoint intervals with adjacent ones joined, and whether the
// entry matches that family at all.
func (e *entry) familySpans(fam enforcer.Family) ([]span, bool) {
	var all []span
	found := false
	for i, r := range e.alts {
		if r.Family != fam {
			continue
		}
		found = true
		all = append(all, e.sets[i].spans...)
	}
	if !found {
		return nil, false
	}
	slices.SortFunc(all, func(a, b span) int { return a.lo.cmp(b.lo) })
	out := all[:0:0]
	for _, s := range all {
		if n := len(out); n > 0 && out[n-1].hi != addrSpace(fam).hi && out[n-1].hi.inc().cmp(s.lo) >= 0 {
			if s.hi.cmp(out[n-1].hi) > 0 {
				out[n-1].hi = s.hi
			}
			continue
		}
		out = append(out, s)
	}
	return out, true
}

func (e *entry) describeRemote() string {
	if e.remote == "" {
		return "the rule's set"
	}
	return strings.TrimSpace(e.remote)
}
