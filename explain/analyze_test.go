package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// finding is the comparable part of a Finding.
type finding struct {
	rule string
	kind FindingKind
	by   string // IDs joined with ","
}

func (f finding) String() string { return fmt.Sprintf("%s %s by [%s]", f.rule, f.kind, f.by) }

func TestAnalyze(t *testing.T) {
	const (
		A = store.Accept
		D = store.Drop
	)
	stateful := group(gA, true, D, A, false)
	smtp := group(gA, true, D, A, true)
	s1, s2, s3, s4, s5, s6 := smtpID(gA, 1), smtpID(gA, 2), smtpID(gA, 3), smtpID(gA, 4), smtpID(gA, 5), smtpID(gA, 6)
	tests := []struct {
		name  string
		g     store.Group
		rules []store.Rule
		want  []finding
		// substrings the message of the first finding must hold
		msg []string
	}{
		{
			name: "shadowed by a wider earlier rule",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "10.0.0.0/8", 80, 0),
				in("r2", store.TCP, A, "10.1.0.0/16", 80, 0),
			},
			want: []finding{{"r2", Shadowed, "r1"}},
			msg:  []string{"already accepted by rule 1"},
		},
		{
			name: "shadowed only by the union of two address halves",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.UDP, A, "10.0.0.0/9", 53, 0),
				in("r2", store.UDP, A, "10.128.0.0/9", 53, 0),
				in("r3", store.UDP, D, "10.0.0.0/8", 53, 0),
			},
			want: []finding{{"r3", Shadowed, "r1,r2"}},
			msg:  []string{"would drop is accepted first by rule 1 and rule 2"},
		},
		{
			name: "shadowed only by the union of port ranges",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "10.0.0.0/8", 1000, 1999),
				in("r2", store.TCP, D, "10.0.0.0/8", 2000, 2999),
				in("r3", store.TCP, A, "10.1.2.0/24", 1500, 2500),
			},
			want: []finding{{"r3", Shadowed, "r1,r2"}},
			msg:  []string{"decided first by rule 1 and rule 2"},
		},
		{
			name: "shadowed by the union of three rules across dimensions",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "2001:db8::/33", 0, 0),
				in("r2", store.TCP, A, "2001:db8:8000::/33", 22, 0),
				in("r3", store.TCP, A, "2001:db8:8000::/33", 23, 65535),
				in("r4", store.TCP, A, "2001:db8::/32", 22, 0),
				in("r5", store.TCP, A, "2001:db8::/32", 0, 0), // port 0 and 1-21 are not covered
			},
			want: []finding{
				{"r1", Redundant, "r4,r5"},
				{"r2", Redundant, "r4"},
				{"r3", Redundant, "r5"},
				{"r4", Shadowed, "r1,r2"},
			},
		},
		{
			name: "a rule that decides port 0 only is not shadowed",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "0.0.0.0/0", 1, 65535),
				in("r2", store.TCP, A, "0.0.0.0/0", 0, 0),
				in("r3", store.TCP, A, "0.0.0.0/0", 0, 0),
			},
			want: []finding{
				{"r1", Redundant, "r2"},
				{"r1", Broad, ""},
				{"r2", Redundant, "r3"},
				{"r2", Broad, ""},
				{"r3", Shadowed, "r1,r2"},
				{"r3", Broad, ""},
			},
		},
		{
			name: "TCP, UDP and ICMP do not cover ANY",
			g:    group(gA, true, A, D, false),
			rules: []store.Rule{
				out("r1", store.TCP, A, "0.0.0.0/0", 0, 0),
				out("r2", store.UDP, A, "0.0.0.0/0", 0, 0),
				out("r3", store.ICMP, A, "0.0.0.0/0", 0, 0),
				out("r4", store.ANY, A, "0.0.0.0/0", 0, 0),
				out("r5", store.ANY, A, "0.0.0.0/0", 0, 0),
			},
			want: []finding{
				{"r1", Redundant, "r4"},
				{"r2", Redundant, "r4"},
				{"r3", Redundant, "r4"},
				{"r4", Redundant, "r5"},
				{"r5", Shadowed, "r1,r2,r3,r4"},
			},
		},
		{
			name: "ICMP of one family does not cover ANY of the other",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.ICMP, A, "::/0", 0, 0),
				in("r2", store.ICMP, A, "0.0.0.0/0", 0, 0),
				in("r3", store.ICMP, A, "::/0", 0, 0),
			},
			want: []finding{{"r1", Redundant, "r3"}, {"r3", Shadowed, "r1"}},
		},
		{
			name: "families do not mix",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.ANY, D, "0.0.0.0/0", 0, 0),
				in("r2", store.TCP, A, "::/0", 443, 0),
			},
			want: []finding{{"r1", Redundant, ""}},
			msg:  []string{"would be dropped anyway, by the default policy"},
		},
		{
			name: "redundant with the default policy",
			g:    group(gA, true, A, A, false),
			rules: []store.Rule{
				in("r1", store.TCP, A, "10.0.0.0/8", 80, 0),
			},
			want: []finding{{"r1", Redundant, ""}},
		},
		{
			name: "redundant with a later rule",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, D, "10.1.0.0/16", 22, 0),
				in("r2", store.TCP, D, "10.0.0.0/8", 22, 0),
				in("r3", store.TCP, A, "0.0.0.0/0", 22, 0),
			},
			want: []finding{
				{"r1", Redundant, "r2"},
				{"r3", Conflict, "r1,r2"},
				{"r3", Broad, ""},
			},
			msg: []string{"would be dropped anyway, by rule 2"},
		},
		{
			name: "not redundant when an opposite rule sits between",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, D, "10.1.0.0/16", 22, 0),
				in("r2", store.TCP, A, "10.1.2.0/24", 22, 0),
				in("r3", store.TCP, D, "10.0.0.0/8", 22, 0),
			},
			want: []finding{
				{"r2", Shadowed, "r1"},
				{"r3", Redundant, ""},
			},
		},
		{
			name: "conflict names the earlier rules that take part",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, D, "10.1.0.0/16", 80, 0),
				in("r2", store.TCP, D, "192.0.2.0/24", 80, 0),
				in("r3", store.TCP, D, "10.2.0.0/16", 443, 0),
				in("r4", store.TCP, A, "10.0.0.0/8", 80, 0),
			},
			want: []finding{
				{"r2", Redundant, ""},
				{"r3", Redundant, ""},
				{"r4", Conflict, "r1"},
			},
			msg: []string{"default policy"},
		},
		{
			name: "a rule whose overlap an earlier rule already took is not in conflict",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.UDP, A, "10.1.0.0/16", 0, 0),
				in("r2", store.UDP, D, "10.1.2.0/24", 0, 0),
				in("r3", store.UDP, A, "10.0.0.0/8", 0, 0),
			},
			want: []finding{{"r2", Shadowed, "r1"}},
		},
		{
			name: "local side: narrower first is fine",
			g:    stateful,
			rules: []store.Rule{
				dest(in("r1", store.TCP, D, "10.0.0.0/8", 80, 0), "192.0.2.0/24"),
				in("r2", store.TCP, A, "10.0.0.0/8", 80, 0),
			},
			want: []finding{{"r2", Conflict, "r1"}},
			msg:  []string{"such as TCP from 10.0.0.10 to 192.0.2.10 port 80"},
		},
		{
			name: "local side: wider first shadows",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "10.0.0.0/8", 80, 0),
				dest(in("r2", store.TCP, D, "10.0.0.0/8", 80, 0), "192.0.2.0/24"),
			},
			want: []finding{{"r2", Shadowed, "r1"}},
		},
		{
			name: "SMTP rows shadow an outbound rule",
			g:    smtp,
			rules: []store.Rule{
				out("r1", store.TCP, A, "0.0.0.0/0", 25, 0),
				out("r2", store.TCP, D, "::/0", 465, 0),
			},
			want: []finding{{"r1", Shadowed, s1}, {"r2", Shadowed, s5}},
			msg:  []string{"would accept is dropped first by SMTP row 1"},
		},
		{
			name: "SMTP rows conflict with a wide accept",
			g:    group(gA, true, D, D, true),
			rules: []store.Rule{
				out("r1", store.TCP, A, "0.0.0.0/0", 1, 1024),
				out("r2", store.TCP, A, "2001:db8::/32", 0, 0),
			},
			want: []finding{{"r1", Conflict, s1 + "," + s2 + "," + s3}, {"r2", Conflict, s4 + "," + s5 + "," + s6}},
			msg:  []string{"dropped first by SMTP row 1, SMTP row 2 and SMTP row 3, such as TCP to 203.0.113.10 port 25"},
		},
		{
			name: "stateless group: same analysis",
			g:    group(gA, false, D, A, true),
			rules: []store.Rule{
				in("r1", store.TCP, A, "10.0.0.0/8", 80, 0),
				in("r2", store.TCP, A, "10.1.0.0/16", 80, 0),
				out("r3", store.TCP, D, "0.0.0.0/0", 587, 0),
			},
			want: []finding{{"r2", Shadowed, "r1"}, {"r3", Shadowed, s3}},
		},
		{
			name: "broad",
			g:    stateful,
			rules: []store.Rule{
				in("r1", store.TCP, A, "0.0.0.0/0", 3300, 3400),
				in("r2", store.TCP, A, "0.0.0.0/0", 80, 0),
				in("r3", store.ICMP, A, "0.0.0.0/0", 0, 0),
				in("r4", store.ANY, A, "::/0", 0, 0),
				in("r5", store.UDP, A, "10.0.0.0/8", 0, 0),
				in("r6", store.ANY, D, "0.0.0.0/0", 0, 0),
				out("r7", store.ANY, A, "0.0.0.0/0", 0, 0),
				in("r8", store.UDP, A, "::/0", 11211, 0),
			},
			want: []finding{
				{"r1", Broad, ""},
				{"r4", Broad, ""},
				{"r6", Redundant, ""},
				{"r6", Conflict, "r1,r2,r3,r5"},
				{"r7", Redundant, ""},
				{"r8", Shadowed, "r4"},
				{"r8", Broad, ""},
			},
			msg: []string{"accepts TCP 3306 (MySQL) and 3389 (RDP) from any address (0.0.0.0/0)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := build(t, tt.g, tt.rules...)
			a := mustAnalyze(t, g)
			var got []finding
			for _, f := range a.Findings {
				got = append(got, finding{f.RuleID, f.Kind, strings.Join(f.By, ",")})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n got  %v\n want %v", got, tt.want)
				for _, f := range a.Findings {
					t.Logf("%s %s: %s", f.RuleID, f.Kind, f.Message)
				}
			}
			if len(tt.msg) > 0 && len(a.Findings) > 0 {
				for _, s := range tt.msg {
					if !strings.Contains(a.Findings[0].Message, s) {
						t.Errorf("message %q does not hold %q", a.Findings[0].Message, s)
					}
				}
			}
			checkWitnesses(t, g, a, tt.rules)
		})
	}
}

