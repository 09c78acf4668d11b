package explain

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// FindingKind is what the analysis found about a rule.
type FindingKind string

// Finding kinds, in the order they are listed for a rule.
const (
	// Shadowed: the rule matches no new packet that an earlier rule (or
	// SMTP row) has not already decided, so it never decides anything.
	Shadowed FindingKind = "shadowed"
	// Redundant: the rule decides packets, but removing it would change no
	// verdict: later rules or the default policy would do the same.
	Redundant FindingKind = "redundant"
	// Conflict: an earlier rule of the opposite action decides part (not
	// all) of the packets the rule matches.
	Conflict FindingKind = "conflict"
	// Broad: the rule accepts, from any address, every protocol or a port
	// that is rarely meant to be open to the world.
	Broad FindingKind = "broad"
)

var kindOrder = map[FindingKind]int{Shadowed: 0, Redundant: 1, Conflict: 2, Broad: 3}

// broadPorts are the ports whose exposure to any address makes a rule
// broad, with what usually listens there.
var broadPorts = map[uint16]string{
	22: "SSH", 23: "Telnet", 2375: "Docker", 2379: "etcd", 3306: "MySQL", 3389: "RDP",
	5432: "PostgreSQL", 5900: "VNC", 6379: "Redis", 9200: "Elasticsearch", 11211: "Memcached",
	27017: "MongoDB",
}

// Finding is one thing the analysis found about one rule.
type Finding struct {
	RuleID string      `json:"rule_id"`
	Kind   FindingKind `json:"kind"`
	// By lists the IDs of the rules (and SMTP rows) involved, in chain
	// order: the earlier rules that decide the packets of a shadowed rule
	// or that take part of a conflicting rule's, the later rules that
	// would decide a redundant rule's packets. It is empty for broad, and
	// omits the default policy, which the message names.
	By      []string `json:"by"`
	Message string   `json:"message"`
	// Example is, for a conflict, a packet that the rule matches and an
	// earlier rule of the opposite action decides.
	Example *Packet `json:"example,omitempty"`
}

// Analysis is what Analyze found about a group's rules.
type Analysis struct {
	// Findings about the group's editable rules, by position.
	Findings []Finding `json:"findings"`
	// Witnesses holds, for every rule and SMTP row that is not shadowed, a
	// new packet that it decides (Evaluate says so), by rule ID.
	Witnesses map[string]Packet `json:"witnesses"`
}

// Analyze finds the group's shadowed, redundant, conflicting and broad
// rules. It is exact over the compiled chains: address ranges as CIDR
// intervals of both families, port intervals, and protocols as TCP, UDP,
// ICMP, ICMPv6 and any other (which only ANY matches). It considers new
// packets: established ones are either accepted by the stateful rule
// before any rule sees them, or, in a stateless group, matched by the
// rules regardless of their state.
//
// The work is bounded: a group whose rules cut the packet space into too
// many pieces (hundreds of rules that cross each other's ranges) gives
// ErrTooComplex rather than an answer minutes later.
func (g *Group) Analyze() (a Analysis, err error) {
	m := &meter{left: maxWork}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(tooComplex); !ok {
				panic(r)
			}
			a, err = Analysis{}, fmt.Errorf("analyse group %s: %w", g.id, ErrTooComplex)
		}
	}()
	a = Analysis{Findings: []Finding{}, Witnesses: map[string]Packet{}}
	pos := map[string]int{}
	for _, c := range []*chain{&g.in, &g.out} {
		c.analyze(&a, m)
		for _, ref := range c.refs {
			pos[ref.RuleID] = ref.Position
		}
	}
	slices.SortStableFunc(a.Findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(pos[x.RuleID], pos[y.RuleID]), strings.Compare(x.RuleID, y.RuleID),
			cmp.Compare(kindOrder[x.Kind], kindOrder[y.Kind]))
	})
	return a, nil
}

// ErrTooComplex is returned (wrapped) by Analyze for a group whose
// analysis would take too long.
var ErrTooComplex = errors.New("too many rules crossing each other's ranges to analyse")

