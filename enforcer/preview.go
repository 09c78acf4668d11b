package enforcer

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// Preview is the backend that enforces nothing: it keeps the last Ruleset it
// was given so that its nft text can be shown, and reports zero counters.
type Preview struct {
	reason string
	mu     sync.Mutex
	last   *Ruleset
}

// NewPreview returns a preview backend; reason says why nothing is enforced.
func NewPreview(reason string) *Preview { return &Preview{reason: reason} }

// Mode implements Backend.
func (p *Preview) Mode() (string, string) { return ModePreview, p.reason }

// Apply implements Backend; it never fails.
func (p *Preview) Apply(_ context.Context, _, next *Ruleset) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = next
	return nil
}

// Verify implements Backend: nothing can drift outside the kernel.
func (p *Preview) Verify(context.Context, *Ruleset) error { return nil }

// Counters implements Backend: every rule of the chains counts zero.
func (p *Preview) Counters(_ context.Context, chains ...string) (map[string]Counter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]Counter{}
	if p.last == nil {
		return out, nil
	}
	want := map[string]bool{}
	for _, c := range chains {
		want[c] = true
	}
	for _, g := range p.last.Groups {
		for _, c := range []Chain{g.In, g.Out} {
			if want[c.Name] {
				for _, r := range c.Rules {
					if r.Counter != "" {
						out[r.Tag] = Counter{}
					}
				}
			}
		}
	}
	return out, nil
}

// GroupCounters implements Backend: every counter of the groups is zero.
func (p *Preview) GroupCounters(_ context.Context, groups ...GroupChains) (map[string]map[string]Counter, error) {
	return zeroCounters(groups), nil
}

// ResetCounters implements Backend: there is nothing to reset.
func (p *Preview) ResetCounters(_ context.Context, groups ...GroupChains) (map[string]map[string]Counter, error) {
	return zeroCounters(groups), nil
}

func zeroCounters(groups []GroupChains) map[string]map[string]Counter {
	out := make(map[string]map[string]Counter, len(groups))
	for _, g := range groups {
		m := map[string]Counter{}
		for _, o := range g.Objects {
			if o.Kind == ObjCounter {
				m[o.Tag] = Counter{}
			}
		}
		out[g.GroupID] = m
	}
	return out
}

// Remove implements Backend: there is nothing to remove.
func (p *Preview) Remove(context.Context) error { return nil }

// Text renders the whole table as an nft script. Loaded with `nft -f`, it
// replaces the table atomically (the first two lines make the delete succeed
// whether or not the table exists) and the kernel then holds the same rules
// as a netlink apply of the same Ruleset.
func (rs *Ruleset) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# rampart generation %d\n", rs.Generation)
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", TableName, TableName)
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	// Objects come before the rules that name them, and chains before the
	// rules, maps and hooked chains that go to them.
	for _, g := range rs.Groups {
		for _, o := range g.Objects {
			writeObject(&b, o)
		}
	}
	for _, s := range rs.Sets {
		writeSet(&b, s, -1)
	}
	for _, g := range rs.Groups {
		for _, c := range g.LogChains {
			writeChain(&b, c)
		}
		writeChain(&b, g.In)
		writeChain(&b, g.Out)
	}
	writeMap(&b, mapToServer, rs.ToServer)
	writeMap(&b, mapFromServer, rs.FromServer)
	for _, c := range append(baseChains(), rs.HostIn, rs.HostOut) {
		writeChain(&b, c)
	}
	b.WriteString("}\n")
	return b.String()
}

// GroupText renders the two chains of a group as nft text, then the sets
// they match, each with at most groupTextElems of its elements (a set may
// hold 100,000).
func (rs *Ruleset) GroupText(groupID string) string {
	g, ok := rs.Group(groupID)
	if !ok {
		return ""
	}
	var b strings.Builder
	writeChain(&b, g.In)
	writeChain(&b, g.Out)
	for _, c := range g.LogChains {
		writeChain(&b, c)
	}
	for _, s := range rs.GroupSets(groupID) {
		writeSet(&b, s, groupTextElems)
	}
	return b.String()
}

// groupTextElems bounds the elements of a set that GroupText shows.
const groupTextElems = 50

// writeSet renders a named set as `nft list` shows it, with at most max
// elements (all when max < 0), the others counted in a comment.
func writeSet(b *strings.Builder, s Set, max int) {
	typ := "ipv4_addr"
	if s.Family == FamilyIPv6 {
		typ = "ipv6_addr"
	}
	fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n", s.Name, typ)
	if s.Interval {
		b.WriteString("\t\tflags interval\n")
	}
	elems := s.Elems
	if max >= 0 && len(elems) > max {
		elems = elems[:max]
	}
	if len(elems) > 0 {
		b.WriteString("\t\telements = {")
		for i, e := range elems {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("\n\t\t\t")
			b.WriteString(prefixText(e))
		}
		b.WriteString("\n\t\t}\n")
	}
	if more := len(s.Elems) - len(elems); more > 0 {
		fmt.Fprintf(b, "\t\t# and %d more elements\n", more)
	}
	b.WriteString("\t}\n")
}