// checkWitnesses checks that every rule that is not reported shadowed has
// a witness that Evaluate says it decides, and that shadowed rules have
// none.
func checkWitnesses(t *testing.T, g *Group, a Analysis, rules []store.Rule) {
	t.Helper()
	shadowed := map[string]bool{}
	for _, f := range a.Findings {
		if f.Kind == Shadowed {
			shadowed[f.RuleID] = true
		}
	}
	for _, r := range rules {
		w, ok := a.Witnesses[r.ID]
		if shadowed[r.ID] {
			if ok {
				t.Errorf("rule %s: shadowed, yet has witness %+v", r.ID, w)
			}
			continue
		}
		if !ok {
			t.Errorf("rule %s: not shadowed, and no witness", r.ID)
			continue
		}
		d, err := g.Evaluate(w)
		if err != nil {
			t.Errorf("rule %s: witness %+v: %v", r.ID, w, err)
			continue
		}
		if d.DecidedBy.RuleID != r.ID {
			t.Errorf("rule %s: witness %s is decided by %+v", r.ID, describe(w), d.DecidedBy)
		}
	}
}

func TestAnalyzeWitnessOfANY(t *testing.T) {
	g := build(t, group(gA, true, store.Drop, store.Accept, false),
		in("tcp", store.TCP, store.Accept, "192.0.2.0/24", 0, 0),
		in("udp", store.UDP, store.Accept, "192.0.2.0/24", 0, 0),
		in("icmp", store.ICMP, store.Accept, "192.0.2.0/24", 0, 0),
		in("any", store.ANY, store.Accept, "192.0.2.0/24", 0, 0))
	a := mustAnalyze(t, g)
	w := a.Witnesses["any"]
	if w.Protocol != "47" || !w.Remote.Is4() {
		t.Errorf("witness of the ANY rule = %s, want GRE over IPv4", describe(w))
	}
}