// maxWork bounds the box comparisons of one analysis: about a second. It
// is a variable for tests.
var maxWork = 50_000_000

// bounds holds, per rule of a chain, boxes of new packets: lo within what
// it matches, hi containing it (the same boxes unless the rule matches a
// large set, see entryBounds), and what it decides: reachLo within, and
// reachHi containing, the packets it matches that no earlier rule does.
// Every finding is proven on these: with exact rules, exactly; with a
// large set, only what holds whatever the set's intervals.
type bounds struct {
	lo, hi           [][]box
	exact            []bool
	reachLo, reachHi []set
}

func (c *chain) bounds(m *meter) bounds {
	n := len(c.rules)
	bd := bounds{lo: make([][]box, n), hi: make([][]box, n), exact: make([]bool, n),
		reachLo: make([]set, n), reachHi: make([]set, n)}
	for i := range c.rules {
		bd.lo[i], bd.hi[i], bd.exact[i] = entryBounds(&c.rules[i], c.dir)
	}
	for i := range n {
		hi := set(slices.Clone(bd.hi[i]))
		for j := 0; j < i && !hi.empty(); j++ {
			hi = hi.minus(bd.lo[j], m)
		}
		bd.reachHi[i] = hi
		if bd.allExact(i) {
			bd.reachLo[i] = hi
			continue
		}
		lo := set(slices.Clone(bd.lo[i]))
		for j := 0; j < i && !lo.empty(); j++ {
			lo = lo.minus(bd.hi[j], m)
		}
		bd.reachLo[i] = lo
	}
	return bd
}

// allExact reports whether rules 0..i are exact.
func (bd *bounds) allExact(i int) bool {
	return !slices.Contains(bd.exact[:i+1], false)
}

func (c *chain) analyze(a *Analysis, m *meter) {
	bd := c.bounds(m)
	for i, ref := range c.refs {
		witness, known := c.witness(i, &bd, m)
		if ref.RuleID != "" && known {
			a.Witnesses[ref.RuleID] = witness
		}
		if ref.Kind != KindRule {
			continue // SMTP rows and the fixed rules are not the user's to change
		}
		shadowed := bd.reachHi[i].empty()
		switch {
		case shadowed:
			a.Findings = append(a.Findings, c.shadowed(i, &bd, m))
		case known:
			// Redundant and conflict are said of a rule that decides
			// packets: one with a witness. (A rule on a large set that
			// is neither proven shadowed nor given a witness gets no
			// finding.)
			if f, ok := c.redundant(i, &bd, m); ok {
				a.Findings = append(a.Findings, f)
			}
			if f, ok := c.conflict(i, &bd, m); ok {
				a.Findings = append(a.Findings, f)
			}
		}
		if f, ok := c.broad(i); ok {
			a.Findings = append(a.Findings, f)
		}
	}
}

// maxWitnessTries bounds the packets tried as a rule's witness when the
// bounds do not give one at once.
const maxWitnessTries = 256

// witness returns a new packet that rule i decides, and false when there
// is none (the rule is shadowed) or none was found within
// maxWitnessTries: a point of reachLo is one; otherwise points of the
// rule's exact boxes (for a large set, of its first intervals) outside
// what the earlier rules surely match are tried on the chain.
func (c *chain) witness(i int, bd *bounds, m *meter) (Packet, bool) {
	if !bd.reachLo[i].empty() {
		return bd.reachLo[i][0].point(c.dir), true
	}
	if bd.reachHi[i].empty() {
		return Packet{}, false
	}
	cand := set(slices.Clone(c.sampleBoxes(i)))
	for j := 0; j < i && !cand.empty(); j++ {
		cand = cand.minus(bd.lo[j], m)
	}
	for k, b := range cand {
		if k == maxWitnessTries {
			break
		}
		p := b.point(c.dir)
		if d, err := c.walk(p); err == nil && d.DecidedBy == c.refs[i] && c.decider(d) == i {
			return p, true
		}
	}
	return Packet{}, false
}

// decider returns the index of the rule that decided d.
func (c *chain) decider(d Decision) int {
	return len(d.Trace) - 1
}

