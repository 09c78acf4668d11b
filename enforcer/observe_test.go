package enforcer

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampart-fw/rampart/store"
)

// TestObjectNames checks the names derived from tags: plain [a-z0-9_]
// (what nft takes unquoted), within the kernel's name limits, and never
// the same for two tags.
func TestObjectNames(t *testing.T) {
	tags := []string{
		TagDefaultIn, TagDefaultOut, TagEstablishedIn, TagEstablishedOut, TagCompileError,
		"95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71", "95653df40f3c4a7e9d1b6f0a2c9e8b71", "95653DF4-0F3C-4A7E-9D1B-6F0A2C9E8B71",
		"r1", "R1", "r-1", "default", "default_in2", "log_limited", "u1", "x72", `with "quotes" and spaces`,
		strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("é", 50), strings.Repeat("z", 101), strings.Repeat("z", 102),
	}
	seen := map[string]string{limitedName(gA): TagLogLimited}
	for _, tag := range tags {
		for _, name := range []string{counterName(gA, tag), logChainName(gA, tag)} {
			if len(name) > 255 {
				t.Errorf("tag %q: name %d bytes long", tag, len(name))
			}
			if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || !strings.HasPrefix(name, "sg_") {
				t.Errorf("tag %q: name %q", tag, name)
			}
		}
		name := counterName(gA, tag)
		if other, ok := seen[name]; ok {
			t.Errorf("tags %q and %q both give counter %s", tag, other, name)
		}
		seen[name] = tag
	}
	if got := counterName("95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71", "0757945c-c533-5e5b-85d3-7b2d151958ec"); got != "sg_95653df40f3c4a7e9d1b6f0a2c9e8b71_u0757945cc5335e5b85d37b2d151958ec" {
		t.Errorf("counter of a UUID rule in a UUID group = %s", got)
	}
	if limitName(gA, LogLimit{Rate: 7, Burst: 3}) == limitName(gA, LogLimit{Rate: 7, Burst: 4}) {
		t.Error("limit objects of different settings share a name")
	}
}

// TestLogPrefix checks that prefixes stay within the kernel's limit,
// hold no character that would need quoting, and read back.
func TestLogPrefix(t *testing.T) {
	tests := []struct {
		p    LogPrefix
		text string // "" for: not compared
	}{
		{LogPrefix{Group: "95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71", Direction: store.Inbound, Tag: "0757945c-c533-5e5b-85d3-7b2d151958ec", Verdict: store.Accept},
			"rampart:95653df4-0f3c-4a7e-9d1b-6f0a2c9e8b71:in:0757945c-c533-5e5b-85d3-7b2d151958ec:accept"},
		{LogPrefix{Group: "g", Direction: store.Outbound, Tag: TagDefaultOut, Verdict: store.Drop}, "rampart:g:out:default_out:drop"},
		{LogPrefix{Group: strings.Repeat("g", 300), Direction: store.Outbound, Tag: strings.Repeat("t:", 300), Verdict: store.Drop}, ""},
		{LogPrefix{Group: "a:b", Direction: store.Inbound, Tag: `"`, Verdict: store.Drop}, ""},
	}
	for _, tt := range tests {
		s := tt.p.String()
		if tt.text != "" && s != tt.text {
			t.Errorf("%+v: %q, want %q", tt.p, s, tt.text)
		}
		if len(s) > 100 || strings.ContainsAny(s, "\" \\") {
			t.Errorf("prefix %q: too long or not plain", s)
		}
		got, err := ParseLogPrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		want := tt.p
		want.Group, want.Tag = LogPrefixGroup(tt.p.Group), LogPrefixTag(tt.p.Tag)
		if got != want {
			t.Errorf("%q read back as %+v, want %+v", s, got, want)
		}
	}
}

