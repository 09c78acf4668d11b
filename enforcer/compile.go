package enforcer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-fw/rampart/store"
)

// Names of the fixed objects of the table.
const (
	chainEgress   = "egress"   // forward hook, priority -1: sender's outbound group
	chainIngress  = "ingress"  // forward hook, priority 0: receiver's inbound group
	chainHostIn   = "host_in"  // input hook: the local server's inbound group
	chainHostOut  = "host_out" // output hook: the local server's outbound group
	mapToServer   = "to_server"
	mapFromServer = "from_server"
)

// Rule tags that are not rule IDs. Counters are keyed by tag.
const (
	TagDefaultIn      = "default_in"
	TagDefaultOut     = "default_out"
	TagEstablishedIn  = "established_in"
	TagEstablishedOut = "established_out"
	TagCompileError   = "compile_error"
	tagLoopback       = "loopback"
	tagLocal          = "local"
	tagDispatch       = "dispatch"
)

// maxIfNameLen is IFNAMSIZ-1: the kernel's interface names are at most 15 bytes.
const maxIfNameLen = 15

// Family restricts a rule to one IP version (meta nfproto).
type Family uint8

// Families, with the kernel's NFPROTO values.
const (
	FamilyAny  Family = 0
	FamilyIPv4 Family = 2  // NFPROTO_IPV4
	FamilyIPv6 Family = 10 // NFPROTO_IPV6
)

// L4 is a transport protocol number (meta l4proto).
type L4 uint8

// Transport protocols.
const (
	L4Any    L4 = 0
	L4ICMP   L4 = 1
	L4TCP    L4 = 6
	L4UDP    L4 = 17
	L4ICMPv6 L4 = 58
)

// Verdict is what a matching rule does.
type Verdict struct {
	Kind  string // "accept", "drop" or "jump"
	Chain string // for "jump"
}

// Rule is one nftables rule in a backend-neutral form. Every field set is a
// match, ANDed in the order they are declared here; both backends render
// them in that order so that the kernel holds the same expressions whether
// the ruleset was sent over netlink or loaded from preview text.
type Rule struct {
	Tag           string // comment / UserData: rule ID or one of the Tag* constants
	IIFName       string // iifname "x"
	OIFName       string // oifname "x"
	CTEstablished bool   // ct state established,related
	Family        Family // meta nfproto
	SAddr         netip.Prefix
	DAddr         netip.Prefix
	L4            L4
	DPortFrom     uint16 // tcp/udp dport; 0 = any
	DPortTo       uint16 // range end; 0 = single port
	VMapIIF       string // iifname vmap @map: dispatch, no verdict of its own
	VMapOIF       string // oifname vmap @map
	Counter       bool
	Verdict       Verdict
}

// Chain is a chain of the table with its rules in order. Hook is empty for
// regular chains.
type Chain struct {
	Name     string
	Hook     string // "forward", "input", "output" or ""
	Priority int32
	Rules    []Rule
}

// GroupChains are the two chains compiled from one security group.
type GroupChains struct {
	GroupID    string
	Generation int64
	In, Out    Chain
}

// MapElem is one element of a dispatch verdict map: interface -> jump chain.
type MapElem struct {
	IfName string
	Chain  string
}

// Ruleset is the compiled form of a snapshot: everything the table holds.
type Ruleset struct {
	Generation int64
	Groups     []GroupChains // ordered by group ID
	ToServer   []MapElem     // ordered by interface
	FromServer []MapElem     // ordered by interface
	HostIn     Chain
	HostOut    Chain
	// Errors holds, per group ID, why the group could not be compiled as
	// asked. Such a group gets fail-closed chains (drop everything), which
	// the reconciler replaces with the group's last applied chains if any.
	Errors map[string]error
}

// Group returns the compiled chains of a group.
func (rs *Ruleset) Group(id string) (GroupChains, bool) {
	i, ok := slices.BinarySearchFunc(rs.Groups, id, func(g GroupChains, id string) int {
		return strings.Compare(g.GroupID, id)
	})
	if !ok {
		return GroupChains{}, false
	}
	return rs.Groups[i], true
}

// baseChains are the hooked chains; they never change.
func baseChains() []Chain {
	return []Chain{
		{Name: chainEgress, Hook: "forward", Priority: -1, Rules: []Rule{{Tag: tagDispatch, VMapIIF: mapFromServer}}},
		{Name: chainIngress, Hook: "forward", Priority: 0, Rules: []Rule{{Tag: tagDispatch, VMapOIF: mapToServer}}},
	}
}