// sampleBoxes returns exact boxes of what rule i matches: all of them, or
// for a large set those of its first maxWitnessTries intervals per family.
func (c *chain) sampleBoxes(i int) []box {
	e := &c.rules[i]
	if !e.isSet() {
		return ruleBoxes(e.first(), c.dir, nil)
	}
	var out []box
	for _, fam := range []enforcer.Family{enforcer.FamilyIPv4, enforcer.FamilyIPv6} {
		spans, ok := e.familySpans(fam)
		if !ok || len(spans) == 0 {
			continue
		}
		r := e.alts[slices.IndexFunc(e.alts, func(r enforcer.Rule) bool { return r.Family == fam })]
		out = append(out, ruleBoxes(r, c.dir, spans[:min(len(spans), maxWitnessTries)])...)
	}
	return out
}

func (c *chain) action(i int) store.Policy { return store.Policy(c.rules[i].first().Verdict.Kind) }

// shadowed names the earlier rules that decide the packets of rule i.
func (c *chain) shadowed(i int, bd *bounds, m *meter) Finding {
	var by []RuleRef
	for j := range i {
		if bd.reachHi[j].intersects(bd.hi[i], m) {
			by = append(by, c.refs[j])
		}
	}
	msg := "never matches: every packet it matches is decided first by " + names(by)
	switch actions := c.actionsOf(by); {
	case len(actions) == 1 && actions[0] == c.action(i):
		msg = fmt.Sprintf("never matches: every packet it matches is already %s by %s", past(c.action(i)), names(by))
	case len(actions) == 1:
		msg = fmt.Sprintf("never matches: every packet it would %s is %s first by %s", c.action(i), past(actions[0]), names(by))
	}
	return Finding{RuleID: c.refs[i].RuleID, Kind: Shadowed, By: ids(by), Message: msg}
}

// redundant reports whether removing rule i changes no verdict: every
// packet it decides would be decided the same way by the rules after it.
// With bounds: every later rule that may match a packet of reachHi
// (through hi) has i's action, and a packet leaves the set only when a
// rule surely matches it (through lo).
func (c *chain) redundant(i int, bd *bounds, m *meter) (Finding, bool) {
	s := slices.Clone(bd.reachHi[i]) // minus reuses its storage
	var by []RuleRef
	defaultToo := false
	for k := i + 1; k < len(c.rules) && !s.empty(); k++ {
		if !s.intersects(bd.hi[k], m) {
			continue
		}
		if c.action(k) != c.action(i) {
			return Finding{}, false
		}
		if c.refs[k].Kind == KindDefaultPolicy {
			defaultToo = true
		} else {
			by = append(by, c.refs[k])
		}
		s = s.minus(bd.lo[k], m)
	}
	if !s.empty() {
		return Finding{}, false // not proven
	}
	who := names(by)
	if defaultToo {
		who = names(append(by, RuleRef{Kind: KindDefaultPolicy}))
	}
	msg := fmt.Sprintf("removing it changes no verdict: the packets it decides would be %s anyway, by %s", past(c.action(i)), who)
	return Finding{RuleID: c.refs[i].RuleID, Kind: Redundant, By: ids(by), Message: msg}, true
}

// conflict names the earlier rules of the opposite action that decide
// part of the packets rule i matches; rule i is not shadowed, so part
// only. With bounds, only what surely holds: packets of reachLo[j] that
// rule i surely matches (lo[i]).
func (c *chain) conflict(i int, bd *bounds, m *meter) (Finding, bool) {
	var by []RuleRef
	var example *Packet
	var text string
	for j := range i {
		if c.action(j) == c.action(i) {
			continue
		}
		x := bd.reachLo[j].intersect(bd.lo[i], m)
		if x.empty() {
			continue
		}
		by = append(by, c.refs[j])
		if example == nil {
			p := x[0].point(c.dir)
			example = &p
			text = x[0].describe(c.dir)
		}
	}
	if len(by) == 0 {
		return Finding{}, false
	}
	msg := fmt.Sprintf("part of the packets it would %s are %s first by %s, such as %s",
		c.action(i), past(opposite(c.action(i))), names(by), text)
	return Finding{RuleID: c.refs[i].RuleID, Kind: Conflict, By: ids(by), Message: msg, Example: example}, true
}

