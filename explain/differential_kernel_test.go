//go:build linux

package explain

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/enforcer"
	"github.com/rampart-fw/rampart/internal/netnstest"
	"github.com/rampart-fw/rampart/store"
)

// Settings of the differential test, from the environment.
const (
	envSeed    = "RAMPART_DIFFERENTIAL_SEED"    // default: random, printed
	envPackets = "RAMPART_DIFFERENTIAL_PACKETS" // default: defaultPackets
)

const (
	defaultPackets = 800
	minGroups      = 50
	packetsPerRun  = 40 // per group, in larger runs
	// grace is how long the test waits, once every packet the tester
	// says is accepted has arrived, for packets it says are dropped.
	grace = 30 * time.Millisecond
)

// probe is one packet sent through the router, with the tester's verdict.
type probe struct {
	kind     string // "inbound", "outbound" or "between"
	from, to *endpoint
	w        wire
	orig     *wire // for return traffic: the packet that opened the connection
	want     store.Policy
	by       []Kind // what decided, per group the packet passes
	bySet    bool   // a rule on an IP set or a group decided, in a group
	what     string // the packet, for failures
	explain  func() string
}

// TestDifferentialKernel applies random groups with the real enforcer in
// a router namespace, sends packets through it, and compares what arrives
// with what the packet tester says, packet by packet: inbound, outbound
// and between two servers, new and return traffic, IPv4 and IPv6, TCP,
// UDP, ICMP and other protocols. `make differential` runs it larger.
func TestDifferentialKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(envSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		seed = v
	}
	total := defaultPackets
	if s := os.Getenv(envPackets); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("%s=%q: want a positive number", envPackets, s)
		}
		total = v
	}
	groups := max(minGroups, total/packetsPerRun)
	perGroup := (total + groups - 1) / groups
	t.Logf("seed %d (%s=%d replays it): %d groups, %d packets each", seed, envSeed, seed, groups, perGroup)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d: rerun with %s=%d %s=%d", seed, envSeed, seed, envPackets, total)
		}
	})

	start := time.Now()
	n := newDiffNet(t)
	b, err := enforcer.NewNFTables(enforcer.WithNetNS(int(n.routerH)))
	if err != nil {
		t.Fatal(err)
	}
	d := &differential{t: t, n: n, b: b, rng: rand.New(rand.NewPCG(seed, 0xd1ff)),
		used: map[tuple]bool{}, nextPort: 20000, counts: map[string]int{}}
	ctx := context.Background()
	for i := range groups {
		d.round(ctx, i, perGroup)
		if d.disagreements >= 20 {
			t.Fatalf("stopping after %d disagreements", d.disagreements)
		}
	}
	// A packet that the tester says is dropped and that arrived late is
	// caught here rather than missed.
	time.Sleep(100 * time.Millisecond)
	for _, p := range d.dropped {
		if role, ok := n.rec.at(p.w.id); ok {
			d.disagree(p, "arrived at "+role+" (late)")
		}
	}
	took := time.Since(start)
	t.Logf("differential: %d packets over %d groups, %d disagreements, %v (%s)",
		d.counts["packets"], groups, d.disagreements, took.Round(time.Millisecond), d.summary())
	if d.counts["packets"] < min(total, 500) || groups < minGroups {
		t.Errorf("only %d packets over %d groups", d.counts["packets"], groups)
	}
}

// differential is the state of one run.
type differential struct {
	t             *testing.T
	n             *diffNet
	b             *enforcer.NFTables
	rng           *rand.Rand
	prev          *enforcer.Ruleset
	nextID        uint32
	nextPort      uint16
	used          map[tuple]bool // connection-tracking tuples already sent
	dropped       []*probe       // every probe the tester said is dropped
	counts        map[string]int
	disagreements int
}

// tuple is what connection tracking keys a packet by; ports hold the ICMP
// id for ICMP and nothing for other protocols.
type tuple struct {
	proto        uint8
	src, dst     netip.Addr
	sport, dport uint16
}

