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
	// TagLogLimited counts, per group, the packets that logged rules
	// decided but did not log because the group's log limit refused them.
	TagLogLimited = "log_limited"
	tagLoopback   = "loopback"
	tagLocal      = "local"
	tagDispatch   = "dispatch"
)

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
	// SAddrSet names a set of the table the source address must be in
	// (ip saddr @set): a rule has SAddr or SAddrSet, not both. Family is
	// then set, to the set's.
	SAddrSet  string
	DAddr     netip.Prefix
	DAddrSet  string // ip daddr @set, as SAddrSet
	L4        L4
	DPortFrom uint16 // tcp/udp dport; 0 = any
	DPortTo   uint16 // range end; 0 = single port
	VMapIIF   string // iifname vmap @map: dispatch, no verdict of its own
	VMapOIF   string // oifname vmap @map
	// Counter names the counter object the rule counts in (counter name
	// "X"), "" for none. A named counter lives in the table, not in the
	// rule, so it keeps counting across rewrites of the chain.
	Counter string
	// Log, when its Chain or Prefix is set, logs what the rule decides
	// (see Log).
	Log     Log
	Verdict Verdict
}

// Log is how a rule logs the packets it decides through NFLOG, within its
// group's rate limit. In a group chain, Chain is set: the rule counts,
// then goes to Chain (goto), which the compiler adds to the group's
// LogChains; that chain's first rule logs while the group's limit object
// allows (limit name Limit, log prefix Prefix group Group) and decides,
// and its second counts what the limit refused (TagLogLimited) and decides
// the same. A rule cannot both log and decide through a limit in one rule:
// a limit that refuses ends the rule without its verdict.
type Log struct {
	Chain  string // goto Chain (the group chain's rule)
	Limit  string // limit name "X" (the log chain's first rule)
	Prefix string // log prefix "P" group Group
	Group  uint16
}

func (l Log) logs() bool { return l.Prefix != "" }

// Chain is a chain of the table with its rules in order. Hook is empty for
// regular chains.
type Chain struct {
	Name     string
	Hook     string // "forward", "input", "output" or ""
	Priority int32
	Rules    []Rule
}

// GroupChains are the chains compiled from one security group, and the
// objects of the table that their rules name.
type GroupChains struct {
	GroupID    string
	Generation int64
	In, Out    Chain
	// LogChains are the chains of the rules that log (see Log), ordered
	// by name.
	LogChains []Chain
	// Objects are the named counters and the limit object of the group,
	// ordered by kind and name.
	Objects []Object
}

// ObjectKind is the kind of a stateful object of the table.
type ObjectKind uint8

// Object kinds, with the kernel's NFT_OBJECT values.
const (
	ObjCounter ObjectKind = 1 // NFT_OBJECT_COUNTER
	ObjLimit   ObjectKind = 4 // NFT_OBJECT_LIMIT
)

// Object is a stateful object of the table that rules use by name.
//
// A counter object's name is derived from its group and tag alone, so the
// same rule finds the same counter after any rewrite of its chain. A limit
// object's name also holds its rate and burst: the kernel cannot change a
// limit object in place, so new settings make a new object, which the
// rewritten rules then use.
type Object struct {
	Kind  ObjectKind
	Name  string
	Tag   string // counter: the rule tag it counts, or TagLogLimited
	Rate  uint64 // limit: packets per second
	Burst uint32 // limit: packets above the rate
}

func compareObjects(a, b Object) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.Name, b.Name)
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
	// Sets are the named sets the group chains match (see sets.go),
	// ordered by name, with their elements.
	Sets []Set
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
	// Log is where and how fast logged packets go; a change recompiles
	// the groups it concerns.
	Log    LogConfig
	groups map[string]compiledGroup
	// ipsets and members are the compiled sets of IP sets and of
	// referenced groups, by ID.
	ipsets, members map[string]compiledSets
}

// compiledGroup is what a group was compiled from, and into.
type compiledGroup struct {
	key groupKey
	// rules are the snapshot's own slice: snapshots are never modified
	// (store.SnapshotSince shares unchanged groups' slices), so an
	// unchanged group is recognised by identity, without comparing its
	// rules one by one (1,000 groups of 50 rules cost 0.2 s a sync).
	rules []store.Rule
	gc    GroupChains
	sets  []string // the kernel sets its chains match (chainSets)
}

