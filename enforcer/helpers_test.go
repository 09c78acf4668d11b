package enforcer

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/rampart-fw/rampart/store"
)

// Fixed IDs keep chain names readable in failures: sg_aaaa…_in.
const (
	gA = "aaaaaaaa-0000-4000-8000-000000000001"
	gB = "bbbbbbbb-0000-4000-8000-000000000002"
	gC = "cccccccc-0000-4000-8000-000000000003"
)

func group(id string, stateful bool, in, out store.Policy, smtpBlocked bool) store.Group {
	return store.Group{ID: id, Name: id[:8], Stateful: stateful, InboundDefaultPolicy: in,
		OutboundDefaultPolicy: out, SMTPEnabled: !smtpBlocked, Generation: 1}
}

// rule builds a rule; ports "" / "80" / "80-90" style via from,to.
func rule(id string, dir store.Direction, proto store.Protocol, action store.Policy, ipRange string, from, to uint16) store.Rule {
	return store.Rule{ID: id, Direction: dir, Protocol: proto, Action: action,
		IPRange: netip.MustParsePrefix(ipRange), DestPortFrom: from, DestPortTo: to, Editable: true}
}

func server(id, groupID, iface string) store.Server {
	return store.Server{ID: id, Name: id, Type: store.Instance, Interface: iface, SecurityGroup: store.ServerRef{ID: groupID}}
}

// snapshot assembles a snapshot; rules get positions in the order given.
func snapshot(gen int64, groups []store.Group, rules map[string][]store.Rule, servers ...store.Server) store.Snapshot {
	rs := map[string][]store.Rule{}
	for gid, list := range rules {
		for i, r := range list {
			r.GroupID, r.Position = gid, i+1
			rs[gid] = append(rs[gid], r)
		}
	}
	for i := range groups {
		if groups[i].Generation == 0 {
			groups[i].Generation = gen
		}
	}
	return store.Snapshot{Generation: gen, Groups: groups, Rules: rs, Servers: servers}
}

// fakeSource is an in-memory Source: Set commits a new snapshot and wakes
// the watchers, as the store does after a transaction.
type fakeSource struct {
	mu      sync.Mutex
	snap    store.Snapshot
	watches map[int]chan struct{}
	next    int
	snapErr error
}

func newFakeSource(s store.Snapshot) *fakeSource {
	return &fakeSource{snap: s, watches: map[int]chan struct{}{}}
}

func (f *fakeSource) Snapshot(context.Context) (store.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.snapErr
}

func (f *fakeSource) Generation(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap.Generation, nil
}

func (f *fakeSource) Watch() (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	id := f.next
	f.next++
	f.watches[id] = ch
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.watches, id)
	}
}

// Set commits s at the next generation; every group in it takes that
// generation (as if each had changed) and watchers are woken.
func (f *fakeSource) Set(s store.Snapshot) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	gen := f.snap.Generation + 1
	s.Generation = gen
	for i := range s.Groups {
		s.Groups[i].Generation = gen
	}
	f.snap = s
	for _, ch := range f.watches {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return gen
}

// oneGroup is a snapshot with s1 in group A and s2 in group B (accept all).
func oneGroup(a store.Group, rules ...store.Rule) store.Snapshot {
	return snapshot(1, []store.Group{a, group(gB, true, store.Accept, store.Accept, false)},
		map[string][]store.Rule{gA: rules}, server("s1", gA, "vs1"), server("s2", gB, "vs2"))
}

// IP set IDs of the tests.
const (
	ipsRich  = "11111111-0000-4000-8000-0000000000a1"
	ipsEmpty = "22222222-0000-4000-8000-0000000000a2"
)

// setRule is a rule whose remote side is an IP set.
func setRule(id string, dir store.Direction, proto store.Protocol, action store.Policy, setID string, from, to uint16) store.Rule {
	return store.Rule{ID: id, Direction: dir, Protocol: proto, Action: action, IPSetID: setID,
		DestPortFrom: from, DestPortTo: to, Editable: true}
}

// groupRule is a rule whose remote side is a group's servers.
func groupRule(id string, dir store.Direction, proto store.Protocol, action store.Policy, groupID string) store.Rule {
	return store.Rule{ID: id, Direction: dir, Protocol: proto, Action: action, RemoteGroupID: groupID, Editable: true}
}

