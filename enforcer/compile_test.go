package enforcer

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

func TestCompileRule(t *testing.T) {
	tests := []struct {
		name string
		rule store.Rule
		want string // the nft rule line, which is also what Rule.String renders
	}{
		{
			name: "inbound tcp single port, IPv4 any",
			rule: rule("r", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0),
			want: `meta nfproto ipv4 meta l4proto tcp tcp dport 22 accept comment "r"`,
		},
		{
			name: "port range, to equal to from is one port",
			rule: rule("r", store.Inbound, store.UDP, store.Drop, "10.0.0.0/8", 53, 53),
			want: `meta nfproto ipv4 ip saddr 10.0.0.0/8 meta l4proto udp udp dport 53 drop comment "r"`,
		},
		{
			name: "inbound IPv6 port range",
			rule: rule("r", store.Inbound, store.TCP, store.Accept, "2001:db8::/32", 8000, 8080),
			want: `meta nfproto ipv6 ip6 saddr 2001:db8::/32 meta l4proto tcp tcp dport 8000-8080 accept comment "r"`,
		},
		{
			name: "outbound matches the destination; a host prints bare",
			rule: rule("r", store.Outbound, store.ANY, store.Drop, "203.0.113.7/32", 0, 0),
			want: `meta nfproto ipv4 ip daddr 203.0.113.7 drop comment "r"`,
		},
		{
			name: "ICMP with an IPv4 range is icmp",
			rule: rule("r", store.Inbound, store.ICMP, store.Accept, "10.1.0.0/16", 0, 0),
			want: `meta nfproto ipv4 ip saddr 10.1.0.0/16 meta l4proto icmp accept comment "r"`,
		},
		{
			name: "ICMP with an IPv6 range is icmpv6",
			rule: rule("r", store.Outbound, store.ICMP, store.Accept, "::/0", 0, 0),
			want: `meta nfproto ipv6 meta l4proto ipv6-icmp accept comment "r"`,
		},
		{
			name: "dest ip range narrows the other side",
			rule: func() store.Rule {
				r := rule("r", store.Inbound, store.TCP, store.Accept, "10.0.0.0/8", 443, 0)
				r.DestIPRange = netip.MustParsePrefix("192.0.2.10/32")
				return r
			}(),
			want: `meta nfproto ipv4 ip saddr 10.0.0.0/8 ip daddr 192.0.2.10 meta l4proto tcp tcp dport 443 accept comment "r"`,
		},
		{
			name: "host bits are cleared",
			rule: rule("r", store.Inbound, store.ANY, store.Accept, "10.1.2.3/8", 0, 0),
			want: `meta nfproto ipv4 ip saddr 10.0.0.0/8 accept comment "r"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compileRule(tt.rule); got.String() != tt.want {
				t.Errorf("got  %s\nwant %s", got.String(), tt.want)
			}
		})
	}
}

func TestCompileGroupChains(t *testing.T) {
	snap := snapshot(3,
		[]store.Group{group(gA, true, store.Drop, store.Accept, true), group(gB, false, store.Accept, store.Drop, false)},
		map[string][]store.Rule{gA: {
			rule("second", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 80, 0),
			rule("first", store.Inbound, store.TCP, store.Drop, "0.0.0.0/0", 80, 0),
			rule("out", store.Outbound, store.UDP, store.Accept, "::/0", 53, 0),
		}},
		server("s1", gA, "vs1"), server("s2", gB, "vs2"),
		store.Server{ID: "me", Local: true, SecurityGroup: store.ServerRef{ID: gB}})
	// Positions, not slice order, decide: make "first" position 1.
	snap.Rules[gA][0].Position, snap.Rules[gA][1].Position = 2, 1
	rs := Compile(snap)
	if len(rs.Errors) != 0 {
		t.Fatal(rs.Errors)
	}
	tags := func(c Chain) []string {
		var out []string
		for _, r := range c.Rules {
			out = append(out, r.Tag)
		}
		return out
	}
	a, _ := rs.Group(gA)
	b, _ := rs.Group(gB)
	for _, tt := range []struct {
		chain Chain
		want  []string
	}{
		// ct state established,related counter accept; first; second; counter drop
		{a.In, []string{TagEstablishedIn, "first", "second", TagDefaultIn}},
		// ct state …; the six SMTP rules, tagged with their IDs; out; counter accept
		{a.Out, append(append([]string{TagEstablishedOut}, smtpTags(gA)...), "out", TagDefaultOut)},
		// stateless: no ct state exception
		{b.In, []string{TagDefaultIn}},
		{b.Out, []string{TagDefaultOut}},
		// iifname "lo" accept; jump sg_b_in
		{rs.HostIn, []string{tagLoopback, tagLocal}},
	} {
		if got := tags(tt.chain); !slices.Equal(got, tt.want) {
			t.Errorf("chain %s = %v, want %v", tt.chain.Name, got, tt.want)
		}
	}
	if a.In.Rules[len(a.In.Rules)-1].Verdict.Kind != "drop" || a.Out.Rules[len(a.Out.Rules)-1].Verdict.Kind != "accept" {
		t.Error("default policies not last or wrong")
	}
	for _, c := range []Chain{a.In, a.Out, b.In, b.Out} {
		for _, r := range c.Rules {
			if r.Counter != counterName(gA, r.Tag) && r.Counter != counterName(gB, r.Tag) {
				t.Errorf("chain %s rule %s has no counter", c.Name, r.Tag)
			}
		}
	}
	bIn, bOut := ChainNames(gB)
	if rs.HostIn.Rules[1].Verdict != (Verdict{Kind: "jump", Chain: bIn}) || rs.HostOut.Rules[1].Verdict != (Verdict{Kind: "jump", Chain: bOut}) {
		t.Errorf("host chains = %+v / %+v", rs.HostIn, rs.HostOut)
	}
	aIn, _ := ChainNames(gA)
	// "vs1" : jump sg_a_in, "vs2" : jump sg_b_in
	if want := []MapElem{{"vs1", aIn}, {"vs2", bIn}}; !slices.Equal(rs.ToServer, want) {
		t.Errorf("to_server = %v, want %v", rs.ToServer, want)
	}
}

func TestChainNames(t *testing.T) {
	in, out := ChainNames("95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71")
	if in != "sg_95653df40f3c4a7e9d1b6f0a2c9e8b71_in" || out != "sg_95653df40f3c4a7e9d1b6f0a2c9e8b71_out" {
		t.Errorf("UUID: %s %s", in, out)
	}
	in, _ = ChainNames(`weird "id" with spaces`)
	if !strings.HasPrefix(in, "sg_h") || len(in) != len("sg_h")+16+len("_in") {
		t.Errorf("hashed: %s", in)
	}
	if a, _ := ChainNames("x y"); a == in {
		t.Error("hash collision")
	}
}

// TestCompileUnreadable: a group with rows the store could not read is not
// compiled from a guess but fails closed, naming the rows; its server that
// could not be read is not dispatched; other groups are untouched.
func TestCompileUnreadable(t *testing.T) {
	bad := server("s2", gB, "vs2")
	bad.Unreadable = "interface: not a valid interface name"
	snap := snapshot(1, []store.Group{group(gA, true, store.Accept, store.Accept, false), group(gB, true, store.Accept, store.Accept, false)},
		map[string][]store.Rule{gA: {rule("ok", store.Inbound, store.TCP, store.Accept, "10.0.0.0/8", 22, 0)}},
		server("s1", gA, "vs1"), bad)
	snap.Unreadable = map[string][]string{gB: {"rule r9: ip_range: not a CIDR range"}}
	rs := Compile(snap)
	if rs.Errors[gA] != nil {
		t.Errorf("group A: %v", rs.Errors[gA])
	}
	if err := rs.Errors[gB]; err == nil || !strings.Contains(err.Error(), "rule r9: ip_range") {
		t.Errorf("group B error = %v, want it to name rule r9", err)
	}
	b, _ := rs.Group(gB)
	// chain sg_b_in { counter drop comment "compile_error" }
	if len(b.In.Rules) != 1 || b.In.Rules[0].Tag != TagCompileError || b.In.Rules[0].Verdict.Kind != "drop" {
		t.Errorf("in = %+v", b.In)
	}
	if len(rs.ToServer) != 1 || rs.ToServer[0].IfName != "vs1" {
		t.Errorf("to_server = %v, want only s1's", rs.ToServer)
	}
}

func TestDiff(t *testing.T) {
	a := group(gA, true, store.Drop, store.Accept, false)
	b := group(gB, true, store.Drop, store.Accept, false)
	prev := Compile(snapshot(1, []store.Group{a, b}, nil, server("s1", gA, "vs1"), server("s2", gB, "vs2")))
	// Change one rule of A only: one chain rewritten, nothing else.
	next := Compile(snapshot(2, []store.Group{a, b}, map[string][]store.Rule{gA: {rule("r", store.Inbound, store.ANY, store.Accept, "10.0.0.0/8", 0, 0)}},
		server("s1", gA, "vs1"), server("s2", gB, "vs2")))
	d := diffRulesets(prev, next)
	aIn, _ := ChainNames(gA)
	if len(d.replaceChains) != 1 || d.replaceChains[0].Name != aIn || len(d.addChains)+len(d.delChains)+len(d.addTo)+len(d.delTo) != 0 {
		t.Errorf("diff = %+v", d)
	}
	if !d.touched[gA] || d.touched[gB] {
		t.Errorf("touched = %v", d.touched)
	}
	// Move s2 to A and drop B: elements of vs2 change, B's chains go.
	next = Compile(snapshot(3, []store.Group{a}, nil, server("s1", gA, "vs1"), server("s2", gA, "vs2")))
	d = diffRulesets(prev, next)
	if len(d.delChains) != 2 || len(d.delTo) != 1 || len(d.addTo) != 1 || d.addTo[0].Chain != aIn {
		t.Errorf("diff = %+v", d)
	}
	if d := diffRulesets(prev, prev); !d.empty() {
		t.Errorf("diff of identical rulesets = %+v", d)
	}
}

func TestPreviewText(t *testing.T) {
	rs := Compile(snapshot(1, []store.Group{group(gA, true, store.Drop, store.Accept, true)},
		map[string][]store.Rule{gA: {rule("ssh", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0)}},
		server("s1", gA, "vs1")))
	txt := rs.Text()
	aIn, aOut := ChainNames(gA)
	for _, want := range []string{
		"table inet rampart\ndelete table inet rampart\ntable inet rampart {\n",
		"\tmap to_server {\n\t\ttype ifname : verdict\n\t\telements = {\n\t\t\t\"vs1\" : jump " + aIn + "\n\t\t}\n\t}\n",
		"\tcounter " + counterName(gA, TagDefaultIn) + " {\n\t}\n",
		"\tcounter " + counterName(gA, "ssh") + " {\n\t}\n",
		"\tchain " + aIn + " {\n\t\tct state established,related counter name \"" + counterName(gA, TagEstablishedIn) + "\" accept comment \"established_in\"\n" +
			"\t\tmeta nfproto ipv4 meta l4proto tcp tcp dport 22 counter name \"sg_aaaaaaaa000040008000000000000001_rssh\" accept comment \"ssh\"\n" +
			"\t\tcounter name \"sg_aaaaaaaa000040008000000000000001_default_in\" drop comment \"default_in\"\n\t}\n",
		"\t\tmeta nfproto ipv4 meta l4proto tcp tcp dport 25 counter name \"" + counterName(gA, store.SMTPRules(gA)[0].ID) + "\" drop comment \"" + store.SMTPRules(gA)[0].ID + "\"\n",
		"\t\tmeta nfproto ipv6 meta l4proto tcp tcp dport 587 counter name \"" + counterName(gA, store.SMTPRules(gA)[5].ID) + "\" drop comment \"" + store.SMTPRules(gA)[5].ID + "\"\n",
		"\tchain egress {\n\t\ttype filter hook forward priority -1; policy accept;\n\t\tiifname vmap @from_server comment \"dispatch\"\n\t}\n",
		"\tchain ingress {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\toifname vmap @to_server comment \"dispatch\"\n\t}\n",
		"\tchain host_in {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tiifname \"lo\" accept comment \"loopback\"\n\t}\n",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks\n%s\n--- text:\n%s", want, txt)
		}
	}
	if g := rs.GroupText(gA); !strings.Contains(g, "chain "+aIn+" {") || !strings.Contains(g, "chain "+aOut+" {") || strings.Contains(g, "egress") {
		t.Errorf("GroupText:\n%s", g)
	}
}

func TestOpen(t *testing.T) {
	b, err := Open(ModePreview)
	if err != nil {
		t.Fatal(err)
	}
	if mode, _ := b.Mode(); mode != ModePreview {
		t.Errorf("preview mode = %s", mode)
	}
	b, err = Open(ModeAuto)
	if err != nil {
		t.Fatal(err)
	}
	mode, reason := b.Mode()
	if detectErr := Detect(); detectErr == nil {
		if mode != ModeNFTables {
			t.Errorf("auto with nftables available = %s", mode)
		}
	} else {
		if mode != ModePreview || reason == "" {
			t.Errorf("auto without nftables = %s (%q)", mode, reason)
		}
		if _, err := Open(ModeNFTables); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Open(nftables) = %v, want ErrUnavailable", err)
		}
	}
	if _, err := Open("iptables"); err == nil {
		t.Error("unknown mode accepted")
	}
}

// TestReconcilerPreview runs the reconcile loop on the preview backend,
// which needs no privilege: states, texts, counters and compile errors.
func TestReconcilerPreview(t *testing.T) {
	src := newFakeSource(oneGroup(group(gA, true, store.Drop, store.Accept, false)))
	r := NewReconciler(src, NewPreview("test"), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-r.Ready()
	if st, _ := r.GroupState(gA, 1); st != store.Available {
		t.Fatalf("state = %s", st)
	}
	if st, _ := r.GroupState(gA, 2); st != store.Syncing {
		t.Errorf("future generation state = %s, want syncing", st)
	}
	if st, _ := r.GroupState("unknown", 1); st != store.Syncing {
		t.Errorf("unknown group state = %s", st)
	}
	if mode, reason := r.Mode(); mode != ModePreview || reason != "test" {
		t.Errorf("mode = %s %q", mode, reason)
	}
	if c := r.Counters(context.Background(), gA); len(c) != 4 || c[TagDefaultIn] != (Counter{}) {
		t.Errorf("counters = %v, want four zero counters", c)
	}
	if !strings.Contains(r.RulesetText(), "table inet rampart {") {
		t.Error("no ruleset text")
	}
	// Chains are those Compile gives for the same snapshot, with the
	// group generation they were compiled from.
	first, _ := Compile(oneGroup(group(gA, true, store.Drop, store.Accept, false))).Group(gA)
	if got, ok := r.Chains(gA); !ok || !reflect.DeepEqual(got, first) {
		t.Errorf("Chains(%s) = %+v, %v, want %+v", gA, got, ok, first)
	}
	if _, ok := r.Chains("unknown"); ok {
		t.Error("Chains of an unknown group found")
	}

	// A rule the store could not read: the group reports why, and keeps
	// its previous chains rather than the fail-closed ones.
	unreadable := oneGroup(group(gA, true, store.Drop, store.Accept, false),
		rule("bad", store.Inbound, store.TCP, store.Accept, "10.0.0.0/8", 90, 0))
	unreadable.Unreadable = map[string][]string{gA: {"rule bad: dest_port_to: port range reversed (90 > 80)"}}
	gen := src.Set(unreadable)
	deadline := time.Now().Add(time.Second)
	for {
		st, reason := r.GroupState(gA, gen)
		if st == store.SyncingError {
			if !strings.Contains(reason, "reversed") {
				t.Errorf("reason = %q", reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state = %s, want syncing_error", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if txt := r.GroupText(gA); strings.Contains(txt, TagCompileError) || !strings.Contains(txt, TagDefaultIn) {
		t.Errorf("group text after compile error:\n%s", txt)
	}
	// The kept chains are those of the generation before: a reader who
	// wants the chains of the stored generation sees that they are not.
	if got, ok := r.Chains(gA); !ok || got.Generation != first.Generation || !reflect.DeepEqual(got.In, first.In) {
		t.Errorf("Chains after a compile error = %+v, %v, want the chains of generation %d", got, ok, first.Generation)
	}
	if st, _ := r.GroupState(gB, gen); st != store.Available {
		t.Errorf("other group state = %s, want available", st)
	}
}

// smtpTags returns the tags of the six SMTP rules of a group, in order.
func smtpTags(groupID string) []string {
	var tags []string
	for _, r := range store.SMTPRules(groupID) {
		tags = append(tags, r.ID)
	}
	return tags
}