// groupKey holds the settings of a group that its chains depend on.
type groupKey struct {
	stateful        bool
	smtpEnabled     bool
	inPol, outPol   store.Policy
	logDefaultDrops bool
	logGroup        uint16
	logLimit        LogLimit
}

func keyOf(g store.Group, cfg LogConfig) groupKey {
	return groupKey{g.Stateful, g.SMTPEnabled, g.InboundDefaultPolicy, g.OutboundDefaultPolicy,
		g.LogDefaultDrops, cfg.nflogGroup(), cfg.limitFor(g.ID)}
}

// group returns the chains of g, compiled now or reused. A group with rows
// the store could not read is not compiled: what they meant is unknown,
// so the group fails closed.
func (c *Compiler) group(g store.Group, rules []store.Rule, snap *store.Snapshot, next map[string]compiledGroup) (GroupChains, error) {
	if unreadable := snap.Unreadable[g.ID]; len(unreadable) > 0 {
		return failClosed(g), fmt.Errorf("stored data cannot be read: %s", strings.Join(unreadable, "; "))
	}
	// A rule whose IP set or group has no contents in the snapshot would
	// match nothing, or be guessed at: fail closed, as for a row that
	// cannot be read.
	if missing := missingRemotes(rules, snap); len(missing) > 0 {
		return failClosed(g), fmt.Errorf("stored data cannot be read: %s", strings.Join(missing, "; "))
	}
	key := keyOf(g, c.Log)
	if old, ok := c.groups[g.ID]; ok && old.key == key && sameStoreRules(old.rules, rules) {
		old.gc.Generation = g.Generation // e.g. a server joined: same chains
		next[g.ID] = old
		return old.gc, nil
	}
	gc := compileGroup(g, rules, c.Log)
	// Clipped, so that an append by a user of the Ruleset cannot write
	// into chains that other Rulesets share.
	gc.In.Rules, gc.Out.Rules = slices.Clip(gc.In.Rules), slices.Clip(gc.Out.Rules)
	gc.LogChains, gc.Objects = slices.Clip(gc.LogChains), slices.Clip(gc.Objects)
	next[g.ID] = compiledGroup{key: key, rules: rules, gc: gc, sets: chainSets(gc)}
	return gc, nil
}