// TestCompileLogging checks what logging adds to a group: a log chain per
// logged rule, default drop and SMTP row, the objects they name, and
// nothing for a group that logs nothing.
func TestCompileLogging(t *testing.T) {
	logs := rule("r-log", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0)
	logs.Log = true
	quiet := rule("r-quiet", store.Outbound, store.UDP, store.Drop, "::/0", 53, 0)
	g := group(gA, true, store.Drop, store.Accept, true)
	g.LogDefaultDrops = true
	var c Compiler
	c.Log = LogConfig{Group: 7, Limit: LogLimit{Rate: 10}}
	rs := c.Compile(snapshot(1, []store.Group{g}, map[string][]store.Rule{gA: {logs, quiet}}))
	gc, _ := rs.Group(gA)

	// Logged: r-log, default_in (drop), the six SMTP rows; not default_out
	// (accept), the established rows or r-quiet.
	var want []string
	for _, tag := range append([]string{"r-log", TagDefaultIn}, smtpTags(gA)...) {
		want = append(want, logChainName(gA, tag))
	}
	slices.Sort(want)
	var got []string
	for _, ch := range gc.LogChains {
		got = append(got, ch.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("log chains %v, want %v", got, want)
	}
	limit := limitName(gA, LogLimit{Rate: 10, Burst: DefaultLogBurst})
	for _, r := range append(slices.Clone(gc.In.Rules), gc.Out.Rules...) {
		if (r.Log.Chain != "") != slices.Contains(want, logChainName(gA, r.Tag)) || r.Counter != counterName(gA, r.Tag) {
			t.Errorf("rule %s: %+v", r.Tag, r)
		}
	}
	ch := gc.LogChains[slices.IndexFunc(gc.LogChains, func(c Chain) bool { return c.Name == logChainName(gA, "r-log") })]
	wantLines := []string{
		`limit name "` + limit + `" log prefix "rampart:` + gA + `:in:r-log:accept" group 7 accept comment "r-log"`,
		`counter name "` + limitedName(gA) + `" accept comment "log_limited"`,
	}
	for i, r := range ch.Rules {
		if r.String() != wantLines[i] {
			t.Errorf("log chain rule %d:\n got %s\nwant %s", i, r.String(), wantLines[i])
		}
	}
	if s := gc.In.Rules[1].String(); !strings.HasSuffix(s, `counter name "`+counterName(gA, "r-log")+`" goto `+logChainName(gA, "r-log")+` comment "r-log"`) {
		t.Errorf("logged rule: %s", s)
	}
	// Objects: a counter per rule, the limited counter, the limit.
	n := len(gc.In.Rules) + len(gc.Out.Rules)
	if len(gc.Objects) != n+2 || !slices.IsSortedFunc(gc.Objects, compareObjects) {
		t.Errorf("%d objects for %d rules: %+v", len(gc.Objects), n, gc.Objects)
	}
	if o := gc.Objects[len(gc.Objects)-1]; o != (Object{Kind: ObjLimit, Name: limit, Rate: 10, Burst: DefaultLogBurst}) {
		t.Errorf("limit object %+v", o)
	}

	// Without logging: no log chain, no limit.
	g.LogDefaultDrops = false
	rs = Compile(snapshot(1, []store.Group{g}, map[string][]store.Rule{gA: {quiet}}))
	gc, _ = rs.Group(gA)
	if len(gc.LogChains) != 0 || len(gc.Objects) != len(gc.In.Rules)+len(gc.Out.Rules) {
		t.Errorf("group that logs nothing: %d log chains, %d objects", len(gc.LogChains), len(gc.Objects))
	}
}

// TestDiffObjects checks what an incremental apply sends for logging and
// counters: objects appear with their rules and go with them, a new limit
// makes a new object and rewrites the log chains, and an edit that
// changes neither sends no object.
func TestDiffObjects(t *testing.T) {
	r1 := rule("r1", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0)
	r2 := rule("r2", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 80, 0)
	a := group(gA, true, store.Drop, store.Accept, false)
	b := group(gB, true, store.Accept, store.Accept, false)
	var c Compiler
	compile := func(rules ...store.Rule) *Ruleset {
		return c.Compile(snapshot(1, []store.Group{a, b}, map[string][]store.Rule{gA: rules}))
	}
	names := func(os []Object) []string {
		var out []string
		for _, o := range os {
			out = append(out, o.Name)
		}
		return out
	}
	prev := compile(r1)
	next := compile(r1, r2)
	d := diffRulesets(prev, next)
	if got := names(d.addObjects); !slices.Equal(got, []string{counterName(gA, "r2")}) || len(d.delObjects) != 0 {
		t.Errorf("add r2: objects +%v -%v", got, names(d.delObjects))
	}
	// Reordered: the same objects.
	prev, next = next, compile(r2, r1)
	if d := diffRulesets(prev, next); len(d.addObjects)+len(d.delObjects) != 0 || len(d.replaceChains) != 1 {
		t.Errorf("reorder: %+v", d)
	}
	// r1 starts logging: its log chain, the limit and the limited counter.
	logged := r1
	logged.Log = true
	prev, next = next, compile(r2, logged)
	d = diffRulesets(prev, next)
	wantAdd := []string{limitedName(gA), limitName(gA, c.Log.limitFor(gA))}
	if got := names(d.addObjects); !slices.Equal(got, wantAdd) || len(d.addChains) != 1 || d.addChains[0].Name != logChainName(gA, "r1") {
		t.Errorf("r1 logs: objects %v, chains %+v", got, d.addChains)
	}
	// A new limit: a new limit object, the log chain rewritten, the old
	// object deleted.
	prev = next
	c.Log = LogConfig{Limit: LogLimit{Rate: 1, Burst: 1}}
	next = compile(r2, logged)
	d = diffRulesets(prev, next)
	if got, del := names(d.addObjects), names(d.delObjects); len(got) != 1 || got[0] != limitName(gA, LogLimit{1, 1}) ||
		len(del) != 1 || del[0] != limitName(gA, LogLimit{DefaultLogRate, DefaultLogBurst}) || len(d.replaceChains) != 1 {
		t.Errorf("new limit: +%v -%v, replaced %d chains", got, del, len(d.replaceChains))
	}
	// r1 deleted: its counter, log chain, limit and limited counter go.
	prev, next = next, compile(r2)
	d = diffRulesets(prev, next)
	if len(d.delObjects) != 3 || len(d.delChains) != 1 || d.delChains[0] != logChainName(gA, "r1") {
		t.Errorf("r1 deleted: objects -%v, chains -%v", names(d.delObjects), d.delChains)
	}
	// Group A deleted: all its objects go.
	prev = next
	next = c.Compile(snapshot(1, []store.Group{b}, nil))
	d = diffRulesets(prev, next)
	ga, _ := prev.Group(gA)
	if len(d.delObjects) != len(ga.Objects) {
		t.Errorf("group deleted: %d objects deleted, want %d", len(d.delObjects), len(ga.Objects))
	}
}
