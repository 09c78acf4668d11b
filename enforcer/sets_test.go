package enforcer

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

func TestCompileRemoteRules(t *testing.T) {
	s := IPSetNames(ipsRich)
	m := MemberSetNames(gB)
	withDest := func(r store.Rule, p string) store.Rule { r.DestIPRange = netip.MustParsePrefix(p); return r }
	tests := []struct {
		name string
		rule store.Rule
		want []string // nft rule lines, in order
	}{
		{
			name: "inbound from an IP set: four rules, one per kernel set",
			rule: setRule("r", store.Inbound, store.TCP, store.Accept, ipsRich, 443, 0),
			want: []string{
				`meta nfproto ipv4 ip saddr @` + s[0] + ` meta l4proto tcp tcp dport 443 accept comment "r"`,
				`meta nfproto ipv4 ip saddr @` + s[1] + ` meta l4proto tcp tcp dport 443 accept comment "r"`,
				`meta nfproto ipv6 ip6 saddr @` + s[2] + ` meta l4proto tcp tcp dport 443 accept comment "r"`,
				`meta nfproto ipv6 ip6 saddr @` + s[3] + ` meta l4proto tcp tcp dport 443 accept comment "r"`,
			},
		},
		{
			name: "outbound to an IP set matches the destination; a local range keeps its family only",
			rule: withDest(setRule("r", store.Outbound, store.UDP, store.Drop, ipsRich, 53, 0), "10.1.2.0/24"),
			want: []string{
				`meta nfproto ipv4 ip saddr 10.1.2.0/24 ip daddr @` + s[0] + ` meta l4proto udp udp dport 53 drop comment "r"`,
				`meta nfproto ipv4 ip saddr 10.1.2.0/24 ip daddr @` + s[1] + ` meta l4proto udp udp dport 53 drop comment "r"`,
			},
		},
		{
			name: "ICMP from a group: icmp for IPv4, ipv6-icmp for IPv6",
			rule: groupRule("r", store.Inbound, store.ICMP, store.Accept, gB),
			want: []string{
				`meta nfproto ipv4 ip saddr @` + m[0] + ` meta l4proto icmp accept comment "r"`,
				`meta nfproto ipv6 ip6 saddr @` + m[1] + ` meta l4proto ipv6-icmp accept comment "r"`,
			},
		},
		{
			name: "a local /0 is its family",
			rule: withDest(groupRule("r", store.Inbound, store.ANY, store.Accept, gB), "::/0"),
			want: []string{`meta nfproto ipv6 ip6 saddr @` + m[1] + ` accept comment "r"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range compileRules(tt.rule) {
				got = append(got, r.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSetNames(t *testing.T) {
	seen := map[string]string{}
	for _, id := range []string{ipsRich, ipsEmpty, "not-a-uuid", strings.Repeat("x", 300), gA} {
		ips, members := IPSetNames(id), MemberSetNames(id)
		names := append(ips[:], members[:]...)
		for _, n := range names {
			if len(n) > 64 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
				t.Errorf("name %q of %q: want [a-z0-9_], short", n, id)
			}
			if other, ok := seen[n]; ok {
				t.Errorf("name %q for %q and %q", n, id, other)
			}
			seen[n] = id
		}
	}
}

// TestCompileSets: the kernel sets of an IP set split its entries by
// family and kind; a group's members go to two hash sets; every rule of
// a store rule shares its counter and log chain; sets no compiled rule
// matches are left out.
func TestCompileSets(t *testing.T) {
	rs := richRuleset()
	if len(rs.Errors) > 0 {
		t.Fatal(rs.Errors)
	}
	s := IPSetNames(ipsRich)
	want := map[string][]string{
		s[0]: {"10.99.0.2/32"},
		s[1]: {"10.200.0.0/25", "10.200.0.128/25", "128.0.0.0/1"},
		s[2]: {"fd99::2/128"},
		s[3]: {"fd99:1::/64", "fd99:2::/63", "ff00::/8"},
	}
	for name, elems := range want {
		set, ok := rs.Set(name)
		if !ok {
			t.Fatalf("set %s missing", name)
		}
		if got := set.Elems; !slices.Equal(got, prefixList(elems...)) {
			t.Errorf("set %s = %v, want %v", name, got, elems)
		}
	}
	if set, _ := rs.Set(MemberSetNames(gB)[1]); !slices.Equal(set.Elems, prefixList("fd99:2::2/128")) {
		t.Errorf("members of B (IPv6) = %v", set.Elems)
	}
	a, _ := rs.Group(gA)
	var setRules []Rule
	for _, r := range a.In.Rules {
		if r.Tag == "r-set" {
			setRules = append(setRules, r)
		}
	}
	if len(setRules) != 4 {
		t.Fatalf("r-set compiled to %d rules, want 4", len(setRules))
	}
	for _, r := range setRules {
		if r.Counter != setRules[0].Counter || r.Log != setRules[0].Log || r.Log.Chain == "" {
			t.Errorf("rule %s: counter %q log %+v, want those of the first", r, r.Counter, r.Log)
		}
	}
	n := 0
	for _, o := range a.Objects {
		if o.Tag == "r-set" {
			n++
		}
	}
	logs := 0
	for _, c := range a.LogChains {
		if c.Rules[0].Tag == "r-set" {
			logs++
		}
	}
	if n != 1 || logs != 1 {
		t.Errorf("r-set has %d counters and %d log chains, want 1 and 1", n, logs)
	}
	// r-set-out names only the IPv4 sets (its local range is IPv4), but
	// r-set names all four.
	if len(rs.GroupSets(gA)) != 4+4+2+2 {
		t.Errorf("group A matches %d sets: %v", len(rs.GroupSets(gA)), rs.GroupSets(gA))
	}
}

// TestCompileMissingRemote: a rule whose IP set or group the snapshot
// does not describe fails its group closed, as an unreadable row does.
func TestCompileMissingRemote(t *testing.T) {
	for _, drop := range []func(*store.Snapshot){
		func(s *store.Snapshot) { delete(s.IPSets, ipsRich) },
		func(s *store.Snapshot) { delete(s.Members, gB) },
	} {
		snap := richSnapshot()
		drop(&snap)
		rs := Compile(snap)
		err := rs.Errors[gA]
		if err == nil || !strings.Contains(err.Error(), "unknown") {
			t.Fatalf("error = %v, want the group failed", err)
		}
		a, _ := rs.Group(gA)
		if len(a.In.Rules) != 1 || a.In.Rules[0].Tag != TagCompileError {
			t.Errorf("chains of a failed group: %v", a.In.Rules)
		}
		if rs.Errors[gB] != nil || rs.Errors[gC] != nil {
			t.Errorf("other groups failed: %v", rs.Errors)
		}
	}
}

// TestDiffSetElements: a change of entries or members changes elements
// only, by the difference; unchanged sets are recognised by identity; a
// set is added with the first rule that matches it and deleted with the
// last; the groups matching a changed set are touched.
func TestDiffSetElements(t *testing.T) {
	var c Compiler
	snap := richSnapshot()
	prev := c.Compile(snap)
	s := IPSetNames(ipsRich)

	snap.IPSets = map[string][]netip.Prefix{ipsRich: append(slices.Clone(snap.IPSets[ipsRich][1:]), netip.MustParsePrefix("fd99:9::1/128")), ipsEmpty: snap.IPSets[ipsEmpty]}
	slices.SortFunc(snap.IPSets[ipsRich], ComparePrefixes)
	next := c.Compile(snap)
	d := diffRulesets(prev, next)
	if len(d.replaceChains)+len(d.addChains)+len(d.delChains)+len(d.addSets)+len(d.delSets)+len(d.addObjects)+len(d.delObjects) != 0 {
		t.Fatalf("diff rewrites more than elements: %+v", d)
	}
	got := map[string][2][]netip.Prefix{}
	for _, ed := range d.setElems {
		got[ed.set.Name] = [2][]netip.Prefix{ed.del, ed.add}
	}
	want := map[string][2][]netip.Prefix{
		s[0]: {prefixList("10.99.0.2/32"), nil},
		s[2]: {nil, prefixList("fd99:9::1/128")},
	}
	if len(got) != len(want) {
		t.Fatalf("changed sets %v, want %v", got, want)
	}
	for name, w := range want {
		if g := got[name]; !slices.Equal(g[0], w[0]) || !slices.Equal(g[1], w[1]) {
			t.Errorf("set %s: del %v add %v, want del %v add %v", name, g[0], g[1], w[0], w[1])
		}
	}
	if !d.touched[gA] || d.touched[gB] || d.touched[gC] {
		t.Errorf("touched = %v, want group A only", d.touched)
	}
	// The other two sets of the IP set were not recompiled: shared.
	for _, name := range []string{s[1], s[3]} {
		p, _ := prev.Set(name)
		n, _ := next.Set(name)
		if !sameSlice(p.Elems, n.Elems) {
			t.Errorf("set %s recompiled: not shared", name)
		}
	}

	// The last rule on the empty IP set goes: its sets go with it.
	snap.Rules[gA] = slices.DeleteFunc(slices.Clone(snap.Rules[gA]), func(r store.Rule) bool { return r.ID == "r-empty" })
	d = diffRulesets(next, c.Compile(snap))
	if e := IPSetNames(ipsEmpty); !slices.Equal(d.delSets, e[:]) || len(d.replaceChains) != 1 {
		t.Errorf("delSets = %v (chains replaced %d), want %v", d.delSets, len(d.replaceChains), e)
	}
}

// TestKeepFailedGroupSets: a group that fails keeps its chains and the
// sets they match, with the elements the kernel holds, when next has no
// such set.
func TestKeepFailedGroupSets(t *testing.T) {
	var c Compiler
	snap := richSnapshot()
	prev := c.Compile(snap)
	delete(snap.IPSets, ipsRich)
	next := c.Compile(snap)
	if next.Errors[gA] == nil {
		t.Fatal("group A compiled without its IP set")
	}
	if _, ok := next.Set(IPSetNames(ipsRich)[0]); ok {
		t.Fatal("next holds a set no compiled rule matches")
	}
	keepFailedGroups(prev, next)
	for _, name := range IPSetNames(ipsRich) {
		p, _ := prev.Set(name)
		n, ok := next.Set(name)
		if !ok || !sameSlice(p.Elems, n.Elems) {
			t.Errorf("set %s not kept", name)
		}
	}
	if d := diffRulesets(prev, next); !d.empty() {
		t.Errorf("diff after keeping the failed group: %+v", d)
	}
}

// TestIPSetSetsMerge: entries that the store would have merged (overlaps)
// are merged, so that the interval tree never refuses them; sorted ones
// otherwise go as they are.
func TestIPSetSetsMerge(t *testing.T) {
	sets := ipSetSets(ipsRich, prefixList("10.2.3.4/32", "10.0.0.0/8", "10.1.0.0/16", "2001:db8::1/128", "2001:db8::/127"))
	for i, want := range [][]netip.Prefix{nil, prefixList("10.0.0.0/8"), nil, prefixList("2001:db8::/127")} {
		if len(sets[i].Elems)+len(want) > 0 && !slices.Equal(sets[i].Elems, want) {
			t.Errorf("set %s = %v, want %v", sets[i].Name, sets[i].Elems, want)
		}
	}
}
