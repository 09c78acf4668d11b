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