func writeObject(b *strings.Builder, o Object) {
	switch o.Kind {
	case ObjCounter:
		fmt.Fprintf(b, "\tcounter %s {\n\t}\n", o.Name)
	case ObjLimit:
		fmt.Fprintf(b, "\tlimit %s {\n\t\trate %d/second burst %d packets\n\t}\n", o.Name, o.Rate, o.Burst)
	}
}

func writeMap(b *strings.Builder, name string, elems []MapElem) {
	fmt.Fprintf(b, "\tmap %s {\n\t\ttype ifname : verdict\n", name)
	if len(elems) > 0 {
		b.WriteString("\t\telements = {\n")
		for i, e := range elems {
			sep := ","
			if i == len(elems)-1 {
				sep = ""
			}
			fmt.Fprintf(b, "\t\t\t%q : jump %s%s\n", e.IfName, e.Chain, sep)
		}
		b.WriteString("\t\t}\n")
	}
	b.WriteString("\t}\n")
}

func writeChain(b *strings.Builder, c Chain) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != "" {
		fmt.Fprintf(b, "\t\ttype filter hook %s priority %d; policy accept;\n", c.Hook, c.Priority)
	}
	for _, r := range c.Rules {
		fmt.Fprintf(b, "\t\t%s\n", r.String())
	}
	b.WriteString("\t}\n")
}

// String renders the rule as one nft rule line, matches in declaration order.
func (r Rule) String() string {
	var p []string
	if r.IIFName != "" {
		p = append(p, fmt.Sprintf("iifname %q", r.IIFName))
	}
	if r.OIFName != "" {
		p = append(p, fmt.Sprintf("oifname %q", r.OIFName))
	}
	if r.CTEstablished {
		p = append(p, "ct state established,related")
	}
	ipKw := "ip"
	switch r.Family {
	case FamilyIPv4:
		p = append(p, "meta nfproto ipv4")
	case FamilyIPv6:
		p = append(p, "meta nfproto ipv6")
		ipKw = "ip6"
	}
	if r.SAddr.IsValid() {
		p = append(p, fmt.Sprintf("%s saddr %s", ipKw, prefixText(r.SAddr)))
	}
	if r.SAddrSet != "" {
		p = append(p, fmt.Sprintf("%s saddr @%s", ipKw, r.SAddrSet))
	}
	if r.DAddr.IsValid() {
		p = append(p, fmt.Sprintf("%s daddr %s", ipKw, prefixText(r.DAddr)))
	}
	if r.DAddrSet != "" {
		p = append(p, fmt.Sprintf("%s daddr @%s", ipKw, r.DAddrSet))
	}
	l4 := ""
	switch r.L4 {
	case L4TCP:
		l4 = "tcp"
	case L4UDP:
		l4 = "udp"
	case L4ICMP:
		l4 = "icmp"
	case L4ICMPv6:
		l4 = "ipv6-icmp"
	}
	if l4 != "" {
		p = append(p, "meta l4proto "+l4)
	}
	switch {
	case r.DPortFrom != 0 && r.DPortTo != 0:
		p = append(p, fmt.Sprintf("%s dport %d-%d", l4, r.DPortFrom, r.DPortTo))
	case r.DPortFrom != 0:
		p = append(p, fmt.Sprintf("%s dport %d", l4, r.DPortFrom))
	}
	if r.VMapIIF != "" {
		p = append(p, "iifname vmap @"+r.VMapIIF)
	}
	if r.VMapOIF != "" {
		p = append(p, "oifname vmap @"+r.VMapOIF)
	}
	if r.Counter != "" {
		p = append(p, fmt.Sprintf("counter name %q", r.Counter))
	}
	v := r.Verdict
	switch {
	case r.Log.Chain != "":
		v = Verdict{Kind: "goto", Chain: r.Log.Chain}
	case r.Log.logs():
		if r.Log.Limit != "" {
			p = append(p, fmt.Sprintf("limit name %q", r.Log.Limit))
		}
		p = append(p, fmt.Sprintf("log prefix %q group %d", r.Log.Prefix, r.Log.Group))
	}
	switch v.Kind {
	case "accept", "drop":
		p = append(p, v.Kind)
	case "jump", "goto":
		p = append(p, v.Kind+" "+v.Chain)
	}
	if r.Tag != "" {
		p = append(p, fmt.Sprintf("comment %q", r.Tag))
	}
	return strings.Join(p, " ")
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