func prefixList(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// manyPrefixes returns n disjoint prefixes of length bits, sorted, in
// 10.0.0.0/8 (and beyond) or 2001:db8::/32, every other one skipped so that
// no two are adjacent.
func manyPrefixes(n int, v6 bool, bits int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		var a netip.Addr
		if v6 {
			var b [16]byte
			// 2001:db8::/32, then prefix number 2i of length bits.
			b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
			if bits <= 64 {
				x := binary.BigEndian.Uint64(b[:8]) + uint64(2*i)<<(64-bits)
				binary.BigEndian.PutUint64(b[:8], x)
			} else {
				binary.BigEndian.PutUint64(b[8:], uint64(2*i)<<(128-bits))
			}
			a = netip.AddrFrom16(b)
		} else {
			x := uint32(10)<<24 + uint32(2*i)<<(32-bits)
			a = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		}
		out[i] = netip.PrefixFrom(a, bits)
	}
	return out
}

// richSnapshot exercises every construct the compiler emits: group A logs
// its default drop, its SMTP rows and two rules; group C logs one rule
// only, under a limit of its own.
func richSnapshot() store.Snapshot {
	withDest := rule("r-dest", store.Inbound, store.TCP, store.Accept, "10.0.0.0/8", 443, 0)
	withDest.DestIPRange = netip.MustParsePrefix("10.99.1.2/32")
	logs := func(r store.Rule) store.Rule { r.Log = true; return r }
	a := group(gA, true, store.Drop, store.Accept, true)
	a.LogDefaultDrops = true
	// Rules on an IP set and on groups: inbound, logged, outbound with a
	// local range of one family (the other family's sets left out), and
	// ICMP, which is icmp or ipv6-icmp by the set's family.
	fromSet := setRule("r-set", store.Inbound, store.TCP, store.Accept, ipsRich, 443, 0)
	fromSet.Log = true
	toSet := setRule("r-set-out", store.Outbound, store.UDP, store.Drop, ipsRich, 53, 0)
	toSet.DestIPRange = netip.MustParsePrefix("10.99.1.0/24")
	fromGroup := groupRule("r-grp", store.Inbound, store.ICMP, store.Accept, gB)
	fromSelf := groupRule("r-self", store.Outbound, store.ANY, store.Accept, gC)
	fromEmpty := setRule("r-empty", store.Inbound, store.ANY, store.Drop, ipsEmpty, 0, 0)
	snap := snapshot(7,
		[]store.Group{
			a,
			group(gB, false, store.Accept, store.Drop, false),
			group(gC, true, store.Drop, store.Drop, true),
		},
		map[string][]store.Rule{
			gC: {logs(rule("r-c1", store.Outbound, store.UDP, store.Accept, "::/0", 53, 0))},
			gA: {
				logs(rule("r-ssh", store.Inbound, store.TCP, store.Accept, "0.0.0.0/0", 22, 0)),
				rule("r-web6", store.Inbound, store.TCP, store.Accept, "::/0", 8000, 8080),
				rule("r-dns", store.Inbound, store.UDP, store.Drop, "192.168.0.0/16", 53, 0),
				rule("r-ping", store.Inbound, store.ICMP, store.Accept, "10.99.0.0/24", 0, 0),
				rule("r-ping6", store.Inbound, store.ICMP, store.Accept, "fd99::/16", 0, 0),
				logs(rule("r-any", store.Outbound, store.ANY, store.Drop, "203.0.113.7/32", 0, 0)),
				rule("r-any6", store.Outbound, store.ANY, store.Accept, "2001:db8::1/128", 0, 0),
				withDest,
				fromSet, toSet, fromGroup, fromSelf, fromEmpty,
			},
			gB: {rule("r-b1", store.Outbound, store.UDP, store.Accept, "0.0.0.0/0", 1000, 2000)},
		},
		server("srv-1", gA, "vs1"), server("srv-2", gB, "vs2"), server("srv-3", gA, "tap0"),
		store.Server{ID: "srv-local", Local: true, SecurityGroup: store.ServerRef{ID: gC}},
	)
	snap.IPSets = map[string][]netip.Prefix{
		// Singles and prefixes of both families, adjacent prefixes,
		// intervals open at the top of each family.
		ipsRich: prefixList("10.99.0.2/32", "10.200.0.0/25", "10.200.0.128/25", "128.0.0.0/1",
			"fd99::2/128", "fd99:1::/64", "fd99:2::/63", "ff00::/8"),
		ipsEmpty: {},
	}
	snap.Members = map[string][]netip.Addr{
		gB: {netip.MustParseAddr("10.99.2.2"), netip.MustParseAddr("fd99:2::2")},
		gC: {},
	}
	return snap
}

// richRuleset compiles richSnapshot with group C's log limit of its own.
func richRuleset() *Ruleset {
	c := Compiler{Log: LogConfig{Groups: map[string]LogLimit{gC: {Rate: 7, Burst: 3}}}}
	return c.Compile(richSnapshot())
}