func (k tuple) reverse() tuple { return tuple{k.proto, k.dst, k.src, k.dport, k.sport} }

// claim reserves k for a new connection: no packet sent before may be of
// it or of its reverse, or connection tracking would see the new packet
// as part of an earlier connection.
func (d *differential) claim(k tuple) bool {
	if d.used[k] || d.used[k.reverse()] {
		return false
	}
	d.used[k] = true
	return true
}

func (d *differential) servers() (store.Server, store.Server) {
	s := func(id, iface, gid string) store.Server {
		b := localBlocks[id]
		return store.Server{ID: id, Name: id, Type: store.Instance, Interface: iface,
			Addresses:     []netip.Addr{b[0].Addr().Next(), b[1].Addr().Next()},
			SecurityGroup: store.ServerRef{ID: gid}}
	}
	return s("s1", "vs1", gA), s("s2", "vs2", gB)
}

func (d *differential) apply(ctx context.Context, snap store.Snapshot) *enforcer.Ruleset {
	rs := enforcer.Compile(snap)
	if len(rs.Errors) > 0 {
		d.t.Fatalf("compile: %v", rs.Errors)
	}
	if err := d.b.Apply(ctx, d.prev, rs); err != nil {
		d.t.Fatalf("apply: %v", err)
	}
	d.prev = rs
	return rs
}

