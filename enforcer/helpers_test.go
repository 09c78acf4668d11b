package enforcer

import (
	"context"
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