// ChainNames returns the inbound and outbound chain names of a group.
//
// A UUID's 32 hex digits (dashes removed) give "sg_<32 hex>_in", 38
// characters: well within NFT_CHAIN_MAXNAMELEN (256 since Linux 4.13), stable,
// and readable back to the group. Any other ID is hashed (sha256, first 16
// hex digits) so that names only ever hold [a-z0-9_] and stay short.
func ChainNames(groupID string) (in, out string) {
	base := "sg_" + chainID(groupID)
	return base + "_in", base + "_out"
}

func chainID(groupID string) string {
	s := strings.ToLower(strings.ReplaceAll(groupID, "-", ""))
	ok := s != "" && len(s) <= 32
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	h := sha256.Sum256([]byte(groupID))
	return "h" + hex.EncodeToString(h[:8])
}

// Compile builds the Ruleset of a snapshot. It is pure: the same snapshot
// always gives the same Ruleset. Problems confined to a group (a rule that
// cannot be expressed, an interface claimed twice) are reported in
// Ruleset.Errors and do not stop the other groups.
func Compile(snap store.Snapshot) *Ruleset {
	var c Compiler
	return c.Compile(snap)
}

// Compiler compiles snapshots as Compile does, but remembers each group's
// compiled chains: a group whose settings and rules are the same as in the
// previous call keeps its chains, which makes recompiling after a change to
// one group cost a comparison per rule instead of a compilation, and lets
// the diff recognise the untouched chains by identity. The chains it returns
// are shared between Rulesets and must not be modified. The zero Compiler is
// ready to use; it is not safe for concurrent use.
type Compiler struct {
	groups map[string]compiledGroup
}

// compiledGroup is what a group was compiled from, and into.
type compiledGroup struct {
	key   groupKey
	rules []store.Rule // a private copy
	gc    GroupChains
	err   error
}

// groupKey holds the settings of a group that its chains depend on.
type groupKey struct {
	stateful      bool
	smtpBlocked   bool
	inPol, outPol store.Policy
}

func keyOf(g store.Group) groupKey {
	return groupKey{g.Stateful, g.EnableDefaultSecurity, g.InboundDefaultPolicy, g.OutboundDefaultPolicy}
}

// group returns the chains of g, compiled now or reused.
func (c *Compiler) group(g store.Group, rules []store.Rule, next map[string]compiledGroup) (GroupChains, error) {
	if old, ok := c.groups[g.ID]; ok && old.key == keyOf(g) && slices.Equal(old.rules, rules) {
		old.gc.Generation = g.Generation // e.g. a server joined: same chains
		next[g.ID] = old
		return old.gc, old.err
	}
	gc, err := compileGroup(g, rules)
	if err != nil {
		gc = failClosed(g)
	}
	// Clipped, so that an append by a user of the Ruleset cannot write
	// into chains that other Rulesets share.
	gc.In.Rules, gc.Out.Rules = slices.Clip(gc.In.Rules), slices.Clip(gc.Out.Rules)
	next[g.ID] = compiledGroup{key: keyOf(g), rules: slices.Clone(rules), gc: gc, err: err}
	return gc, err
}