// round applies one random pair of groups (s1's and s2's) and sends
// perGroup packets through them.
func (d *differential) round(ctx context.Context, round, perGroup int) {
	t := d.t
	ga, rulesA := randomGroup(d.rng, gA, 10)
	gb, rulesB := randomGroup(d.rng, gB, 10)
	s1, s2 := d.servers()
	snap := store.Snapshot{Generation: int64(round + 1), Groups: []store.Group{ga, gb},
		Rules: map[string][]store.Rule{gA: rulesA, gB: rulesB}, Servers: []store.Server{s1, s2},
		IPSets: testIPSets, Members: testMembers}
	rs := enforcer.Compile(snap)
	explainer := func(g store.Group, rules []store.Rule) *Group {
		gc, _ := rs.Group(g.ID)
		eg, err := NewGroup(g, rules, gc, rs.GroupSets(g.ID)...)
		if err != nil {
			t.Fatal(err)
		}
		return eg
	}
	ea, eb := explainer(ga, rulesA), explainer(gb, rulesB)
	sides := [2]*side{
		{e: d.n.s1, s: s1, g: ea, rules: rulesA, witnesses: mustAnalyze(t, ea).Witnesses},
		{e: d.n.s2, s: s2, g: eb, rules: rulesB, witnesses: mustAnalyze(t, eb).Witnesses},
	}
	describeGroups := func() string {
		var b strings.Builder
		for _, x := range []struct {
			g     store.Group
			rules []store.Rule
		}{{ga, rulesA}, {gb, rulesB}} {
			fmt.Fprintf(&b, "\n  group %s stateful=%v in=%s out=%s smtp=%v", x.g.ID[:8], x.g.Stateful,
				x.g.InboundDefaultPolicy, x.g.OutboundDefaultPolicy, !x.g.SMTPEnabled)
			for _, r := range x.rules {
				fmt.Fprintf(&b, "\n    %d %s %s %s %s%s%s", r.Position, r.Direction, r.Protocol, r.Action, r.IPRange, r.IPSetID, r.RemoteGroupID)
				if r.DestIPRange.IsValid() {
					fmt.Fprintf(&b, " dest %s", r.DestIPRange)
				}
				if r.DestPortFrom != 0 {
					fmt.Fprintf(&b, " ports %d-%d", r.DestPortFrom, max(r.DestPortFrom, r.DestPortTo))
				}
			}
			fmt.Fprintf(&b, "\n%s", rs.GroupText(x.g.ID))
		}
		return b.String()
	}

	// A third of the packets are the analysis's witnesses, which reach
	// every rule that is not shadowed; the others are drawn near the edges
	// of the rules, and some of those are moved to the other server.
	var probes []*probe
	for len(probes) < perGroup {
		i := d.rng.IntN(2)
		me, other := sides[i], sides[1-i]
		var pk Packet
		if ids := slices.Sorted(maps.Keys(me.witnesses)); len(ids) > 0 && d.rng.IntN(3) == 0 {
			pk = me.witnesses[pick(d.rng, ids)]
		} else {
			pk = randomPacket(d.rng, me.rules, me.g.ID())
			if d.rng.IntN(3) == 0 {
				pk.Remote = d.inBlock(pk.Remote, blockOf(other.s, pk.Remote))
			}
		}
		if p := d.probeFor(pk, me, other); p != nil {
			probes = append(probes, p)
		}
	}

	// Return traffic needs its connection opened first, through a ruleset
	// that lets everything pass.
	var opened []*probe
	for _, p := range probes {
		if p.orig != nil {
			opened = append(opened, p)
		}
	}
	if len(opened) > 0 {
		open := store.Snapshot{Generation: int64(round + 1), Groups: []store.Group{
			group(gA, false, store.Accept, store.Accept, false), group(gB, false, store.Accept, store.Accept, false)},
			Servers: []store.Server{s1, s2}}
		d.apply(ctx, open)
		for _, p := range opened {
			if err := p.to.transmit(p.orig.bytes()); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		if !waitFor(2*time.Second, func() bool {
			for _, p := range opened {
				if _, ok := d.n.rec.at(p.orig.id); !ok {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("round %d: a connection-opening packet was not forwarded through the open ruleset", round)
		}
	}

	d.apply(ctx, snap)
	for _, p := range probes {
		if err := p.from.transmit(p.w.bytes()); err != nil {
			t.Fatalf("send %s: %v", p.what, err)
		}
	}
	waitFor(2*time.Second, func() bool {
		for _, p := range probes {
			if _, ok := d.n.rec.at(p.w.id); p.want == store.Accept && !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(grace)
	for _, p := range probes {
		role, arrived := d.n.rec.at(p.w.id)
		switch {
		case p.want == store.Accept && !arrived:
			d.disagree(p, "did not arrive", describeGroups)
		case p.want == store.Accept && role != p.to.role:
			d.disagree(p, "arrived at "+role, describeGroups)
		case p.want == store.Drop && arrived:
			d.disagree(p, "arrived at "+role, describeGroups)
		}
		if p.want == store.Drop {
			d.dropped = append(d.dropped, p)
		}
		d.counts["packets"]++
		d.counts[p.kind]++
		d.counts[string(p.want)]++
		if p.orig != nil {
			d.counts["established"]++
		}
		if p.w.src.Is6() {
			d.counts["IPv6"]++
		}
		d.counts[l4Name(p.w.proto)]++
		for _, k := range p.by {
			d.counts["by "+string(k)]++
		}
		if p.bySet {
			d.counts["by set or group rule"]++
		}
	}
}

func (d *differential) disagree(p *probe, got string, context ...func() string) {
	d.disagreements++
	if d.disagreements > 5 {
		d.t.Errorf("%s %s: tester says %s, kernel: %s", p.kind, p.what, p.want, got)
		return
	}
	msg := fmt.Sprintf("%s %s: tester says %s, kernel: %s\n%s", p.kind, p.what, p.want, got, p.explain())
	for _, c := range context {
		msg += c()
	}
	d.t.Error(msg)
}

func (d *differential) summary() string {
	var parts []string
	for _, k := range []string{"inbound", "outbound", "between", "established", "IPv6", "TCP", "UDP", "ICMP", "ICMPv6", "accept", "drop",
		"by rule", "by set or group rule", "by smtp", "by stateful", "by default_policy"} {
		parts = append(parts, fmt.Sprintf("%s %d", k, d.counts[k]))
	}
	other := d.counts["packets"] - d.counts["TCP"] - d.counts["UDP"] - d.counts["ICMP"] - d.counts["ICMPv6"]
	return strings.Join(parts, ", ") + fmt.Sprintf(", other protocols %d", other)
}

// sendable reports whether a can be a remote address in the test network:
// routed to the client, and not one that the router refuses to forward.
func (d *differential) sendable(a netip.Addr) bool {
	bad := prefixes("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3", "::/8", "fe80::/10", "ff00::/8")
	bad = append(bad, d.n.linkBlocks...)
	for _, b := range localBlocks {
		bad = append(bad, b[0], b[1])
	}
	for _, p := range bad {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// inBlock returns a if it lies in block, else an address of block near
// one of its anchors.
func (d *differential) inBlock(a netip.Addr, block netip.Prefix) netip.Addr {
	if block.Contains(a) {
		return a
	}
	for range 10 {
		b := nearPrefix(d.rng, netip.PrefixFrom(block.Addr(), block.Bits()+d.rng.IntN(block.Addr().BitLen()-block.Bits()+1)).Masked())
		if block.Contains(b) {
			return b
		}
	}
	return block.Addr().Next()
}

func blockOf(s store.Server, a netip.Addr) netip.Prefix {
	b := localBlocks[s.ID]
	if a.Is4() {
		return b[0]
	}
	return b[1]
}

// kernelProtocol maps GRE, which has a connection tracker of its own, to
// protocol 254, which, like every protocol the rules do not name, only
// ANY matches.
func kernelProtocol(p store.Protocol) store.Protocol {
	if p == "47" {
		return "254"
	}
	return p
}

// kernelState keeps packets of other protocols new: connection tracking
// knows them by their addresses alone, so that opening a connection for
// one would make the next packets between the same addresses return
// traffic.
func kernelState(p store.Protocol, s State) State {
	if p == store.TCP || p == store.UDP || p == store.ICMP {
		return s
	}
	return New
}

// side is a server of a round, with its group.
type side struct {
	e         *endpoint
	s         store.Server
	g         *Group
	rules     []store.Rule
	witnesses map[string]Packet
}

// setRule reports whether rule id of the side's group is on a set or a
// group.
func (s *side) setRule(id string) bool {
	for _, r := range s.rules {
		if r.ID == id {
			return r.Remote()
		}
	}
	return false
}

// probeFor returns a probe for packet pk of server me's group: between
// me and the other server when pk's remote address is the other server's,
// else between me and the client. It returns nil when pk cannot be sent.
func (d *differential) probeFor(pk Packet, me, other *side) *probe {
	pk.Protocol = kernelProtocol(pk.Protocol)
	pk.State = kernelState(pk.Protocol, pk.State)
	pk.Local = d.inBlock(pk.Local, blockOf(me.s, pk.Remote))
	if blockOf(other.s, pk.Remote).Contains(pk.Remote) {
		x, y, f := me, other, Flow{Protocol: pk.Protocol, Source: pk.Local, Dest: pk.Remote, Port: pk.Port, State: pk.State}
		if pk.Direction == store.Inbound {
			x, y, f.Source, f.Dest = other, me, pk.Remote, pk.Local
		}
		path, err := Between(x.s, x.g, y.s, y.g, f)
		if err != nil {
			d.t.Fatalf("between %+v: %v", f, err)
		}
		p := &probe{kind: "between", from: x.e, to: y.e, want: path.Verdict,
			by:   []Kind{path.Outbound.DecidedBy.Kind, path.Inbound.DecidedBy.Kind},
			what: fmt.Sprintf("%s -> %s: %s state %s", x.s.ID, y.s.ID, describe(path.Outbound.Packet), pk.state()),
			explain: func() string {
				return "outbound " + traceText(path.Outbound) + "\ninbound " + traceText(path.Inbound)
			}}
		p.bySet = x.setRule(path.Outbound.DecidedBy.RuleID) || y.setRule(path.Inbound.DecidedBy.RuleID)
		if !d.build(p, l4Of(pk), f.Source, f.Dest, f.Port, f.State == Established) {
			return nil
		}
		return p
	}
	if !d.sendable(pk.Remote) {
		return nil
	}
	dec, err := me.g.EvaluateServer(me.s, pk)
	if err != nil {
		d.t.Fatalf("evaluate %s: %v", describe(pk), err)
	}
	p := &probe{kind: string(pk.Direction), want: dec.Verdict, by: []Kind{dec.DecidedBy.Kind}, bySet: me.setRule(dec.DecidedBy.RuleID),
		what:    fmt.Sprintf("%s %s: %s state %s", me.s.ID, pk.Direction, describe(pk), pk.state()),
		explain: func() string { return traceText(dec) }}
	p.from, p.to = d.n.client, me.e
	src, dst := pk.Remote, pk.Local
	if pk.Direction == store.Outbound {
		p.from, p.to = me.e, d.n.client
		src, dst = pk.Local, pk.Remote
	}
	if !d.build(p, l4Of(pk), src, dst, pk.Port, pk.State == Established) {
		return nil
	}
	return p
}

// build fills in the wire packet of p (and, for return traffic, the one
// that opens its connection), with fresh markers and a connection that
// no earlier packet belongs to. It reports false when it cannot.
func (d *differential) build(p *probe, l4 uint8, src, dst netip.Addr, port uint16, established bool) bool {
	d.nextID++
	p.w = wire{src: src, dst: dst, proto: l4, id: d.nextID, dport: port, seq: d.rng.Uint32()}
	for range 100 {
		m := d.nextPort
		d.nextPort++
		if d.nextPort >= 61000 {
			d.nextPort = 20000
		}
		// The tuple of the connection: opened from dst for return
		// traffic. ICMP echoes are tracked by their id, the same both ways.
		var k tuple
		switch {
		case (l4 == 6 || l4 == 17) && established:
			k = tuple{l4, dst, src, port, m}
		case l4 == 6 || l4 == 17:
			k = tuple{l4, src, dst, m, port}
		case (l4 == 1 || l4 == 58) && established:
			k = tuple{l4, dst, src, m, 0}
		case l4 == 1 || l4 == 58:
			k = tuple{l4, src, dst, m, 0}
		default:
			k = tuple{l4, src, dst, 0, 0}
		}
		if !d.claim(k) {
			if l4 != 6 && l4 != 17 && l4 != 1 && l4 != 58 {
				return false // no marker to vary
			}
			continue
		}
		switch l4 {
		case 6, 17:
			p.w.sport = m
			p.w.tcpFlags = tcpSYN
		case 1:
			p.w.icmpType, p.w.icmpID = icmpEchoRequest, m
		case 58:
			p.w.icmpType, p.w.icmpID = icmpv6EchoRequest, m
		}
		if established {
			d.nextID++
			o := wire{src: dst, dst: src, proto: l4, id: d.nextID, sport: port, dport: m,
				tcpFlags: tcpSYN, seq: d.rng.Uint32(), icmpType: p.w.icmpType, icmpID: m}
			p.orig = &o
			switch l4 {
			case 6:
				p.w.tcpFlags, p.w.ack = tcpSYN|tcpACK, o.seq+1
			case 1:
				p.w.icmpType = icmpEchoReply
			case 58:
				p.w.icmpType = icmpv6EchoReply
			}
		}
		return true
	}
	return false
}

// traceText renders a decision for failures.
func traceText(d Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s by %s %s %d", d.Verdict, d.DecidedBy.Kind, d.DecidedBy.RuleID, d.DecidedBy.Position)
	for _, s := range d.Trace {
		fmt.Fprintf(&b, "\n    %s %s %d %s matched=%v %s %s", s.Kind, s.RuleID, s.Position, s.Action, s.Matched, s.Mismatch, s.Reason)
	}
	if d.Note != "" {
		b.WriteString("\n    note: " + d.Note)
	}
	return b.String()
}
