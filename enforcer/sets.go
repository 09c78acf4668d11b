package enforcer

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-fw/rampart/store"
	"go4.org/netipx"
)

// Named sets: the remote side of a rule that names a Rampart IP set or a
// group (store.Rule's IPSetID and RemoteGroupID) is a set of the table,
// which every rule naming the same IP set or group shares. A set belongs to
// the table, not to a group: its elements change in place (add and delete
// the difference, in the apply's one transaction) without any chain being
// rewritten, so that rule handles and counters stay as they were.
//
// Per Rampart IP set there are four kernel sets, always, even empty: per
// family a hash set of single addresses (no interval flag: adding or
// deleting one is O(1), where the kernel's interval tree costs
// milliseconds at 100,000 elements) and an interval set of the other
// prefixes. Per referenced group there are two hash sets, one per family,
// of its servers' addresses. A rule matches each kernel set in a rule of
// its own (all of them always: emptiness never rewrites a chain), with the
// same counter and, when it logs, the same log chain, so that counters and
// the packet tester's decided_by stay per Rampart rule.

// Set is a named set of addresses of the table, matched by rules'
// SAddrSet and DAddrSet.
type Set struct {
	Name   string
	Family Family // FamilyIPv4 or FamilyIPv6
	// Interval sets hold prefixes; the others single addresses (/32 or
	// /128 prefixes).
	Interval bool
	// Elems are the set's prefixes, of its family, sorted by address,
	// disjoint (adjacent ones may follow each other). Sets of successive
	// Rulesets whose contents did not change share this slice.
	Elems []netip.Prefix
}

// Kinds of kernel sets a Rampart IP set or a group compiles to, in the
// order the rules that match them come.
var (
	ipSetParts  = [4]setPart{{FamilyIPv4, false, "4a"}, {FamilyIPv4, true, "4n"}, {FamilyIPv6, false, "6a"}, {FamilyIPv6, true, "6n"}}
	memberParts = [2]setPart{{FamilyIPv4, false, "4a"}, {FamilyIPv6, false, "6a"}}
)

type setPart struct {
	fam      Family
	interval bool
	suffix   string
}

// IPSetNames returns the names of the kernel sets of a Rampart IP set, in
// rule order: IPv4 addresses (hash), IPv4 networks (interval), IPv6
// addresses, IPv6 networks. Names are "ips_" and the ID's chainID form
// (32 hex digits for a UUID): [a-z0-9_] only, at most 41 bytes, far under
// the kernel's NFT_SET_MAXNAMELEN (256), and never the same for two IDs.
func IPSetNames(setID string) [4]string {
	base := "ips_" + chainID(setID) + "_"
	var out [4]string
	for i, p := range ipSetParts {
		out[i] = base + p.suffix
	}
	return out
}

// MemberSetNames returns the names of the kernel sets of a referenced
// group's server addresses: IPv4, then IPv6 ("sgm_<id>_4a", "sgm_<id>_6a").
func MemberSetNames(groupID string) [2]string {
	base := "sgm_" + chainID(groupID) + "_"
	return [2]string{base + memberParts[0].suffix, base + memberParts[1].suffix}
}

// ComparePrefixes orders prefixes by address (IPv4 first), then by length:
// the order of Set.Elems.
func ComparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// Set returns the named set of the Ruleset.
func (rs *Ruleset) Set(name string) (Set, bool) {
	i, ok := slices.BinarySearchFunc(rs.Sets, name, func(s Set, name string) int { return strings.Compare(s.Name, name) })
	if !ok {
		return Set{}, false
	}
	return rs.Sets[i], true
}

// GroupSets returns the sets that the chains of a group match, ordered by
// name: what the packet tester needs besides the chains.
func (rs *Ruleset) GroupSets(groupID string) []Set {
	g, ok := rs.Group(groupID)
	if !ok {
		return nil
	}
	var out []Set
	for _, name := range chainSets(g) {
		if s, ok := rs.Set(name); ok {
			out = append(out, s)
		}
	}
	return out
}