// Compile builds the Ruleset of snap, reusing the chains of the groups that
// did not change since the previous call.
func (c *Compiler) Compile(snap store.Snapshot) *Ruleset {
	rs := &Ruleset{Generation: snap.Generation, Errors: map[string]error{}}
	groups := snap.Groups
	if !slices.IsSortedFunc(groups, func(a, b store.Group) int { return strings.Compare(a.ID, b.ID) }) {
		groups = slices.Clone(groups)
		slices.SortFunc(groups, func(a, b store.Group) int { return strings.Compare(a.ID, b.ID) })
	}
	known := make(map[string]*GroupChains, len(groups))
	next := make(map[string]compiledGroup, len(groups))
	rs.Groups = make([]GroupChains, 0, len(groups))
	for _, g := range groups {
		gc, err := c.group(g, snap.Rules[g.ID], next)
		if err != nil {
			rs.Errors[g.ID] = err
		}
		rs.Groups = append(rs.Groups, gc)
	}
	for i := range rs.Groups {
		known[rs.Groups[i].GroupID] = &rs.Groups[i]
	}
	c.groups = next

	servers := snap.Servers
	if !slices.IsSortedFunc(servers, func(a, b store.Server) int { return strings.Compare(a.ID, b.ID) }) {
		servers = slices.Clone(servers)
		slices.SortFunc(servers, func(a, b store.Server) int { return strings.Compare(a.ID, b.ID) })
	}
	ifOwner := map[string]string{} // interface -> server ID
	var local *store.Server
	for i := range servers {
		s := &servers[i]
		gid := s.SecurityGroup.ID
		gc := known[gid]
		if gc == nil {
			continue // the store never lets this happen; nothing to jump to
		}
		in, out := gc.In.Name, gc.Out.Name
		switch {
		case s.Local:
			if local != nil {
				rs.addError(gid, fmt.Errorf("server %s: only one local server is enforced, %s already is", s.ID, local.ID))
				continue
			}
			local = s
			rs.HostIn.Rules = append(rs.HostIn.Rules, Rule{Tag: tagLocal, Verdict: Verdict{Kind: "jump", Chain: in}})
			rs.HostOut.Rules = append(rs.HostOut.Rules, Rule{Tag: tagLocal, Verdict: Verdict{Kind: "jump", Chain: out}})
		case s.Interface == "":
			// Nothing passes through this host for it: nothing to enforce here.
		case len(s.Interface) > maxIfNameLen || strings.ContainsRune(s.Interface, '"'):
			rs.addError(gid, fmt.Errorf("server %s: invalid interface name %q", s.ID, s.Interface))
		case ifOwner[s.Interface] != "":
			rs.addError(gid, fmt.Errorf("server %s: interface %s is already used by server %s", s.ID, s.Interface, ifOwner[s.Interface]))
		default:
			ifOwner[s.Interface] = s.ID
			rs.ToServer = append(rs.ToServer, MapElem{IfName: s.Interface, Chain: in})
			rs.FromServer = append(rs.FromServer, MapElem{IfName: s.Interface, Chain: out})
		}
	}
	byIf := func(a, b MapElem) int { return strings.Compare(a.IfName, b.IfName) }
	slices.SortFunc(rs.ToServer, byIf)
	slices.SortFunc(rs.FromServer, byIf)
	rs.HostIn = Chain{Name: chainHostIn, Hook: "input", Rules: append([]Rule{{Tag: tagLoopback, IIFName: "lo", Verdict: Verdict{Kind: "accept"}}}, rs.HostIn.Rules...)}
	rs.HostOut = Chain{Name: chainHostOut, Hook: "output", Rules: append([]Rule{{Tag: tagLoopback, OIFName: "lo", Verdict: Verdict{Kind: "accept"}}}, rs.HostOut.Rules...)}
	return rs
}

func (rs *Ruleset) addError(groupID string, err error) {
	if prev := rs.Errors[groupID]; prev != nil {
		err = fmt.Errorf("%w; %w", prev, err)
	}
	rs.Errors[groupID] = err
}

// compileGroup builds a group's two chains: stateful exception first, then
// SMTP blocking (outbound), the rules in position order, the default policy.
func compileGroup(g store.Group, rules []store.Rule) (GroupChains, error) {
	inName, outName := ChainNames(g.ID)
	gc := GroupChains{GroupID: g.ID, Generation: g.Generation, In: Chain{Name: inName}, Out: Chain{Name: outName}}
	if g.Stateful {
		gc.In.Rules = append(gc.In.Rules, Rule{Tag: TagEstablishedIn, CTEstablished: true, Counter: true, Verdict: Verdict{Kind: "accept"}})
		gc.Out.Rules = append(gc.Out.Rules, Rule{Tag: TagEstablishedOut, CTEstablished: true, Counter: true, Verdict: Verdict{Kind: "accept"}})
	}
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b store.Rule) int { return a.Position - b.Position })
	if g.EnableDefaultSecurity {
		// The six rules the API lists, before any other, each tagged with
		// its ID so that counters (and the packet tester) name the row.
		sorted = append(store.SMTPRules(g.ID), sorted...)
	}
	for _, r := range sorted {
		cr, err := compileRule(r)
		if err != nil {
			return GroupChains{}, fmt.Errorf("compile group %s: rule %s: %w", g.ID, r.ID, err)
		}
		switch r.Direction {
		case store.Inbound:
			gc.In.Rules = append(gc.In.Rules, cr)
		case store.Outbound:
			gc.Out.Rules = append(gc.Out.Rules, cr)
		default:
			return GroupChains{}, fmt.Errorf("compile group %s: rule %s: unknown direction %q", g.ID, r.ID, r.Direction)
		}
	}
	in, err := policyVerdict(g.InboundDefaultPolicy)
	if err != nil {
		return GroupChains{}, fmt.Errorf("compile group %s: inbound default policy: %w", g.ID, err)
	}
	out, err := policyVerdict(g.OutboundDefaultPolicy)
	if err != nil {
		return GroupChains{}, fmt.Errorf("compile group %s: outbound default policy: %w", g.ID, err)
	}
	gc.In.Rules = append(gc.In.Rules, Rule{Tag: TagDefaultIn, Counter: true, Verdict: in})
	gc.Out.Rules = append(gc.Out.Rules, Rule{Tag: TagDefaultOut, Counter: true, Verdict: out})
	return gc, nil
}