// broad reports an inbound accept from any address of every protocol or
// of ports that include one of broadPorts.
func (c *chain) broad(i int) (Finding, bool) {
	r := c.rules[i].first()
	if c.dir != store.Inbound || r.Verdict.Kind != "accept" || r.SAddr.IsValid() || c.rules[i].isSet() {
		return Finding{}, false
	}
	from := "0.0.0.0/0 and ::/0"
	switch r.Family {
	case enforcer.FamilyIPv4:
		from = "0.0.0.0/0"
	case enforcer.FamilyIPv6:
		from = "::/0"
	}
	var what string
	switch r.L4 {
	case enforcer.L4Any:
		what = "every protocol"
	case enforcer.L4TCP, enforcer.L4UDP:
		lo, hi := uint16(0), uint16(65535)
		if r.DPortFrom != 0 {
			lo, hi = r.DPortFrom, max(r.DPortFrom, r.DPortTo)
		}
		var ports []uint16
		for p := range broadPorts {
			if p >= lo && p <= hi {
				ports = append(ports, p)
			}
		}
		if len(ports) == 0 {
			return Finding{}, false
		}
		slices.Sort(ports)
		list := make([]string, len(ports))
		for k, p := range ports {
			list[k] = fmt.Sprintf("%d (%s)", p, broadPorts[p])
		}
		what = l4Name(uint8(r.L4)) + " " + join(list)
	default:
		return Finding{}, false
	}
	return Finding{RuleID: c.refs[i].RuleID, Kind: Broad, By: []string{},
		Message: fmt.Sprintf("accepts %s from any address (%s)", what, from)}, true
}

func (c *chain) actionsOf(refs []RuleRef) []store.Policy {
	var out []store.Policy
	for _, ref := range refs {
		for k, r := range c.refs {
			if r == ref && !slices.Contains(out, c.action(k)) {
				out = append(out, c.action(k))
			}
		}
	}
	return out
}

func opposite(p store.Policy) store.Policy {
	if p == store.Accept {
		return store.Drop
	}
	return store.Accept
}

func past(p store.Policy) string {
	if p == store.Accept {
		return "accepted"
	}
	return "dropped"
}

func ids(refs []RuleRef) []string {
	out := []string{}
	for _, r := range refs {
		if r.RuleID != "" {
			out = append(out, r.RuleID)
		}
	}
	return out
}

// names lists rules for a message: "rule 2, rule 5 and SMTP row 1".
func names(refs []RuleRef) string {
	list := make([]string, len(refs))
	for i, r := range refs {
		list[i] = ruleName(r)
	}
	return join(list)
}

func join(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	}
	return strings.Join(list[:len(list)-1], ", ") + " and " + list[len(list)-1]
}

// describe renders a packet of b for a message, "TCP from 192.0.2.10 to
// port 22", without the local address when b holds them all.
func (b box) describe(dir store.Direction) string {
	p := b.point(dir)
	if b.dims[dimLocal] == addrSpace(b.fam) {
		p.Local = netip.Addr{}
	}
	return describe(p)
}

// describe renders a packet for a message.
func describe(p Packet) string {
	var b strings.Builder
	if p.Protocol == store.ICMP && !p.Remote.Is4() {
		b.WriteString("ICMPv6")
	} else {
		b.WriteString(protocolText(p.Protocol))
	}
	if p.Direction == store.Inbound {
		fmt.Fprintf(&b, " from %s", p.Remote)
		if p.Local.IsValid() {
			fmt.Fprintf(&b, " to %s", p.Local)
		}
	} else {
		if p.Local.IsValid() {
			fmt.Fprintf(&b, " from %s", p.Local)
		}
		fmt.Fprintf(&b, " to %s", p.Remote)
	}
	if p.Protocol.HasPorts() {
		fmt.Fprintf(&b, " port %d", p.Port)
	}
	return b.String()
}
