package explain

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/store"
)

// Kind says what a rule of a compiled chain is, and so what decided a
// packet.
type Kind string

// Kinds.
const (
	KindRule          Kind = "rule"           // one of the group's rules
	KindSMTP          Kind = "smtp"           // one of the six SMTP rows
	KindStateful      Kind = "stateful"       // ct state established,related accept
	KindDefaultPolicy Kind = "default_policy" // the chain's last rule
	// KindCompileError is the drop-everything rule of a group that could
	// not be compiled.
	KindCompileError Kind = "compile_error"
	// KindNotEnforced decides a packet that no chain of this host sees: a
	// server bound to no interface and not local.
	KindNotEnforced Kind = "not_enforced"
)

// RuleRef names a rule of a compiled chain. RuleID and Position are set for
// KindRule and KindSMTP; Position is 0 for a rule the chain holds but the
// given store rules do not (chains applied before the rule was deleted).
type RuleRef struct {
	Kind     Kind   `json:"kind"`
	RuleID   string `json:"rule_id,omitempty"`
	Position int    `json:"position,omitempty"`
}

// Part is a part of a rule's match.
type Part string

// Parts, in the order the kernel checks them.
const (
	PartState    Part = "state"
	PartFamily   Part = "family"
	PartRemoteIP Part = "remote_ip"
	PartLocalIP  Part = "local_ip"
	PartProtocol Part = "protocol"
	PartPort     Part = "dest_port"
)