// failClosed is what a group that cannot be compiled gets when nothing was
// applied for it before: dropping is safer than letting everything through.
func failClosed(g store.Group) GroupChains {
	in, out := ChainNames(g.ID)
	drop := Rule{Tag: TagCompileError, Counter: true, Verdict: Verdict{Kind: "drop"}}
	return GroupChains{
		GroupID: g.ID, Generation: g.Generation,
		In:  Chain{Name: in, Rules: []Rule{drop}},
		Out: Chain{Name: out, Rules: []Rule{drop}},
	}
}

func policyVerdict(p store.Policy) (Verdict, error) {
	switch p {
	case store.Accept, "":
		// Absent means accept, as in the API.
		return Verdict{Kind: "accept"}, nil
	case store.Drop:
		return Verdict{Kind: "drop"}, nil
	}
	return Verdict{}, fmt.Errorf("unknown policy %q", p)
}

// compileRule turns a store rule into an nftables rule. The rule's IP range
// is the remote side: the source of inbound traffic, the destination of
// outbound traffic; DestIPRange, when set, narrows the other side.
func compileRule(r store.Rule) (Rule, error) {
	out := Rule{Tag: r.ID, Counter: true}
	remote, other := r.IPRange, r.DestIPRange
	if r.Direction == store.Inbound {
		out.SAddr, out.DAddr = norm(remote), norm(other)
	} else {
		out.DAddr, out.SAddr = norm(remote), norm(other)
	}
	fam, err := family(remote, other)
	if err != nil {
		return Rule{}, err
	}
	out.Family = fam
	// A /0 matches every address of its family: nfproto alone says it.
	if out.SAddr.IsValid() && out.SAddr.Bits() == 0 {
		out.SAddr = netip.Prefix{}
	}
	if out.DAddr.IsValid() && out.DAddr.Bits() == 0 {
		out.DAddr = netip.Prefix{}
	}

	switch r.Protocol {
	case store.TCP, store.UDP:
		out.L4 = L4TCP
		if r.Protocol == store.UDP {
			out.L4 = L4UDP
		}
		if r.DestPortFrom != 0 {
			out.DPortFrom = r.DestPortFrom
			if r.DestPortTo != 0 && r.DestPortTo != r.DestPortFrom {
				if r.DestPortTo < r.DestPortFrom {
					return Rule{}, fmt.Errorf("port range %d-%d is reversed", r.DestPortFrom, r.DestPortTo)
				}
				out.DPortTo = r.DestPortTo
			}
		} else if r.DestPortTo != 0 {
			return Rule{}, fmt.Errorf("port range end %d without start", r.DestPortTo)
		}
	case store.ICMP:
		switch fam {
		case FamilyIPv4:
			out.L4 = L4ICMP
		case FamilyIPv6:
			out.L4 = L4ICMPv6
		default:
			return Rule{}, fmt.Errorf("ICMP rule needs an IP range to choose ICMP or ICMPv6")
		}
	case store.ANY:
	default:
		return Rule{}, fmt.Errorf("unknown protocol %q", r.Protocol)
	}
	if !r.Protocol.HasPorts() && (r.DestPortFrom != 0 || r.DestPortTo != 0) {
		return Rule{}, fmt.Errorf("ports with protocol %s", r.Protocol)
	}
	switch r.Action {
	case store.Accept:
		out.Verdict = Verdict{Kind: "accept"}
	case store.Drop:
		out.Verdict = Verdict{Kind: "drop"}
	default:
		return Rule{}, fmt.Errorf("unknown action %q", r.Action)
	}
	return out, nil
}

func norm(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func family(ps ...netip.Prefix) (Family, error) {
	f := FamilyAny
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		pf := FamilyIPv6
		if norm(p).Addr().Is4() {
			pf = FamilyIPv4
		}
		if f != FamilyAny && f != pf {
			return 0, fmt.Errorf("IP ranges mix IPv4 and IPv6")
		}
		f = pf
	}
	return f, nil
}
