//go:build linux

package enforcer

import (
	"context"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-fw/rampart/store"
)

// effectTimeout is how long a kernel test waits for a change to show in
// the packets that pass.
const effectTimeout = 10 * time.Second

var handleRe = regexp.MustCompile(`# handle (\d+)`)

// handles returns the handles of a chain's rules in namespace ns.
func handles(t *testing.T, ns, chain string) []string {
	t.Helper()
	out := runCmd(t, "ip", "netns", "exec", ns, "nft", "-a", "list", "chain", "inet", TableName, chain)
	var hs []string
	for _, m := range handleRe.FindAllStringSubmatch(out, -1) {
		hs = append(hs, m[1])
	}
	return hs
}

// eventually polls probe until its outcome is pass, failing after
// effectTimeout; it returns how long it took.
func eventually(t *testing.T, what string, pass bool, probe func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := probe()
		if (err == nil) == pass {
			return time.Since(start)
		}
		if time.Since(start) > effectTimeout {
			t.Fatalf("%s: still %v after %v, want pass=%v", what, err, effectTimeout, pass)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAvailable waits until the reconciler reports group id available at
// generation gen, and fails the test after effectTimeout.
func waitAvailable(t *testing.T, what string, r *Reconciler, id string, gen int64) {
	t.Helper()
	start := time.Now()
	for {
		s, why := r.GroupState(id, gen)
		if s == store.Available {
			return
		}
		if time.Since(start) > effectTimeout {
			t.Fatalf("%s: state %s (%s) after %v", what, s, why, effectTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setSnapshot is group A (s1's: stateful, inbound drop) with a rule
// accepting portA from IP set ipsRich and portB from group B's servers,
// with the given contents.
func setSnapshot(entries []netip.Prefix, membersB []netip.Addr, withB bool) store.Snapshot {
	a := group(gA, true, store.Drop, store.Accept, false)
	rules := []store.Rule{
		setRule("r-set", store.Inbound, store.TCP, store.Accept, ipsRich, portA, 0),
		groupRule("r-grp", store.Inbound, store.TCP, store.Accept, gB),
	}
	servers := []store.Server{server("s1", gA, "vs1")}
	if withB {
		servers = append(servers, server("s2", gB, "vs2"))
	}
	snap := snapshot(1, []store.Group{a, group(gB, true, store.Accept, store.Accept, false)},
		map[string][]store.Rule{gA: rules}, servers...)
	snap.IPSets = map[string][]netip.Prefix{ipsRich: entries}
	if membersB == nil {
		membersB = []netip.Addr{}
	}
	snap.Members = map[string][]netip.Addr{gB: membersB}
	return snap
}

// TestKernelSetRules proves rules on IP sets and on groups with packets,
// through the reconciler: an address in the set passes and one outside
// does not, an entry added or removed takes effect, a server joining the
// referenced group can reach the protected server and cannot once it
// left, over IPv4 and IPv6; the chain's rule handles stay the same across
// every change of elements, and the rule's counter counts every
// connection it accepted across them.
func TestKernelSetRules(t *testing.T) {
	e := newEnv(t)
	src := newFakeSource(setSnapshot(nil, nil, true))
	r := startReconciler(t, e, src)
	in, _ := ChainNames(gA)
	before := handles(t, e.router.name, in)
	client4 := func() error { return tcpErr(e.client, e.s1.v4, portA) }
	client6 := func() error { return tcpErr(e.client, e.s1.v6, portA) }
	s2to1v4 := func() error { return tcpErr(e.s2, e.s1.v4, portB) }
	s2to1v6 := func() error { return tcpErr(e.s2, e.s1.v6, portB) }
	expect(t, "empty set: client v4", client4(), false)
	expect(t, "empty set: client v6", client6(), false)
	expect(t, "no members: s2 v4", s2to1v4(), false)

	ctx := context.Background()
	var last uint64 // what r-set counted so far
	steps := []struct {
		name         string
		entries      []string
		pass4, pass6 bool
	}{
		{name: "client's addresses as singles", entries: []string{"10.99.0.2/32", "fd99::2/128"}, pass4: true, pass6: true},
		{name: "v4 single removed", entries: []string{"fd99::2/128"}, pass6: true},
		{name: "client's networks as intervals", entries: []string{"10.99.0.0/24", "fd99::/64"}, pass4: true, pass6: true},
		{name: "adjacent halves", entries: []string{"10.99.0.0/25", "10.99.0.128/25", "fd99::/65", "fd99:0:0:0:8000::/65"}, pass4: true, pass6: true},
		{name: "other networks only", entries: []string{"10.99.5.0/24", "10.99.0.3/32", "fd99:5::/64", "fd99::3/128"}},
		{name: "open intervals", entries: []string{"0.0.0.0/0", "8000::/1"}, pass4: true, pass6: true},
	}
	for _, st := range steps {
		gen := src.Set(setSnapshot(prefixList(st.entries...), nil, true))
		// The step's contents applied first: a client that the step
		// before let through passes at once, whether or not they are.
		waitAvailable(t, st.name, r, gA, gen)
		took4 := eventually(t, st.name+": client v4", st.pass4, client4)
		took6 := eventually(t, st.name+": client v6", st.pass6, client6)
		// Once in effect, the rule's counter counts exactly the
		// connections it accepts: one SYN each (the stateful rule takes
		// the rest), whichever kernel set matched.
		c0 := r.Counters(ctx, gA)["r-set"].Packets
		if c0 < last {
			t.Fatalf("%s: r-set went back from %d to %d", st.name, last, c0)
		}
		want := c0
		rounds := 3
		if !st.pass4 || !st.pass6 {
			rounds = 1 // a drop costs a probe's timeout
		}
		for range rounds {
			expect(t, st.name+": client v4 again", client4(), st.pass4)
			expect(t, st.name+": client v6 again", client6(), st.pass6)
			if st.pass4 {
				want++
			}
			if st.pass6 {
				want++
			}
		}
		if last = r.Counters(ctx, gA)["r-set"].Packets; last != want {
			t.Errorf("%s: r-set counted %d packets, want %d", st.name, last, want)
		}
		if s, why := r.GroupState(gA, gen); s != store.Available {
			t.Fatalf("%s: state %s (%s)", st.name, s, why)
		}
		t.Logf("%s: in effect after %v (v4), %v (v6)", st.name, took4, took6)
	}
	// A server joins the referenced group, then leaves it.
	gen := src.Set(setSnapshot(nil, []netip.Addr{netip.MustParseAddr(e.s2.v4), netip.MustParseAddr(e.s2.v6)}, true))
	eventually(t, "member joined: s2 v4", true, s2to1v4)
	eventually(t, "member joined: s2 v6", true, s2to1v6)
	expect(t, "member joined: client not a member", tcpErr(e.client, e.s1.v4, portB), false)
	waitAvailable(t, "member joined", r, gA, gen)
	src.Set(setSnapshot(nil, []netip.Addr{netip.MustParseAddr(e.s2.v6)}, true))
	eventually(t, "v4 address left: s2 v4", false, s2to1v4)
	expect(t, "v4 address left: s2 v6", s2to1v6(), true)
	src.Set(setSnapshot(nil, nil, false))
	eventually(t, "member left: s2 v6", false, s2to1v6)

	if after := handles(t, e.router.name, in); !slices.Equal(before, after) {
		t.Errorf("rule handles changed across element updates:\n before %v\n after  %v", before, after)
	}
	if got := r.Counters(ctx, gA)["r-set"].Packets; got != last {
		t.Errorf("r-set counted %d packets at the end, want %d", got, last)
	}
	if s := r.Stats(); s.FullResyncs != 1 {
		t.Errorf("full resyncs = %d, want 1: element changes are incremental", s.FullResyncs)
	}
}

// TestKernelSetIntervalsReplaced checks what the kernel makes of interval
// changes in one transaction: adjacent halves replaced by their union and
// back, an interval widened, shrunk, split and moved, open intervals
// (128.0.0.0/1, ::/0) added and removed. After each, the kernel holds
// exactly the expected elements, and a client whose address both the old
// and the new contents allow is never refused while the changes go on.
func TestKernelSetIntervalsReplaced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var c Compiler
	apply := func(entries ...string) {
		t.Helper()
		rs := c.Compile(setSnapshot(prefixList(entries...), nil, true))
		if err := e.b.Apply(ctx, e.prev, rs); err != nil {
			t.Fatalf("apply %v: %v", entries, err)
		}
		e.prev = rs
		for _, s := range rs.Sets {
			got, err := dumpSetElems(int(e.router.h), s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if want := setKelems(s); !slices.Equal(got, want) {
				t.Fatalf("after %v: set %s holds %v, want %v", entries, s.Name, got, want)
			}
		}
	}
	apply("10.99.0.0/25", "10.99.0.128/25", "fd99::/65", "fd99:0:0:0:8000::/65")
	// Every form holds the client's addresses (10.99.0.2, fd99::2).
	forms := [][]string{
		{"10.99.0.0/24", "fd99::/64"},                                                  // merged
		{"10.99.0.0/25", "10.99.0.128/25", "fd99::/65", "fd99:0:0:0:8000::/65"},        // split again
		{"10.99.0.0/23", "fd99::/63"},                                                  // widened
		{"10.99.0.0/30", "10.99.0.128/25", "fd99::/126", "fd99::4/126"},                // shrunk, split, adjacent
		{"10.99.0.0/16", "128.0.0.0/1", "::/0"},                                        // open intervals
		{"10.99.0.2/31", "10.99.0.4/30", "10.99.0.8/29", "fd99::2/127", "fd99::4/126"}, // moved starts
		{"10.99.0.0/25", "10.99.0.128/25", "fd99::/65", "fd99:0:0:0:8000::/65"},
	}
	var refused atomic.Int64
	var tries atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, probe := range []func() error{
		func() error { return tcpErr(e.client, e.s1.v4, portA) },
		func() error { return tcpErr(e.client, e.s1.v6, portA) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tries.Add(1)
				if err := probe(); err != nil {
					refused.Add(1)
				}
			}
		}()
	}
	for round := 0; round < 20; round++ {
		for _, f := range forms {
			apply(f...)
		}
	}
	close(stop)
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Errorf("%d of %d connections refused while the set changed between forms that all allow them", n, tries.Load())
	}
	t.Logf("%d connections during %d changes, none refused", tries.Load(), 20*len(forms))
	if err := e.b.Verify(ctx, e.prev); err != nil {
		t.Fatal(err)
	}
}

// TestKernelSetLifecycle: a set is created with the first rule that names
// it and deleted, in the same batch, with the last; Verify finds a set
// deleted or an element changed by someone else, and the reconciler
// repairs it.
func TestKernelSetLifecycle(t *testing.T) {
	e := newEnv(t)
	nft := func(args ...string) string {
		return runCmd(t, append([]string{"ip", "netns", "exec", e.router.name, "nft"}, args...)...)
	}
	withSet := setSnapshot(prefixList("10.99.0.2/32", "10.99.7.0/24"), nil, true)
	without := setSnapshot(nil, nil, true)
	without.Rules[gA] = nil
	without.IPSets, without.Members = nil, nil
	src := newFakeSource(without)
	r := startReconciler(t, e, src)
	names := IPSetNames(ipsRich)
	if strings.Contains(nft("list", "sets", "inet"), names[0]) {
		t.Fatal("set present before any rule names it")
	}
	src.Set(withSet)
	eventually(t, "set rule", true, func() error { return tcpErr(e.client, e.s1.v4, portA) })
	for _, vandal := range []string{
		"delete element inet rampart " + names[0] + " { 10.99.0.2 }",
		"add element inet rampart " + names[1] + " { 10.99.9.0/24 }",
		"flush set inet rampart " + names[1],
	} {
		before := r.Stats().DriftRepairs
		nft(vandal)
		waitFor(t, effectTimeout, "repair after "+vandal, func() bool { return r.Stats().DriftRepairs > before })
		expect(t, "repaired after "+vandal, tcpErr(e.client, e.s1.v4, portA), true)
	}
	if err := e.b.Verify(context.Background(), r.Applied()); err != nil {
		t.Fatal(err)
	}
	src.Set(without)
	eventually(t, "rule gone", false, func() error { return tcpErr(e.client, e.s1.v4, portA) })
	waitFor(t, effectTimeout, "sets deleted", func() bool {
		return !strings.Contains(nft("list", "sets", "inet"), names[0])
	})
	if s := r.Stats(); s.LastError != "" {
		t.Fatalf("last error: %s", s.LastError)
	}
}

// TestKernelSetLarge loads an IP set of 100,000 entries (singles and
// prefixes of both families) in one full apply, reads every element back,
// then changes one entry of each kind incrementally.
func TestKernelSetLarge(t *testing.T) {
	requireRoot(t)
	_, h := newNS(t, "sl")
	b, err := NewNFTables(WithNetNS(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	entries := largeSet(100_000)
	var c Compiler
	start := time.Now()
	rs := c.Compile(setSnapshot(entries, nil, true))
	if err := b.Apply(ctx, nil, rs); err != nil {
		t.Fatal(err)
	}
	t.Logf("100,000 entries compiled and applied in %v", time.Since(start))
	b.mu.Lock()
	b.verifiedFor = nil // force the dump
	b.mu.Unlock()
	if err := b.Verify(ctx, rs); err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct {
		name     string
		old, new netip.Prefix
	}{
		{"v4 single", entries[0], netip.MustParsePrefix("10.255.255.1/32")},
		{"v4 prefix", entries[25_000], netip.MustParsePrefix("11.255.255.0/24")},
		{"v6 single", entries[50_000], netip.MustParsePrefix("2001:db8:ffff::1/128")},
		{"v6 prefix", entries[75_000], netip.MustParsePrefix("2001:db9:ffff::/64")},
	} {
		i := slices.Index(entries, change.old)
		entries = slices.Clone(entries)
		entries[i] = change.new
		slices.SortFunc(entries, ComparePrefixes)
		next := c.Compile(setSnapshot(entries, nil, true))
		d := diffRulesets(rs, next)
		if len(d.replaceChains)+len(d.addChains)+len(d.delChains) != 0 || len(d.setElems) != 1 {
			t.Fatalf("%s: diff %+v, want the elements of one set", change.name, d)
		}
		if err := b.Apply(ctx, rs, next); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		rs = next
	}
	b.mu.Lock()
	b.verifiedFor = nil
	b.mu.Unlock()
	if err := b.Verify(ctx, rs); err != nil {
		t.Fatal(err)
	}
}

// largeSet returns n entries, a quarter of each kind: IPv4 addresses,
// IPv4 /28s, IPv6 addresses, IPv6 /64s; sorted, disjoint.
func largeSet(n int) []netip.Prefix {
	q := n / 4
	out := make([]netip.Prefix, 0, n)
	out = append(out, manyPrefixes(q, false, 32)...)
	for _, p := range manyPrefixes(q, false, 28) {
		// Moved to 11.0.0.0/8 and beyond, away from the addresses.
		a := p.Addr().As4()
		a[0]++
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), 28))
	}
	out = append(out, manyPrefixes(q, true, 128)...)
	for _, p := range manyPrefixes(n-3*q, true, 64) {
		a := p.Addr().As16()
		a[3]++ // 2001:db9::/32
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(a), 64))
	}
	slices.SortFunc(out, ComparePrefixes)
	return out
}