// chainSets returns the names of the sets a group's chains match, sorted
// and unique.
func chainSets(g GroupChains) []string {
	var names []string
	for _, c := range []Chain{g.In, g.Out} {
		for _, r := range c.Rules {
			if r.SAddrSet != "" {
				names = append(names, r.SAddrSet)
			}
			if r.DAddrSet != "" {
				names = append(names, r.DAddrSet)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// compiledSets is what a Rampart IP set or a group's members were compiled
// from, by identity, and into.
type compiledSets struct {
	prefixes []netip.Prefix // IP set: the snapshot's slice
	addrs    []netip.Addr   // members: the snapshot's slice
	sets     []Set
}

// sameSlice reports whether a and b are the same slice (identity: the
// store shares unchanged sets between snapshots).
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// ipSetSets compiles the entries of a Rampart IP set into its four kernel
// sets. Entries are the store's: merged and sorted; they are sorted here
// again if they are not, so that the kernel's elements and the diff never
// depend on it.
func ipSetSets(id string, entries []netip.Prefix) []Set {
	names := IPSetNames(id)
	out := make([]Set, 4)
	for i, p := range ipSetParts {
		out[i] = Set{Name: names[i], Family: p.fam, Interval: p.interval}
	}
	// One pass checks the order and that no two entries overlap (sorted
	// by address, an overlap is an entry starting within the one before),
	// and counts each kind.
	var n [4]int
	ok := true
	for i, e := range entries {
		if i > 0 && (ComparePrefixes(entries[i-1], e) >= 0 || entries[i-1].Contains(e.Addr())) {
			ok = false
			break
		}
		n[partOf(e)]++
	}
	if !ok {
		// The store merges and sorts entries; should it ever hand over
		// overlapping ones, the interval tree would refuse them (and the
		// apply with them): merged here, the set matches the same
		// addresses.
		var b netipx.IPSetBuilder
		for _, e := range entries {
			b.AddPrefix(e.Masked())
		}
		set, _ := b.IPSet()
		entries = set.Prefixes()
		n = [4]int{}
		for _, e := range entries {
			n[partOf(e)]++
		}
	}
	for i := range out {
		out[i].Elems = make([]netip.Prefix, 0, n[i])
	}
	for _, e := range entries {
		i := partOf(e)
		out[i].Elems = append(out[i].Elems, e.Masked())
	}
	return out
}

func partOf(p netip.Prefix) int {
	i := 0
	if !p.Addr().Is4() {
		i = 2
	}
	if !p.IsSingleIP() {
		i++
	}
	return i
}

// memberSets compiles the addresses of a group's servers into its two
// kernel sets.
func memberSets(groupID string, addrs []netip.Addr) []Set {
	names := MemberSetNames(groupID)
	out := []Set{{Name: names[0], Family: FamilyIPv4}, {Name: names[1], Family: FamilyIPv6}}
	sorted := addrs
	if !slices.IsSortedFunc(sorted, netip.Addr.Compare) {
		sorted = slices.SortedFunc(slices.Values(addrs), netip.Addr.Compare)
	}
	sorted = slices.Compact(slices.Clip(sorted))
	for _, a := range sorted {
		a = a.Unmap()
		i := 0
		if !a.Is4() {
			i = 1
		}
		out[i].Elems = append(out[i].Elems, netip.PrefixFrom(a, a.BitLen()))
	}
	for i := range out {
		out[i].Elems = slices.Clip(out[i].Elems)
	}
	return out
}

// missingRemotes says which of a group's rules name an IP set or a group
// that the snapshot does not hold contents for: the group then fails
// closed, as for a row that could not be read.
func missingRemotes(rules []store.Rule, snap *store.Snapshot) []string {
	var out []string
	for _, r := range rules {
		switch {
		case r.IPSetID != "":
			if _, ok := snap.IPSets[r.IPSetID]; !ok {
				out = append(out, fmt.Sprintf("rule %s: the entries of IP set %s are unknown", r.ID, r.IPSetID))
			}
		case r.RemoteGroupID != "":
			if _, ok := snap.Members[r.RemoteGroupID]; !ok {
				out = append(out, fmt.Sprintf("rule %s: the servers of security group %s are unknown", r.ID, r.RemoteGroupID))
			}
		}
	}
	return out
}

// compileSets builds the sets that the Ruleset's group chains match, from
// the snapshot, reusing the compiled sets of an IP set or group whose
// slice did not change since the previous call. A set that a chain
// matches but that the snapshot does not describe (a group that failed
// closed keeps no such rule) is left out: Compiler.group failed that
// group already.
func (c *Compiler) compileSets(rs *Ruleset, snap *store.Snapshot) {
	// Only what a compiled chain matches (c.groups, just compiled): a
	// failed group's rules do not count. Each group's sets were listed
	// when it was compiled, so that a sync does not walk every rule.
	wanted := map[string]bool{}
	for _, cg := range c.groups {
		for _, name := range cg.sets {
			wanted[name] = true
		}
	}
	if len(wanted) == 0 {
		c.ipsets, c.members = nil, nil
		return
	}
	// The snapshot holds the entries and members of what its rules name.
	nextIP := make(map[string]compiledSets, len(snap.IPSets))
	nextMembers := make(map[string]compiledSets, len(snap.Members))
	for id, entries := range snap.IPSets {
		cs, ok := c.ipsets[id]
		if !ok || !sameSlice(cs.prefixes, entries) {
			cs = compiledSets{prefixes: entries, sets: reuse(cs.sets, ipSetSets(id, entries))}
		}
		nextIP[id] = cs
		for _, s := range cs.sets {
			if wanted[s.Name] {
				rs.Sets = append(rs.Sets, s)
			}
		}
	}
	for id, addrs := range snap.Members {
		cs, ok := c.members[id]
		if !ok || !sameSlice(cs.addrs, addrs) {
			cs = compiledSets{addrs: addrs, sets: reuse(cs.sets, memberSets(id, addrs))}
		}
		nextMembers[id] = cs
		for _, s := range cs.sets {
			if wanted[s.Name] {
				rs.Sets = append(rs.Sets, s)
			}
		}
	}
	c.ipsets, c.members = nextIP, nextMembers
	slices.SortFunc(rs.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
}

// reuse gives the sets of next whose elements are those of old's set of
// the same name old's slice: a change of IPv4 entries leaves the IPv6
// sets shared, which the diff then skips at once.
func reuse(old, next []Set) []Set {
	for i := range next {
		for _, o := range old {
			if o.Name == next[i].Name && slices.Equal(o.Elems, next[i].Elems) {
				next[i].Elems = o.Elems
			}
		}
	}
	return next
}