// TestAnalyzeTooComplex checks that rules crossing each other's ranges,
// which cut the packet space into a number of pieces that grows with the
// cube of their number, stop the analysis with ErrTooComplex.
func TestAnalyzeTooComplex(t *testing.T) {
	var rules []store.Rule
	for i := range 50 {
		rules = append(rules,
			in(fmt.Sprintf("port%d", i), store.TCP, store.Accept, "0.0.0.0/0", uint16(1000+2*i), 0),
			in(fmt.Sprintf("addr%d", i), store.TCP, store.Drop, fmt.Sprintf("10.0.0.%d/32", 2*i), 0, 0))
	}
	rules = append(rules, in("last", store.TCP, store.Accept, "10.0.0.0/8", 0, 0))
	g := build(t, group(gA, true, store.Drop, store.Accept, false), rules...)
	if _, err := g.Analyze(); err != nil {
		t.Fatalf("within the default budget: %v", err)
	}
	defer func(w int) { maxWork = w }(maxWork)
	maxWork = 100_000
	if _, err := g.Analyze(); !errors.Is(err, ErrTooComplex) {
		t.Fatalf("err = %v, want ErrTooComplex", err)
	}
}

// TestAnalyzeLargeSet: a rule on an IP set of 100,000 entries is
// evaluated by lookup and analysed on bounds, within the work bound: it
// gets a witness, and what holds whatever its entries (its hull lies in
// the ranges of later rules) is found: it is redundant, and a later rule
// on the same set is shadowed.
func TestAnalyzeLargeSet(t *testing.T) {
	const big = "b1600000-0000-4000-8000-000000000001"
	var entries []netip.Prefix
	for i := range 50_000 {
		entries = append(entries, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 12), byte(i >> 4), byte(i << 4)}), 30))
	}
	for i := range 50_000 {
		entries = append(entries, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}), 48))
	}
	g := group(gA, true, store.Drop, store.Accept, false)
	rules := positioned(gA, []store.Rule{
		fromSet(in("set", store.TCP, store.Accept, "0.0.0.0/0", 443, 0), big),
		in("v4", store.TCP, store.Accept, "10.0.0.0/8", 443, 0),
		in("v6", store.TCP, store.Accept, "2001:db8::/32", 443, 0),
		fromSet(in("again", store.TCP, store.Drop, "0.0.0.0/0", 443, 0), big),
	})
	rs := enforcer.Compile(store.Snapshot{Generation: 1, Groups: []store.Group{g}, Rules: map[string][]store.Rule{gA: rules},
		IPSets: map[string][]netip.Prefix{big: entries}, Members: map[string][]netip.Addr{}})
	gc, _ := rs.Group(gA)
	eg, err := NewGroup(g, rules, gc, rs.GroupSets(gA)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		remote string
		by     string
	}{{"10.0.1.2", "set"}, {"10.0.1.4", "v4"}, {"2001:db8:c34f::1", "set"}, {"2001:db8:ffff::1", "v6"}} {
		d, err := eg.Evaluate(Packet{Direction: store.Inbound, Protocol: store.TCP, Remote: addr(tc.remote), Port: 443})
		if err != nil {
			t.Fatal(err)
		}
		if d.DecidedBy.RuleID != tc.by {
			t.Errorf("%s: decided by %+v after %d steps, want %s", tc.remote, d.DecidedBy, len(d.Trace), tc.by)
		}
	}
	a := mustAnalyze(t, eg)
	if w, ok := a.Witnesses["set"]; !ok {
		t.Error("no witness for the set rule")
	} else if d, _ := eg.Evaluate(w); d.DecidedBy.RuleID != "set" {
		t.Errorf("witness %s decided by %+v", describe(w), d.DecidedBy)
	}
	got := map[string]FindingKind{}
	for _, f := range a.Findings {
		got[f.RuleID] = f.Kind
	}
	if got["again"] != Shadowed {
		t.Errorf("findings %v: want the second set rule shadowed (its hull is within 10.0.0.0/8 and 2001:db8::/32)", a.Findings)
	}
	// True: the set lies within the ranges of rules 2 and 3, which
	// accept the same.
	if got["set"] != Redundant || len(got) != 2 {
		t.Errorf("findings %v: want the set rule redundant and nothing else", a.Findings)
	}
}