// Step is one rule considered for a packet.
type Step struct {
	RuleRef
	Action  store.Policy `json:"action"`
	Matched bool         `json:"matched"`
	// Mismatch is the first part of the rule that did not match, in the
	// kernel's order, and Reason says why, briefly.
	Mismatch Part   `json:"mismatch,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Decision is what a group's chain does with a packet.
type Decision struct {
	Verdict   store.Policy `json:"verdict"`
	DecidedBy RuleRef      `json:"decided_by"`
	// Trace holds the rules considered, in order, up to the one that
	// decided.
	Trace []Step `json:"trace"`
	// Packet is the packet evaluated, with the local address that was
	// used when it came from the server's addresses.
	Packet Packet `json:"packet"`
	// Note explains a decision that the trace alone does not.
	Note string `json:"note,omitempty"`
}

// Path is what happens to a packet between two servers.
type Path struct {
	// Verdict is drop when either group drops the packet.
	Verdict  store.Policy `json:"verdict"`
	Outbound Decision     `json:"outbound"` // the sender's group
	Inbound  Decision     `json:"inbound"`  // the receiver's group
}

// Group is a security group as the explainer sees it: the compiled chains,
// which alone decide, and the store's rules, which give them IDs and
// positions. A Group is immutable and safe for concurrent use.
type Group struct {
	id      string
	in, out chain
}

// chain is one compiled chain with what the explainer knows of each rule.
type chain struct {
	dir   store.Direction
	rules []entry
	refs  []RuleRef
}

// NewGroup returns the explainer's view of group g. rules are its editable
// rules (any order), chains its compiled chains: those of
// enforcer.Compile(snapshot).Group(g.ID), or those the reconciler applied;
// sets the sets the chains match (Ruleset.GroupSets), with the elements
// they were compiled with. It fails when chains hold a rule that the
// compiler does not produce for a group (an interface match, a jump, a
// chain without a last unconditional rule), or match a set not given,
// which the explainer cannot vouch for.
func NewGroup(g store.Group, rules []store.Rule, chains enforcer.GroupChains, sets ...enforcer.Set) (*Group, error) {
	if chains.GroupID != g.ID {
		return nil, fmt.Errorf("explain group %s: chains are those of group %s", g.ID, chains.GroupID)
	}
	refs := map[string]RuleRef{}
	for _, r := range store.SMTPRules(g.ID) {
		refs[r.ID] = RuleRef{Kind: KindSMTP, RuleID: r.ID, Position: r.Position}
	}
	for _, r := range rules {
		refs[r.ID] = RuleRef{Kind: KindRule, RuleID: r.ID, Position: r.Position}
	}
	eg := &Group{id: g.ID}
	byName, names := setsByName(sets), remoteNames(rules)
	var err error
	if eg.in, err = newChain(store.Inbound, chains.In, refs, byName, names); err != nil {
		return nil, fmt.Errorf("explain group %s: %w", g.ID, err)
	}
	if eg.out, err = newChain(store.Outbound, chains.Out, refs, byName, names); err != nil {
		return nil, fmt.Errorf("explain group %s: %w", g.ID, err)
	}
	return eg, nil
}

// ID returns the group's ID.
func (g *Group) ID() string { return g.id }

func (g *Group) chain(dir store.Direction) *chain {
	if dir == store.Inbound {
		return &g.in
	}
	return &g.out
}

func newChain(dir store.Direction, c enforcer.Chain, refs map[string]RuleRef, sets map[string]*addrSet, names map[string]string) (chain, error) {
	for i, r := range c.Rules {
		if err := supported(r, dir); err != nil {
			return chain{}, fmt.Errorf("chain %s: rule %d (%s): %w", c.Name, i+1, r.Tag, err)
		}
	}
	es, err := entries(dir, c.Rules, sets, names)
	if err != nil {
		return chain{}, fmt.Errorf("chain %s: %w", c.Name, err)
	}
	ch := chain{dir: dir, rules: es, refs: make([]RuleRef, len(es))}
	for i := range es {
		r := es[i].first()
		switch r.Tag {
		case enforcer.TagDefaultIn, enforcer.TagDefaultOut:
			ch.refs[i] = RuleRef{Kind: KindDefaultPolicy}
		case enforcer.TagEstablishedIn, enforcer.TagEstablishedOut:
			ch.refs[i] = RuleRef{Kind: KindStateful}
		case enforcer.TagCompileError:
			ch.refs[i] = RuleRef{Kind: KindCompileError}
		default:
			ref, ok := refs[r.Tag]
			if !ok {
				ref = RuleRef{Kind: KindRule, RuleID: r.Tag}
			}
			ch.refs[i] = ref
		}
	}
	if n := len(es); n == 0 || len(es[n-1].alts) != 1 || !unconditional(es[n-1].first()) {
		return chain{}, fmt.Errorf("chain %s: does not end with an unconditional rule", c.Name)
	}
	return ch, nil
}

// supported reports why r is not a rule the compiler produces for a group's
// chain of direction dir, if it is not. Each restriction keeps the tester
// and the analysis honest: with them, every match of a rule is one of
// family, address prefix (or set, on the remote side), protocol and port
// interval, and every rule decides.
func supported(r enforcer.Rule, dir store.Direction) error {
	local := r.SAddrSet
	if dir == store.Inbound {
		local = r.DAddrSet
	}
	switch {
	case local != "":
		return fmt.Errorf("set %s on the server's side", local)
	case (r.SAddrSet != "" || r.DAddrSet != "") && r.Family != enforcer.FamilyIPv4 && r.Family != enforcer.FamilyIPv6:
		return errors.New("a set match without the family match that gives its offset")
	case r.SAddrSet != "" && r.SAddr.IsValid() || r.DAddrSet != "" && r.DAddr.IsValid():
		return errors.New("an address matched both by a prefix and by a set")
	}
	switch {
	case r.IIFName != "" || r.OIFName != "" || r.VMapIIF != "" || r.VMapOIF != "":
		return errors.New("interface matches are not group matches")
	case r.Verdict.Kind != "accept" && r.Verdict.Kind != "drop":
		return fmt.Errorf("verdict %q is neither accept nor drop", r.Verdict.Kind)
	case r.Family != enforcer.FamilyAny && r.Family != enforcer.FamilyIPv4 && r.Family != enforcer.FamilyIPv6:
		return fmt.Errorf("unknown family %d", r.Family)
	}
	for _, p := range []netip.Prefix{r.SAddr, r.DAddr} {
		if p.IsValid() && (r.Family == enforcer.FamilyAny || p.Addr().Is4() != (r.Family == enforcer.FamilyIPv4)) {
			return fmt.Errorf("address %s without the family match that gives its offset", p)
		}
	}
	switch r.L4 {
	case enforcer.L4Any, enforcer.L4ICMP, enforcer.L4TCP, enforcer.L4UDP, enforcer.L4ICMPv6:
	default:
		// Other protocols would split the "any other protocol" class
		// that the analysis treats as one.
		return fmt.Errorf("protocol %d", r.L4)
	}
	switch {
	case r.DPortFrom == 0 && r.DPortTo != 0:
		return errors.New("port range end without start")
	case r.DPortFrom != 0 && r.L4 != enforcer.L4TCP && r.L4 != enforcer.L4UDP:
		return errors.New("port match without TCP or UDP")
	case r.DPortTo != 0 && r.DPortTo < r.DPortFrom:
		return fmt.Errorf("reversed port range %d-%d", r.DPortFrom, r.DPortTo)
	}
	return nil
}

func unconditional(r enforcer.Rule) bool {
	return !r.CTEstablished && r.Family == enforcer.FamilyAny && !r.SAddr.IsValid() && !r.DAddr.IsValid() &&
		r.SAddrSet == "" && r.DAddrSet == "" && r.L4 == enforcer.L4Any && r.DPortFrom == 0
}

// needLocalError is why a packet without a local address cannot be
// decided: a rule that narrows the local side to prefix, and whose other
// matches all hold, must be decided.
type needLocalError struct {
	ref    RuleRef
	prefix netip.Prefix
}

func (e *needLocalError) Error() string { return e.invalid("local_ip").Error() }

func (e *needLocalError) invalid(field string) *store.Error {
	what := "rule"
	if e.ref.Kind == KindSMTP {
		what = "SMTP row"
	}
	return store.Invalid(field, "required",
		"%s %d narrows the server's address to %s: the server's address is needed to decide it", what, e.ref.Position, e.prefix)
}

// Evaluate returns what the group does with p. Invalid input gives a
// *store.Error of code store.CodeInvalid naming the field (direction,
// protocol, remote_ip, local_ip, dest_port or state); local_ip is required
// only when a rule that narrows the local side must be decided.
func (g *Group) Evaluate(p Packet) (Decision, error) {
	var fe fieldErrors
	checkPacket(&fe, p, packetFields)
	if err := fe.err(); err != nil {
		return Decision{}, err
	}
	d, err := g.chain(p.Direction).walk(p)
	if nl, ok := errors.AsType[*needLocalError](err); ok {
		return Decision{}, nl.invalid("local_ip")
	}
	return d, err
}

// EvaluateServer returns what the group does with p to or from server s,
// which must be one of the group's servers. An unset p.Local is taken from
// the server's addresses of p's family when a rule needs it: if they
// decide differently, local_ip is required. A server bound to no interface
// and not local is not enforced on this host, nor is the local server's
// traffic to itself: the decision is accept, of kind KindNotEnforced.
func (g *Group) EvaluateServer(s store.Server, p Packet) (Decision, error) {
	if s.SecurityGroup.ID != g.id {
		return Decision{}, fmt.Errorf("explain server %s: it is in group %s, not %s", s.ID, s.SecurityGroup.ID, g.id)
	}
	var fe fieldErrors
	checkPacket(&fe, p, packetFields)
	if err := fe.err(); err != nil {
		return Decision{}, err
	}
	if !enforced(s) {
		return notEnforced(p, fmt.Sprintf("server %s is bound to no interface and is not this host: no chain here sees its traffic", s.Name)), nil
	}
	if s.Local && (p.Remote.IsLoopback() || slices.Contains(s.Addresses, p.Remote)) {
		// The host's chains accept what goes over lo before they jump to
		// the group's.
		return notEnforced(p, "this host's traffic to itself goes over lo, which is accepted before its group is consulted"), nil
	}
	return g.chain(p.Direction).walkServer(p, s, packetFields)
}

func enforced(s store.Server) bool { return s.Local || s.Interface != "" }

func notEnforced(p Packet, note string) Decision {
	return Decision{Verdict: store.Accept, DecidedBy: RuleRef{Kind: KindNotEnforced}, Trace: []Step{}, Packet: p, Note: note}
}

// walkServer evaluates p on c, resolving an unset local address from s.
func (c *chain) walkServer(p Packet, s store.Server, names fieldNames) (Decision, error) {
	d, err := c.walk(p)
	nl, ok := errors.AsType[*needLocalError](err)
	if !ok {
		return d, err
	}
	var addrs []netip.Addr
	for _, a := range s.Addresses {
		if a.Is4() == p.Remote.Is4() {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return Decision{}, nl.invalid(names.local)
	}
	var first Decision
	for i, a := range addrs {
		q := p
		q.Local = a
		d, err := c.walk(q)
		if err != nil {
			return Decision{}, err
		}
		if i == 0 {
			first = d
			continue
		}
		if d.Verdict != first.Verdict || d.DecidedBy != first.DecidedBy {
			return Decision{}, store.Invalid(names.local, "required",
				"the decision depends on which of server %s's addresses is used (%s or %s)", s.Name, addrs[0], a)
		}
	}
	if len(addrs) > 1 {
		first.Note = fmt.Sprintf("decided alike for each of server %s's addresses of this family; shown for %s", s.Name, addrs[0])
	}
	return first, nil
}

// Between returns what happens to a packet from server src (in group
// srcGroup) to server dst (in group dstGroup). Forwarded traffic passes the
// sender's outbound group, then the receiver's inbound group; traffic from
// or to this host (a local server) is not forwarded, so only the local
// server's group sees it. Invalid input gives a *store.Error naming
// protocol, source_ip, dest_ip, dest_port or state.
func Between(src store.Server, srcGroup *Group, dst store.Server, dstGroup *Group, f Flow) (Path, error) {
	if src.SecurityGroup.ID != srcGroup.id {
		return Path{}, fmt.Errorf("explain server %s: it is in group %s, not %s", src.ID, src.SecurityGroup.ID, srcGroup.id)
	}
	if dst.SecurityGroup.ID != dstGroup.id {
		return Path{}, fmt.Errorf("explain server %s: it is in group %s, not %s", dst.ID, dst.SecurityGroup.ID, dstGroup.id)
	}
	var fe fieldErrors
	checkFlow(&fe, f)
	if err := fe.err(); err != nil {
		return Path{}, err
	}
	var err error
	if f.Source, f.Dest, err = flowAddrs(src, dst, f.Source, f.Dest); err != nil {
		return Path{}, err
	}
	out := Packet{Direction: store.Outbound, Protocol: f.Protocol, Remote: f.Dest, Local: f.Source, Port: f.Port, State: f.State}
	in := Packet{Direction: store.Inbound, Protocol: f.Protocol, Remote: f.Source, Local: f.Dest, Port: f.Port, State: f.State}

	var p Path
	switch {
	case src.ID == dst.ID:
		note := "a server's traffic to itself does not leave it"
		p.Outbound, p.Inbound = notEnforced(out, note), notEnforced(in, note)
	default:
		if p.Outbound, err = srcGroup.side(src, out, dst.Local, outboundFields,
			"traffic to this host is delivered, not forwarded: the sender's outbound group does not see it"); err != nil {
			return Path{}, err
		}
		if p.Inbound, err = dstGroup.side(dst, in, src.Local, inboundFields,
			"traffic from this host is sent, not forwarded: the receiver's inbound group does not see it"); err != nil {
			return Path{}, err
		}
	}
	p.Verdict = store.Accept
	if p.Outbound.Verdict == store.Drop || p.Inbound.Verdict == store.Drop {
		p.Verdict = store.Drop
	}
	if p.Outbound.Verdict == store.Drop {
		p.Inbound.Note = "the packet never reaches this group: the sender's outbound group drops it; shown as if it did"
	}
	return p, nil
}

// side evaluates one side of a flow: s's group sees p unless s is not
// enforced or the other end is this host (peerLocal), which makes the
// traffic local rather than forwarded.
func (g *Group) side(s store.Server, p Packet, peerLocal bool, names fieldNames, localNote string) (Decision, error) {
	switch {
	case !enforced(s):
		return notEnforced(p, fmt.Sprintf("server %s is bound to no interface and is not this host: no chain here sees its traffic", s.Name)), nil
	case peerLocal && !s.Local:
		return notEnforced(p, localNote), nil
	}
	return g.chain(p.Direction).walkServer(p, s, names)
}

// flowAddrs fills in the unset addresses of a flow from the servers'.
func flowAddrs(src, dst store.Server, from, to netip.Addr) (netip.Addr, netip.Addr, error) {
	first := func(s store.Server, v4 bool) netip.Addr {
		for _, a := range s.Addresses {
			if a.Is4() == v4 {
				return a
			}
		}
		return netip.Addr{}
	}
	var v4 bool
	switch {
	case from.IsValid():
		v4 = from.Is4()
	case to.IsValid():
		v4 = to.Is4()
	default:
		// IPv4 if both servers have it, else IPv6 if both do.
		v4 = first(src, true).IsValid() && first(dst, true).IsValid() ||
			!(first(src, false).IsValid() && first(dst, false).IsValid())
	}
	family := "IPv6"
	if v4 {
		family = "IPv4"
	}
	var fe fieldErrors
	if !from.IsValid() {
		if from = first(src, v4); !from.IsValid() {
			fe.add("source_ip", "required", "server %s has no %s address: give source_ip", src.Name, family)
		}
	}
	if !to.IsValid() {
		if to = first(dst, v4); !to.IsValid() {
			fe.add("dest_ip", "required", "server %s has no %s address: give dest_ip", dst.Name, family)
		}
	}
	return from, to, fe.err()
}

// walk evaluates p on the chain as the kernel does: rules in order, the
// first whose every match holds decides. p is valid. When p has no local
// address and a rule's decision depends on it, walk returns a
// *needLocalError.
func (c *chain) walk(p Packet) (Decision, error) {
	q := packetOf(p)
	d := Decision{Packet: p, Trace: make([]Step, 0, len(c.rules))}
	for i := range c.rules {
		e := &c.rules[i]
		st := Step{RuleRef: c.refs[i], Action: store.Policy(e.first().Verdict.Kind)}
		part, reason := c.mismatch(e, q)
		if part == PartLocalIP && reason == "" {
			return Decision{}, &needLocalError{ref: c.refs[i], prefix: c.localPrefix(e.first())}
		}
		st.Matched, st.Mismatch, st.Reason = part == "", part, reason
		d.Trace = append(d.Trace, st)
		if st.Matched {
			d.Verdict, d.DecidedBy = st.Action, st.RuleRef
			return d, nil
		}
	}
	// NewGroup made sure that the last rule is unconditional.
	panic("explain: chain without a last unconditional rule")
}

// pkt is a valid packet reduced to what the kernel's matches read.
type pkt struct {
	fam         enforcer.Family
	remote      netip.Addr
	local       netip.Addr // may be unset
	l4          uint8
	port        uint16
	established bool
}

func packetOf(p Packet) pkt {
	return pkt{fam: famOf(p.Remote), remote: p.Remote, local: p.Local, l4: l4Of(p), port: p.Port, established: p.State == Established}
}

func (c *chain) localPrefix(r enforcer.Rule) netip.Prefix {
	if c.dir == store.Inbound {
		return r.DAddr
	}
	return r.SAddr
}

func (c *chain) remotePrefix(r enforcer.Rule) netip.Prefix {
	if c.dir == store.Inbound {
		return r.SAddr
	}
	return r.DAddr
}

// mismatch returns the first part of entry e that q does not match, in
// the order the kernel evaluates them (the order of enforcer.Rule's
// fields), and why; "" when e matches. It returns PartLocalIP with no
// reason when every other part matches and the local address, unknown,
// decides. An entry of several kernel rules matches when one of them
// does; otherwise the one that went furthest says why.
func (c *chain) mismatch(e *entry, q pkt) (Part, string) {
	if len(e.alts) == 1 {
		return c.altMismatch(e.alts[0], e.sets[0], e, q)
	}
	var part Part
	var reason string
	best := -1
	for i, r := range e.alts {
		p, why := c.altMismatch(r, e.sets[i], e, q)
		if p == "" {
			return "", ""
		}
		if rank := c.partRank(p, why); rank > best {
			best, part, reason = rank, p, why
		}
	}
	return part, reason
}

// partRank orders the parts of a rule as the kernel checks them; a local
// address that is needed ranks last (every other part matched).
func (c *chain) partRank(p Part, reason string) int {
	order := []Part{PartState, PartFamily, PartRemoteIP, PartLocalIP, PartProtocol, PartPort}
	if c.dir == store.Outbound {
		order = []Part{PartState, PartFamily, PartLocalIP, PartRemoteIP, PartProtocol, PartPort}
	}
	if p == PartLocalIP && reason == "" {
		return len(order)
	}
	return slices.Index(order, p)
}

// altMismatch is mismatch for one kernel rule r of entry e, whose remote
// side is set when not nil.
func (c *chain) altMismatch(r enforcer.Rule, set *addrSet, e *entry, q pkt) (Part, string) {
	if r.CTEstablished && !q.established {
		return PartState, "a new packet; the rule matches established and related packets only"
	}
	if r.Family != enforcer.FamilyAny && r.Family != q.fam {
		return PartFamily, fmt.Sprintf("an %s packet; the rule matches %s only", famName(q.fam), famName(r.Family))
	}
	// The kernel checks the source address before the destination: the
	// remote side first for inbound, the local side first for outbound.
	checks := []Part{PartRemoteIP, PartLocalIP}
	if c.dir == store.Outbound {
		checks = []Part{PartLocalIP, PartRemoteIP}
	}
	unknownLocal := false
	for _, part := range checks {
		prefix, addr := c.remotePrefix(r), q.remote
		if part == PartLocalIP {
			prefix, addr = c.localPrefix(r), q.local
		}
		switch {
		case part == PartRemoteIP && set != nil:
			if !set.contains(addrU128(addr)) {
				return part, fmt.Sprintf("%s is not in %s", addr, e.describeRemote())
			}
		case !prefix.IsValid():
		case !addr.IsValid():
			unknownLocal = true // decided below, if nothing else fails
		case !prefix.Contains(addr):
			return part, fmt.Sprintf("%s is not in %s", addr, prefix)
		}
	}
	if r.L4 != enforcer.L4Any && uint8(r.L4) != q.l4 {
		return PartProtocol, fmt.Sprintf("a %s packet; the rule matches %s", l4Name(q.l4), l4Name(uint8(r.L4)))
	}
	if r.DPortFrom != 0 {
		lo, hi := r.DPortFrom, r.DPortTo
		if hi == 0 {
			hi = lo
		}
		if q.port < lo || q.port > hi {
			return PartPort, fmt.Sprintf("port %d is not %s", q.port, portsText(lo, hi))
		}
	}
	if unknownLocal {
		return PartLocalIP, ""
	}
	return "", ""
}

func portsText(lo, hi uint16) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func famName(f enforcer.Family) string {
	if f == enforcer.FamilyIPv4 {
		return "IPv4"
	}
	return "IPv6"
}

// ruleName names a rule of a chain for messages: "rule 3", "SMTP row 2",
// "the default policy".
func ruleName(ref RuleRef) string {
	switch ref.Kind {
	case KindSMTP:
		return fmt.Sprintf("SMTP row %d", ref.Position)
	case KindRule:
		if ref.Position == 0 {
			return "rule " + ref.RuleID
		}
		return fmt.Sprintf("rule %d", ref.Position)
	case KindDefaultPolicy:
		return "the default policy"
	case KindStateful:
		return "the stateful rule"
	case KindCompileError:
		return "the compile-error rule"
	}
	return string(ref.Kind)
}