// sameStoreRules reports whether a group's rules are the same: at once when
// they are the same slice, else rule by rule.
func sameStoreRules(a, b []store.Rule) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b)
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
		gc, err := c.group(g, snap.Rules[g.ID], &snap, next)
		if err != nil {
			rs.Errors[g.ID] = err
		}
		rs.Groups = append(rs.Groups, gc)
	}
	for i := range rs.Groups {
		known[rs.Groups[i].GroupID] = &rs.Groups[i]
	}
	c.groups = next
	c.compileSets(rs, &snap)

	servers := snap.Servers
	if !slices.IsSortedFunc(servers, func(a, b store.Server) int { return strings.Compare(a.ID, b.ID) }) {
		servers = slices.Clone(servers)
		slices.SortFunc(servers, func(a, b store.Server) int { return strings.Compare(a.ID, b.ID) })
	}
	for i := range servers {
		s := &servers[i]
		gc := known[s.SecurityGroup.ID]
		if gc == nil || s.Unreadable != "" {
			// The store never lets the first happen; the second fails the
			// group (see Compiler.group), and where the server's traffic
			// passes is unknown.
			continue
		}
		in, out := gc.In.Name, gc.Out.Name
		switch {
		case s.Local:
			rs.HostIn.Rules = append(rs.HostIn.Rules, Rule{Tag: tagLocal, Verdict: Verdict{Kind: "jump", Chain: in}})
			rs.HostOut.Rules = append(rs.HostOut.Rules, Rule{Tag: tagLocal, Verdict: Verdict{Kind: "jump", Chain: out}})
		case s.Interface == "":
			// Nothing passes through this host for it: nothing to enforce here.
		default:
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
// SMTP blocking (outbound), the rules in position order, the default
// policy; then the chains of the rules that log and the objects that all
// of them name. The store has checked every field (rows it could not read
// never get here), so there is nothing left to refuse.
func compileGroup(g store.Group, rules []store.Rule, cfg LogConfig) GroupChains {
	inName, outName := ChainNames(g.ID)
	gc := GroupChains{GroupID: g.ID, Generation: g.Generation, In: Chain{Name: inName}, Out: Chain{Name: outName}}
	// Sized for one kernel rule per rule, the SMTP rows and the group's own
	// (the compiled chains are kept: appends past them would keep up to
	// twice the memory they need).
	nIn, nOut := 2, 2+2*len(store.SMTPPorts)
	for _, r := range rules {
		if r.Direction == store.Inbound {
			nIn++
		} else {
			nOut++
		}
	}
	gc.In.Rules, gc.Out.Rules = make([]Rule, 0, nIn), make([]Rule, 0, nOut)
	// log says whether each rule of In and Out logs.
	logIn, logOut := make([]bool, 0, nIn), make([]bool, 0, nOut)
	base := groupBase(g.ID)
	add := func(dir store.Direction, r Rule, log bool) {
		r.Counter = objectName(base, "", r.Tag)
		if dir == store.Inbound {
			gc.In.Rules, logIn = append(gc.In.Rules, r), append(logIn, log)
		} else {
			gc.Out.Rules, logOut = append(gc.Out.Rules, r), append(logOut, log)
		}
	}
	if g.Stateful {
		add(store.Inbound, Rule{Tag: TagEstablishedIn, CTEstablished: true, Verdict: Verdict{Kind: "accept"}}, false)
		add(store.Outbound, Rule{Tag: TagEstablishedOut, CTEstablished: true, Verdict: Verdict{Kind: "accept"}}, false)
	}
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b store.Rule) int { return a.Position - b.Position })
	if !g.SMTPEnabled {
		// The six rules the API lists, before any other, each tagged with
		// its ID so that counters (and the packet tester) name the row.
		// Their drops are logged as the default drops are: both are
		// Rampart's, not the user's.
		smtp := store.SMTPRules(g.ID)
		for i := range smtp {
			smtp[i].Log = g.LogDefaultDrops
		}
		sorted = append(smtp, sorted...)
	}
	for _, r := range sorted {
		for _, kr := range compileRules(r) {
			add(r.Direction, kr, r.Log)
		}
	}
	add(store.Inbound, Rule{Tag: TagDefaultIn, Verdict: verdict(g.InboundDefaultPolicy)},
		g.LogDefaultDrops && g.InboundDefaultPolicy == store.Drop)
	add(store.Outbound, Rule{Tag: TagDefaultOut, Verdict: verdict(g.OutboundDefaultPolicy)},
		g.LogDefaultDrops && g.OutboundDefaultPolicy == store.Drop)

	gc.Objects = make([]Object, 0, len(gc.In.Rules)+len(gc.Out.Rules)+2)
	for _, side := range []struct {
		dir   store.Direction
		rules []Rule
		log   []bool
	}{{store.Inbound, gc.In.Rules, logIn}, {store.Outbound, gc.Out.Rules, logOut}} {
		for i := range side.rules {
			r := &side.rules[i]
			// The kernel rules of one store rule (one per set it
			// matches) follow each other and share its counter and log
			// chain.
			if i > 0 && side.rules[i-1].Tag == r.Tag {
				r.Log = side.rules[i-1].Log
				continue
			}
			gc.Objects = append(gc.Objects, Object{Kind: ObjCounter, Name: r.Counter, Tag: r.Tag})
			if side.log[i] {
				gc.LogChains = append(gc.LogChains, logged(r, g.ID, side.dir, cfg))
			}
		}
	}
	if len(gc.LogChains) > 0 {
		l := cfg.limitFor(g.ID)
		gc.Objects = append(gc.Objects,
			Object{Kind: ObjCounter, Name: limitedName(g.ID), Tag: TagLogLimited},
			Object{Kind: ObjLimit, Name: limitName(g.ID, l), Rate: l.Rate, Burst: l.Burst})
	}
	slices.SortFunc(gc.LogChains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(gc.Objects, compareObjects)
	return gc
}

// failClosed is what a group that cannot be compiled gets when nothing was
// applied for it before: dropping is safer than letting everything through.
func failClosed(g store.Group) GroupChains {
	in, out := ChainNames(g.ID)
	name := counterName(g.ID, TagCompileError)
	drop := Rule{Tag: TagCompileError, Counter: name, Verdict: Verdict{Kind: "drop"}}
	return GroupChains{
		GroupID: g.ID, Generation: g.Generation,
		In:      Chain{Name: in, Rules: []Rule{drop}},
		Out:     Chain{Name: out, Rules: []Rule{drop}},
		Objects: []Object{{Kind: ObjCounter, Name: name, Tag: TagCompileError}},
	}
}

func verdict(p store.Policy) Verdict {
	if p == store.Drop {
		return Verdict{Kind: "drop"}
	}
	return Verdict{Kind: "accept"}
}

// compileRules turns a store rule into its nftables rules: one for a
// range, and for an IP set or a group one per kernel set it matches (see
// sets.go), in the order of IPSetNames and MemberSetNames, all of them
// whatever the sets hold, so that a change of contents never rewrites a
// chain. A DestIPRange of one family leaves out the other family's sets:
// no packet could match both.
func compileRules(r store.Rule) []Rule {
	var names []string
	var parts []setPart
	switch {
	case r.IPSetID != "":
		n := IPSetNames(r.IPSetID)
		names, parts = n[:], ipSetParts[:]
	case r.RemoteGroupID != "":
		n := MemberSetNames(r.RemoteGroupID)
		names, parts = n[:], memberParts[:]
	default:
		return []Rule{compileRule(r)}
	}
	out := make([]Rule, 0, len(names))
	for i, name := range names {
		fam := parts[i].fam
		local := r.DestIPRange
		if local.IsValid() {
			if local.Addr().Is4() != (fam == FamilyIPv4) {
				continue
			}
			local = local.Masked()
			if local.Bits() == 0 {
				local = netip.Prefix{} // the family match says it
			}
		}
		kr := Rule{Tag: r.ID, Family: fam, Verdict: verdict(r.Action)}
		if r.Direction == store.Inbound {
			kr.SAddrSet, kr.DAddr = name, local
		} else {
			kr.DAddrSet, kr.SAddr = name, local
		}
		setTransport(&kr, r)
		out = append(out, kr)
	}
	return out
}

// compileRule turns a store rule with an IP range into an nftables rule.
// The rule's IP range is the remote side: the source of inbound traffic,
// the destination of outbound traffic; DestIPRange, when set, narrows the
// other side.
func compileRule(r store.Rule) Rule {
	out := Rule{Tag: r.ID, Verdict: verdict(r.Action)}
	remote, local := r.IPRange.Masked(), r.DestIPRange
	if local.IsValid() {
		local = local.Masked()
	}
	if r.Direction == store.Inbound {
		out.SAddr, out.DAddr = remote, local
	} else {
		out.DAddr, out.SAddr = remote, local
	}
	out.Family = FamilyIPv6
	if remote.Addr().Is4() {
		out.Family = FamilyIPv4
	}
	// A /0 matches every address of its family: nfproto alone says it.
	if out.SAddr.IsValid() && out.SAddr.Bits() == 0 {
		out.SAddr = netip.Prefix{}
	}
	if out.DAddr.IsValid() && out.DAddr.Bits() == 0 {
		out.DAddr = netip.Prefix{}
	}
	setTransport(&out, r)
	return out
}

// setTransport sets the protocol and port matches of out, whose Family is
// set, from r.
func setTransport(out *Rule, r store.Rule) {
	switch r.Protocol {
	case store.TCP, store.UDP:
		out.L4 = L4TCP
		if r.Protocol == store.UDP {
			out.L4 = L4UDP
		}
		out.DPortFrom = r.DestPortFrom
		if r.DestPortTo != r.DestPortFrom {
			out.DPortTo = r.DestPortTo
		}
	case store.ICMP:
		out.L4 = L4ICMP
		if out.Family == FamilyIPv6 {
			out.L4 = L4ICMPv6
		}
	}
}
